"""incibot: incident triage for Generative-AI cloud services.

A ticket flows one way through a package per stage:

  intake/    a sender's notification (or a slash command, a ticket file) -> a stored ticket, once
  triage/    the ticket -> a draft: redact, retrieve similar incidents, decide labels, draft with the LLM, validate
  delivery/  the draft -> Slack (work queue, posts, storms, the LLM edit pass, Slack I/O and listeners) or a terminal
  feedback/  an engineer's verdict or a resolution -> labelled history
  watch/     the bot watching itself: draft quality, metrics, the LLM mode switch, reports
  store/     what every stage persists: the SQL store (tickets, verdicts, queue), the vector history, migrations

Shared by all: `models.py` (typed domain models), `config.py` (one Settings object), `taxonomy.py`, `text.py`,
`clock.py`, `retrying.py`. The composition root builds the parts and hands each what it needs: `service.py`
(the running bot), `server.py` (HTTP), `cli.py`. Import direction is checked by import-linter (pyproject.toml):
a stage imports only the stages below it in that list.
"""
