"""Slack I/O (`messages.py`), Block Kit (`blocks.py`), the Bolt app (`app.py`) and its listeners by kind."""
