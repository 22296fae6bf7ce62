"""A change, stored: mapped to the service tickets name, redacted like ticket text, one INSERT (deduplicated by
its sender's id), then posted in the thread of any incident open on that service.

Nothing here touches a ticket's post: a flood of changes costs inserts and, on a service with an open incident,
at most `change_replies_max` low-priority thread replies per incident, which wait behind that channel's tickets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel

from bot.clock import utcnow
from bot.config import Settings
from bot.intake.changes import map_service
from bot.intake.senders.base import digest
from bot.models import ChangeEvent, Link, Ticket
from bot.store.changes import OpenIncident
from bot.store.sql import Store
from bot.store.tickets import Priority, TicketKind, TicketState
from bot.triage.redact import Redactor

log = logging.getLogger("incibot")


class ChangeReceipt(BaseModel):
    """What a change webhook is answered."""

    status: Literal["accepted", "duplicate"]
    id: str
    service: str
    mapped: bool  # False: no change_service_map entry; stored under the sender's own name
    replies: list[str] = []  # thread replies queued on open incidents (ticket keys)


class ChangeIntake:
    def __init__(self, settings: Settings, store: Store, redactor: Redactor) -> None:
        self.settings, self.store, self.redactor = settings, store, redactor

    def receive(self, change: ChangeEvent, room: Callable[[], bool] = lambda: True) -> ChangeReceipt:
        """Store a change durably before its sender is answered. `room()` False (a full outbox): no thread
        replies are queued, the change is stored all the same."""
        change, mapped = map_service(self.settings, change)
        change = self._redacted(change)
        receipt = {"id": change.id, "service": change.service, "mapped": mapped}
        if not self.store.changes.add(change):
            return ChangeReceipt(status="duplicate", **receipt)
        if not mapped:
            log.info("change %s:%s: no change_service_map entry; stored under %r", change.source, change.id,
                     change.service)  # fmt: skip
        replies = self._replies(change) if room() else []
        return ChangeReceipt(status="accepted", replies=replies, **receipt)

    def _redacted(self, change: ChangeEvent) -> ChangeEvent:
        """Text fields redacted as ticket text is (an author can be an e-mail address, a link can carry a token)."""
        if not (self.settings.redact_in_slack or self.settings.redact_in_history):
            return change
        red = self.redactor.redact
        update = {f: red(v).text for f in ("id", "service", "summary", "link", "author", "environment")
                  if isinstance(v := getattr(change, f), str) and v}  # fmt: skip
        if update["id"] != change.id:  # ids differing only in what is hidden stay two changes (dedupe by id)
            update["id"] = f"{update['id'][:183]}~{digest(change.id)}"
        return change.model_copy(update=update)

    def _replies(self, change: ChangeEvent) -> list[str]:
        """A thread reply under each incident open on the service, for a change that happened lately (a late
        redelivery of an old change is stored, not announced)."""
        now, s = utcnow(), self.settings
        if change.at < now - timedelta(minutes=s.change_window_min) or s.change_replies_max == 0:
            return []
        incidents = self.store.changes.open_incidents(
            change.service, now, timedelta(hours=s.concurrent_open_h)
        )
        # Counted and inserted in one locked transaction per incident: the cap holds under concurrent changes.
        rows = [self._reply(change, inc) for inc in incidents]
        return [row["key"] for row in rows if self.store.add_reply(row, s.change_replies_max)]

    @staticmethod
    def _reply(change: ChangeEvent, incident: OpenIncident) -> dict[str, Any]:
        key = f"{incident.key}~change:{digest(change.source, change.id)}"
        title = f"Change on {change.service}: {change.describe()} at {change.at:%H:%M} UTC"
        links = [Link(label=f"{change.source} change", url=change.link)] if change.link else []
        reply = Ticket(
            id=key[:200], title=title[:300], source=change.source, links=links, created_at=change.at
        )
        return {"key": key, "ticket": reply, "shown": reply, "channel": incident.channel, "route": incident.route,
                "status": TicketState.RECEIVED, "kind": TicketKind.UPDATE, "parent_key": incident.key,
                "priority": Priority.LOW}  # fmt: skip
