"""Validation of the LLM's answer before anything of it is shown: ticket text is attacker-controlled.

The answer schema already limits labels to the taxonomy and playbooks to existing ids. This checks what a schema
cannot: the free-text fields must not carry a redacted value (or any other secret), links, Slack mentions or
markup, or references to incidents that retrieval did not return. An answer that fails is dropped whole and
the draft falls back to retrieval, flagged with the reason.
"""

from __future__ import annotations

import re
from typing import Any

from bot.models import SimilarIncident
from bot.triage.redact import Redaction, Redactor

FREE_TEXT_FIELDS = ("triage_step", "mitigation_steps", "rationale")
_URL = re.compile(r"(?i)\b(?:https?|ftp|file|slack)://[^\s>|)]+|\bwww\.[^\s>|)]+")
_SLACK_SYNTAX = re.compile(
    r"<[@#!][^>]*>|<(?:https?|mailto):[^>]*>|(?<!\w)@(?:channel|here|everyone)\b", re.I
)
# A small model's degenerate output ("3.5.1.1.1") looks like IP addresses and phone numbers; these kinds count
# only as a leak of a value the ticket really held (checked above), not as invented data.
NUMERIC_KINDS = {"IP_ADDRESS", "PHONE"}
_INCIDENT_REF = re.compile(r"(?i)\bincident\s+#?(\w+-\w+|\d{3,})\b")


class AnswerRejected(ValueError):
    """The answer broke a rule; the message says which (shown to the engineer)."""


def free_text(answer: Any) -> str:
    parts: list[str] = []
    for name in FREE_TEXT_FIELDS:
        value = getattr(answer, name, None)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(str(v) for v in value)
    return "\n".join(parts)


def check_answer(
    answer: Any, redaction: Redaction, similar: list[SimilarIncident], redactor: Redactor
) -> None:
    """Raise AnswerRejected if the answer must not be shown."""
    text = free_text(answer)
    if leaked := redaction.leaks(text):
        raise AnswerRejected(f"answer repeats {len(leaked)} redacted value(s) from the ticket")
    if found := set(redactor.redact(text).counts) - NUMERIC_KINDS:
        raise AnswerRejected(f"answer contains secret or personal data ({', '.join(sorted(found))})")
    known_links = {s.link for s in similar if s.link}
    for m in _URL.finditer(text):
        if m.group(0).rstrip(".,;") not in known_links:
            raise AnswerRejected("answer links to a page that is not a known history record")
    if _SLACK_SYNTAX.search(text):
        raise AnswerRejected("answer contains Slack mentions or link markup")
    known_ids = {s.id.lower() for s in similar}
    for m in _INCIDENT_REF.finditer(text):
        if m.group(1).lower() not in known_ids:
            # The id is not quoted back: the message is shown, and the id is the model's (the ticket's) text.
            raise AnswerRejected("answer cites an incident that retrieval did not return")
