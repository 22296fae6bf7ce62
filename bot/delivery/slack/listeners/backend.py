"""What the listeners ask of the running bot. The composition root (`bot.service.TriageService`) provides it and
hands it to `register`: listeners never import the service."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from bot.config import Settings
from bot.intake.senders import WebhookEvent
from bot.models import ChangeEvent, Feedback, LabelBatch, LabelCandidate, SimilarIncident
from bot.store.tickets import TicketRow
from bot.taxonomy import Taxonomy
from bot.watch.mode import ModeSwitch
from bot.watch.report import Report


class Backend(Protocol):
    settings: Settings
    mode: ModeSwitch

    @property
    def taxonomy(self) -> Taxonomy: ...

    def ticket(self, key: str) -> TicketRow | None: ...

    def accept(self, event: WebhookEvent, channel: str | None = None) -> str:
        """Store a ticket durably; raises intake's Backpressure when too many wait."""
        ...

    def similar(self, text: str) -> list[SimilarIncident]:
        """Past incidents like `text`, searched as triage searches (redacted first)."""
        ...

    def recent_changes(self, service: str, limit: int = 20) -> list[ChangeEvent]:
        """The newest changes recorded for a service."""
        ...

    def record_feedback(self, key: str, fb: Feedback) -> str | None:
        """Store a verdict durably; the status line to show, or None for an unknown ticket."""
        ...

    def apply_feedback(self, key: str, status_line: str) -> None: ...

    def report(self, since: timedelta) -> Report: ...

    # `/triage label`: each raises bot.store.vectors.HistoryError while the history store is unavailable.
    def to_label(self, n: int) -> LabelBatch:
        """The n unlabelled past incidents the classifier would learn most from (seconds: after the ack)."""
        ...

    def history_incident(self, incident_id: str) -> LabelCandidate | None:
        """One past incident by id, fast; None when it is not (or no longer) in the history."""
        ...

    def label_history(
        self, incident_id: str, labels: dict[str, list[str]], user_id: str, fix: str | None = None
    ) -> str | None:
        """Write an engineer's labels into a past incident and request a retraining; the status line to show,
        or None for an unknown incident (nothing written)."""
        ...
