"""A ticket made ready for triage, once: its text cut to `max_text_chars`, redacted once and embedded once (storm
grouping, retrieval and the classifiers share the vector); and the ticket as people see it (posted, kept as
history): redacted unless configured otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from bot.models import Ticket
from bot.store.embeddings import get_embedder
from bot.triage.redact import Redaction, Redactor

T = TypeVar("T", bound=Ticket)


class TicketError(ValueError):
    """A ticket the bot cannot triage (e.g. no text); the message says why."""


def require_text(ticket: Ticket) -> str:
    text = ticket.body
    if not text.strip():
        raise TicketError(f"ticket {ticket.id} has no title or text to triage")
    return text


@dataclass(frozen=True)
class Prepared:
    redaction: Redaction  # of the ticket's text as triaged (title and text, cut to max_text_chars)
    vector: np.ndarray  # its embedding: of the redacted text, as history is stored redacted


class Preparer:
    def __init__(self, redactor: Redactor, max_chars: int, redact_shown: bool) -> None:
        self.redactor, self.max_chars, self.redact_shown = redactor, max_chars, redact_shown

    def text(self, ticket: Ticket) -> str:
        """The text triage reads (raw; TicketError if there is none)."""
        return require_text(ticket)[: self.max_chars]

    def cut_note(self, ticket: Ticket) -> str | None:
        """What the draft says when the text was longer than triage reads (else None): a cut is never silent."""
        n = len(require_text(ticket))
        if n <= self.max_chars:
            return None
        cut = f"its first {self.max_chars:,} of {n:,} characters"
        return f"Ticket text cut to {cut} (max_text_chars) for triage"

    def prepare(self, ticket: Ticket) -> Prepared:
        red = self.redactor.redact(self.text(ticket))
        return Prepared(red, get_embedder().embed([red.text])[0])

    def shown(self, ticket: Ticket) -> Ticket:
        """The ticket as posted to Slack: redacted unless `redact_in_slack` is off."""
        return self.redacted(ticket) if self.redact_shown else ticket

    def redacted(self, ticket: T) -> T:
        # The sender's payload is not redacted field by field: only its link to the full ticket is kept.
        link = (ticket.raw or {}).get("html_url")
        return ticket.model_copy(
            update={
                "title": self.redactor.redact(ticket.title).text,
                "text": self.redactor.redact(ticket.text).text,
                "raw": {"html_url": self.redactor.redact(link).text} if isinstance(link, str) else None,
            }
        )
