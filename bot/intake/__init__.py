"""Intake: what arrives -> a stored ticket, exactly once.

One module per sender under `senders/` (parse, accepted authentication, default severity map), the webhook
authentication (`auth.py`), occurrences of a sender's incident (`occurrences.py`), the receiver that validates,
deduplicates and stores before the sender is answered (`receiver.py`), and history/ticket files (`files.py`).
May import: triage (redaction, privacy), store and the shared modules; never delivery, feedback or watch.
"""
