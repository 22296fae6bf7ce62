"""What one notification changes in the store: a new ticket, a thread reply, a resolution, or nothing.

`bot.intake.occurrences.decide` says what an event means for the sender's incident (pure); this stores it, all or
nothing, with optimistic concurrency so racing deliveries of one incident store one ticket. The service then
queues what was stored for posting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from bot.clock import utcnow
from bot.config import Settings
from bot.intake.occurrences import Outcome, Step, decide
from bot.intake.senders import EventKind, WebhookEvent, listed, severity_map
from bot.models import Link, SenderIncident, SenderSeverity, Ticket
from bot.store.sql import Store
from bot.store.tickets import Priority, TicketKind, TicketState
from bot.taxonomy import Taxonomy
from bot.triage.prepare import Preparer

RACES = 8  # deliveries about one sender incident racing each other: re-decided at most this often


class Receipt(BaseModel):
    """What a webhook is answered: `status` is an Outcome value; `key` the ticket it concerns."""

    status: Outcome
    key: str = ""
    reason: str = ""


class Stored(BaseModel):
    """What `Receiver.receive` stored: the receipt, and the new rows now waiting to be posted (key, ticket, kind)."""

    receipt: Receipt
    queued: list[tuple[str, Ticket, str]] = []
    # The ticket `receipt.key` is resolved now (a resolve, or an open after its resolve).
    resolved: bool = False


class Backpressure(RuntimeError):
    """Nothing was stored: the sender should retry after `retry_after_s` (HTTP 429): too many tickets wait to be
    posted, or concurrent deliveries kept changing the same sender incident."""

    def __init__(self, backlog: int, retry_after_s: int, why: str | None = None) -> None:
        super().__init__(why or f"{backlog} tickets waiting to be posted; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class Receiver:
    def __init__(self, settings: Settings, store: Store, preparer: Preparer, taxonomy: Taxonomy) -> None:
        self.settings, self.store, self.preparer, self.taxonomy = settings, store, preparer, taxonomy

    def receive(self, event: WebhookEvent, channel: str | None, make_room: Callable[[], None]) -> Stored:
        """Decide and store, before the sender is answered. `make_room` raises if nothing new may be stored now
        (a full outbox): then nothing is stored and the sender retries."""
        for _ in range(RACES):
            current = self._thread(event)
            if event.component is not None and current is None:
                return Stored(receipt=Receipt(status=Outcome.IGNORED, reason=f"no open Statuspage incident has "
                              f"component {event.component}; the change is acknowledged and not posted"))  # fmt: skip
            step = decide(current, event, utcnow(), self.settings.occurrence_quiet_s)
            if step.thread is None:
                return Stored(receipt=Receipt(status=step.outcome, key=step.key))
            rows = self._rows(step, event, current, channel)
            if rows:
                make_room()
            resolved = (step.key, event.resolution) if step.outcome == Outcome.RESOLVE else None
            if step.resolution is not None:  # opened after its resolve: resolved at once
                resolved = (step.key, step.resolution)
            if self.store.record(step.thread, [r.copy() for r in rows], resolved):
                queued = [(r["key"], r["ticket"], r["kind"]) for r in rows]
                return Stored(receipt=Receipt(status=step.outcome, key=step.key), queued=queued,
                              resolved=resolved is not None)  # fmt: skip
        raise Backpressure(0, 1, f"{event.thread} is changing under concurrent deliveries; retry")

    def _thread(self, event: WebhookEvent) -> SenderIncident | None:
        if event.component is not None:  # a Statuspage component: the newest open incident that lists it
            having = [t for t in self.store.open_threads(event.source) if event.component in t.components]
            return max(having, key=lambda t: t.last_at, default=None)
        if (thread := self.store.thread(event.thread)) is not None:
            return thread
        row = self.store.get(event.thread)
        if row is None or row.kind == TicketKind.UPDATE:
            return None
        # A ticket with no sender-incident row: its row starts here, and a redelivery stays a duplicate.
        return SenderIncident(thread=event.thread, source=event.source, key=event.thread, open=not row.resolved,
                      seen=list(event.items) if event.kind == EventKind.OPEN else [], last_at=row.created_at)  # fmt: skip

    def _rows(
        self, step: Step, event: WebhookEvent, current: SenderIncident | None, channel: str | None
    ) -> list[dict[str, Any]]:
        """The tickets table rows a step adds: a new occurrence's ticket, or a reply in its thread."""
        assert step.thread is not None
        if step.outcome == Outcome.NEW and event.ticket is not None:
            ticket = self._intake(event.ticket, event.source).model_copy(
                update={"id": step.key, "occurrence": step.thread.number,
                        "previous_key": current.key if current is not None else None}
            )  # fmt: skip
            ch = channel or self.settings.channel_for(ticket.service)
            return [{"key": step.key, **self._kept(ticket), "channel": ch, "route": ch, "status": TicketState.RECEIVED,
                     "kind": TicketKind.TICKET, "priority": self._priority(ticket),
                     "service": ticket.service}]  # fmt: skip
        parent = self.store.get(step.key)
        if parent is None:
            return []
        lines = [line for line in step.new.values() if line]
        if event.resolution:
            lines.append(f"Resolution: {event.resolution}")
        links = list(event.links)
        if event.merged_into is not None:
            links.insert(
                0, event.merged_into.model_copy(update={"label": f"Merged into {event.merged_into.label}"})
            )
        key = f"{step.key}~{step.thread.updates}"
        reply = Ticket(id=key, title=event.note, text="\n".join(listed(lines)), source=event.source, links=links,
                       severity=event.severity)  # fmt: skip
        reply = self._intake(reply, event.source)
        return [{"key": key, **self._kept(reply), "channel": parent.channel,
                 "route": parent.route, "status": TicketState.RECEIVED, "kind": TicketKind.UPDATE,
                 "parent_key": step.key, "priority": Priority.NORMAL}]  # fmt: skip

    def _kept(self, ticket: Ticket) -> dict[str, Ticket]:
        """The row's `ticket` (as the SQL store keeps it: redacted, the sender's payload dropped, unless raw
        tickets are kept) and `shown` (as posted), redacting the ticket once for both."""
        shown = self.preparer.shown(ticket)
        if self.settings.keep_raw_tickets:
            return {"ticket": ticket, "shown": shown}
        return {"ticket": shown if shown is not ticket else self.preparer.redacted(ticket), "shown": shown}

    def _priority(self, ticket: Ticket) -> int:
        """A ticket that suggests personal-data exposure, or that its sender rates at the taxonomy's most severe
        level (an ordinal severity field lists it first), goes before everything waiting: stop the spread
        first. Thread replies keep arrival order, behind the post they reply to."""
        severity = self.taxonomy.fields.get("severity")
        worst = severity.ids[0] if severity is not None and severity.ids else None
        urgent = self.taxonomy.privacy_match(ticket.body) is not None or (
            worst is not None and ticket.sender_label == worst
        )
        return Priority.URGENT if urgent else Priority.NORMAL

    def _intake(self, ticket: Ticket, source: str) -> Ticket:
        """The sender's severity mapped onto the taxonomy; service and links redacted like ticket text (a service
        can be a person's e-mail address, a link can carry a token)."""
        sev = [s.model_copy(update={"label": self._severity_label(source, s)}) for s in ticket.severity]
        update: dict[str, Any] = {"severity": sev}
        if self.settings.redact_in_slack or self.settings.redact_in_history:
            red = self.preparer.redactor.redact
            update |= {
                "service": red(ticket.service).text if ticket.service else ticket.service,
                "link": red(ticket.link).text if ticket.link else ticket.link,
                "links": [Link(label=x.label, url=red(x.url).text) for x in ticket.links],
            }
        return ticket.model_copy(update=update)

    def _severity_label(self, source: str, sev: SenderSeverity) -> str | None:
        mapping = {k.lower(): v for k, v in severity_map(self.settings, source).items()}
        label = mapping.get(sev.value.lower()) or self.taxonomy.normalise("severity", sev.value)
        return label if label and self.taxonomy.is_valid("severity", label) else None
