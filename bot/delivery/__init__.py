"""Delivery: a stored ticket -> its post. The SQL work queue (`queue.py`) hands a channel's next ticket to a
worker (`workers.py`); `posting.py` posts it exactly once (or groups it into a storm, `storms.py`); the LLM edit
pass (`llm_edit.py`) replaces the retrieval draft; `slack/` holds Slack I/O, Block Kit and the listeners;
`terminal.py` renders a draft for the CLI.
May import: feedback, watch, intake, triage, store and the shared modules.
"""
