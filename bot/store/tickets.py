"""What the SQL store hands out: typed ticket rows and the states a ticket moves through (no dict rows leak)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from bot.clock import aware, utcnow
from bot.models import Ticket, TriageDraft


class TicketState(StrEnum):
    """A ticket: received -> posting -> posted (retrieval draft visible) -> drafted (LLM edit done).
    A storm member: received -> grouped (under its incident) -> announcing -> announced (listed in its thread).
    A thread reply (kind update): received -> posting -> replied. failed: Slack refused it for good."""

    RECEIVED = "received"
    POSTING = "posting"
    POSTED = "posted"
    DRAFTED = "drafted"
    GROUPED = "grouped"
    ANNOUNCING = "announcing"
    ANNOUNCED = "announced"
    REPLIED = "replied"
    FAILED = "failed"


WAITING = (TicketState.RECEIVED, TicketState.POSTING)  # to be posted: what the work queue hands out


class TicketKind(StrEnum):
    TICKET = "ticket"  # a post of its own (or a storm member)
    UPDATE = "update"  # news about an incident: a reply in its thread


class Priority:
    URGENT, NORMAL = 0, 1  # urgent: personal-data exposure or the worst severity, posted before what waits
    LOW = 2  # a change posted in an incident's thread: never ahead of a ticket waiting in that channel


class TicketRow(BaseModel):
    key: str
    ticket: Ticket
    shown: Ticket | None = None  # the ticket as posted, redacted once at intake (None: stored before 0007)
    channel: str  # routed at first, then the id Slack answers with
    route: str  # the channel routing chose (name or id): what storm grouping compares
    status: TicketState
    kind: TicketKind = TicketKind.TICKET
    priority: int = Priority.NORMAL
    message_ts: str | None = None
    parent_key: str | None = None
    group_count: int = 0  # members announced in this ticket's thread
    draft: TriageDraft | None = None
    resolution: str | None = None
    resolved: bool = False
    last_error: str | None = None
    status_line: str | None = None  # the latest verdict line on its post ("Confirmed by @alice")
    history_pending: bool = False
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> TicketRow:
        return cls(
            key=row["key"], ticket=row["ticket"], shown=row.get("shown"), channel=row["channel"],
            # `route` came with storms; rows from before it fall back to the channel.
            route=row.get("route") or row["channel"], status=row["status"],
            kind=row.get("kind") or TicketKind.TICKET,
            priority=Priority.NORMAL if row.get("priority") is None else row["priority"],
            message_ts=row.get("message_ts"), parent_key=row.get("parent_key"), group_count=row.get("group_count") or 0,
            draft=row.get("draft"), resolution=row.get("resolution"), resolved=bool(row.get("resolved")),
            last_error=row.get("last_error"), status_line=row.get("status_line"),
            history_pending=bool(row.get("history_pending")),
            created_at=aware(row["created_at"]), updated_at=aware(row["updated_at"]),
        )  # fmt: skip

    def age_s(self) -> float:
        """Seconds since it arrived."""
        return max(0.0, (utcnow() - self.created_at).total_seconds())
