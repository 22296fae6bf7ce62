"""Triage: a ticket -> a draft (`pipeline.Triager`): prepare (redact once, embed once), retrieve similar
incidents, decide labels (vote, learned classifier, the LLM's measured say), choose the playbook, draft with the
LLM and validate its answer.
May import: store and the shared modules; never intake, delivery, feedback or watch.
"""
