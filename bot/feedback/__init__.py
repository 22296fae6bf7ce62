"""Feedback: an engineer's verdict or a ticket's resolution -> labelled history (`history_feeder.py`).
May import: triage, store and the shared modules.
"""
