"""Change events and the context of a ticket, in the SQL store (shared by every replica).

Storing a change is one INSERT, deduplicated by its primary key (source, id): a CI system deploying 1,000 times an
hour costs 1,000 small inserts, and nothing on the posting path waits for them. A ticket's context is two indexed
range reads: the changes on its service by (service, at), and the other tickets on its service by
(service, created_at) or, for a dedicated channel, by (route, created_at). Each reads the few rows it lists and
counts the rest in SQL, over the same index: a flood on one service costs a COUNT, and "and N more" is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from bot.clock import aware, utcnow
from bot.models import ChangeEvent, ConcurrentSignal, Context, RecentChange
from bot.store.schema import changes, tickets
from bot.store.tickets import TicketKind, TicketState

SHOWN = 5  # changes and concurrent tickets listed with a ticket; the rest are counted
# Tickets that are, or are about to be, an incident of their own (not storm members, not thread replies).
OWN_POST = (TicketState.RECEIVED, TicketState.POSTING, TicketState.POSTED, TicketState.DRAFTED)


@dataclass(frozen=True)
class Window:
    """How far around a ticket its context reaches."""

    before: timedelta  # change_window_min
    skew: timedelta  # a change stamped this long after the ticket still counts (clocks differ)
    open_for: timedelta  # an unresolved ticket counts as firing this long after it came


@dataclass(frozen=True)
class OpenIncident:
    """An incident a change can be posted under (its thread)."""

    key: str
    channel: str
    route: str


class ChangeStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, change: ChangeEvent) -> bool:
        """Store a change (one INSERT); False if (source, id) was stored before (a redelivery)."""
        values = change.model_dump() | {"kind": change.kind.value, "received_at": utcnow()}
        try:
            with self.engine.begin() as c:
                c.execute(insert(changes).values(**values))
            return True
        except IntegrityError:
            return False

    def recent(self, service: str, at: datetime, window: Window) -> tuple[list[RecentChange], int]:
        """Changes to `service` from `window.before` before `at` up to `window.skew` after it, newest first; and
        how many more there are beyond those listed."""
        lo, hi = at - window.before, at + window.skew
        within = (changes.c.service == service, changes.c.at >= lo, changes.c.at <= hi)
        with self.engine.connect() as c:
            rows = c.execute(
                select(changes).where(*within).order_by(changes.c.at.desc()).limit(SHOWN)
            ).mappings()
            found = [_change(r) for r in rows]
            total = int(c.execute(select(func.count()).select_from(changes).where(*within)).scalar() or 0)
        shown = [RecentChange(change=x, minutes_before=(at - x.at).total_seconds() / 60) for x in found]
        return shown, max(0, total - len(shown))

    def latest(self, service: str, limit: int = 20) -> list[ChangeEvent]:
        """`/triage changes <service>`: its newest changes."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(changes).where(changes.c.service == service).order_by(changes.c.at.desc()).limit(limit)
            ).mappings()
            return [_change(r) for r in rows]

    def concurrent(
        self, key: str, service: str | None, route: str | None, at: datetime, window: Window
    ) -> tuple[list[ConcurrentSignal], int]:
        """Other tickets on `service` (or, when given, routed to `route`) that arrived within the window before `at`
        or are still unresolved (for at most `window.open_for`), newest first. Storm members and thread replies
        are left out: their incident is the one listed."""
        if not service and not route:
            return [], 0
        lo_open, lo_window = at - window.open_for, at - window.before
        where = [
            tickets.c.key != key,
            tickets.c.parent_key.is_(None),
            tickets.c.status.in_([s.value for s in OWN_POST]),
            or_(tickets.c.kind.is_(None), tickets.c.kind == TicketKind.TICKET.value),
            tickets.c.created_at <= at + window.skew,
            or_(tickets.c.created_at >= lo_window, func.coalesce(tickets.c.resolved, 0) == 0),
        ]
        found: dict[str, ConcurrentSignal] = {}
        on = [(column, value, same) for column, value, same in
              ((tickets.c.service, service, True), (tickets.c.route, route, False)) if value]  # fmt: skip
        with self.engine.connect() as c:
            # The newest SHOWN of each lookup hold the newest SHOWN of both together.
            for column, value, same in on:
                rows = c.execute(
                    select(tickets.c.key, tickets.c.shown, tickets.c.ticket, tickets.c.created_at,
                           tickets.c.resolved, tickets.c.service)
                    .where(column == value, tickets.c.created_at >= lo_open, *where)
                    .order_by(tickets.c.created_at.desc())
                    .limit(SHOWN)
                ).mappings()  # fmt: skip
                for r in rows:
                    if r["key"] not in found:
                        found[r["key"]] = _signal(r, same or r["service"] == service)
            # One COUNT over both: a ticket on the service and in the channel is counted once.
            either = or_(*(column == value for column, value, _ in on))
            total = c.execute(
                select(func.count()).where(either, tickets.c.created_at >= lo_open, *where)
            ).scalar()
        listed = sorted(found.values(), key=lambda s: s.since, reverse=True)[:SHOWN]
        return listed, max(0, int(total or 0) - len(listed))

    def context(
        self,
        key: str,
        service: str | None,
        route: str | None,
        at: datetime,
        arrived: datetime,
        window: Window,
    ) -> Context:
        """A ticket's context: changes to its service around `at` (when its sender says it fired), and what else
        fires there around `arrived` (when the bot received it: other tickets are stored by arrival)."""
        recent, more = self.recent(service, at, window) if service else ([], 0)
        concurrent, more_concurrent = self.concurrent(key, service, route, arrived, window)
        return Context(service=service, window_min=window.before.total_seconds() / 60, changes=recent,
                       more_changes=more, concurrent=concurrent, more_concurrent=more_concurrent)  # fmt: skip

    def open_incidents(
        self, service: str, now: datetime, open_for: timedelta, limit: int = 5
    ) -> list[OpenIncident]:
        """Unresolved incidents on `service` with a post of their own, newest first: a change that arrives now is
        posted in their threads."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(tickets.c.key, tickets.c.channel, tickets.c.route)
                .where(
                    tickets.c.service == service,
                    tickets.c.created_at >= now - open_for,
                    tickets.c.parent_key.is_(None),
                    tickets.c.status.in_([s.value for s in OWN_POST]),
                    or_(tickets.c.kind.is_(None), tickets.c.kind == TicketKind.TICKET.value),
                    func.coalesce(tickets.c.resolved, 0) == 0,
                )
                .order_by(tickets.c.created_at.desc())
                .limit(limit)
            ).all()
        return [OpenIncident(key=k, channel=ch, route=rt or ch) for k, ch, rt in rows]

    def replies(self, parent_key: str) -> int:
        """Change replies already queued or posted under an incident."""
        with self.engine.connect() as c:
            return int(c.execute(count_replies(parent_key)).scalar() or 0)

    def prune(self, before: datetime) -> int:
        """Drop changes that happened before `before` (change_retention_days)."""
        with self.engine.begin() as c:
            return int(c.execute(delete(changes).where(changes.c.at < before)).rowcount or 0)

    def count(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(changes)).scalar() or 0)


def count_replies(parent_key: str) -> Select[tuple[int]]:
    """How many change replies an incident has (their keys: `<parent>~change:...`)."""
    return select(func.count()).where(
        tickets.c.parent_key == parent_key, tickets.c.key.like(f"{parent_key}~change:%")
    )


def _change(r: Any) -> ChangeEvent:
    return ChangeEvent.model_validate(dict(r) | {"at": aware(r["at"])})


def _signal(r: Any, same_service: bool) -> ConcurrentSignal:
    t = r["shown"] or r["ticket"] or {}  # as posted (redacted), else as stored
    title = t.get("title") or (t.get("text") or "")[:120] or r["key"]
    return ConcurrentSignal(key=r["key"], title=title, service=r["service"], since=aware(r["created_at"]),
                            link=t.get("link"), same_service=same_service, open=not r["resolved"])  # fmt: skip
