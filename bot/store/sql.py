"""Durable ticket and feedback state (SQLite by default, any SQLAlchemy URL when configured).

A ticket is stored before its webhook is answered; its key (source + source id) makes duplicate deliveries
no-ops. Feedback is stored before a click is acknowledged.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from sqlalchemy import Engine, create_engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.clock import utcnow
from bot.models import Feedback, HistoricalIncident, SenderIncident, Ticket, TriageDraft
from bot.store.changes import ChangeStore, count_replies
from bot.store.migrations import upgrade
from bot.store.schema import feedback, threads, tickets
from bot.store.sqlite import sqlite_engine
from bot.store.tickets import TicketRow, TicketState
from bot.store.watch import WatchStore


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Column values as the drivers take them: enums by value, models as JSON."""
    out = {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}
    if isinstance(out.get("draft"), TriageDraft):
        out["draft"] = json.loads(out["draft"].model_dump_json())
    for name in ("ticket", "shown"):
        if isinstance(out.get(name), Ticket):
            out[name] = json.loads(out[name].model_dump_json())
    return out


class _Changed(Exception):
    """The thread was changed by another delivery between read and write."""


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return sqlite_engine(url)  # the embedded default, set up for bursts (bot/store/sqlite.py)
    return create_engine(url, pool_pre_ping=True)


class Store:
    def __init__(self, url: str) -> None:
        self.engine = _engine(url)
        upgrade(self.engine)  # schema versions (bot/migrations), safe when several replicas start at once
        self.watch = WatchStore(self.engine)
        self.changes = ChangeStore(self.engine)

    def thread(self, thread: str) -> SenderIncident | None:
        with self.engine.connect() as c:
            state = c.execute(select(threads.c.state).where(threads.c.thread == thread)).scalar()
        return SenderIncident.model_validate(state) if state is not None else None

    def open_threads(self, source: str) -> list[SenderIncident]:
        with self.engine.connect() as c:
            rows = c.execute(select(threads.c.state).where(threads.c.source == source, threads.c.open == 1))
            return [SenderIncident.model_validate(r[0]) for r in rows]

    def record(
        self, state: SenderIncident, rows: list[dict[str, Any]], resolved: tuple[str, str] | None = None
    ) -> bool:
        """Store a thread's new state with the tickets and replies it adds (and a resolution), all or nothing.
        False if another delivery changed the thread since `state` was read (the caller decides again)."""
        now = utcnow()
        stored = state.model_copy(update={"version": state.version + 1})
        values = {"source": state.source, "state": json.loads(stored.model_dump_json()), "open": int(state.open),
                  "version": stored.version, "updated_at": now}  # fmt: skip
        try:
            with self.engine.begin() as c:
                if state.version == 0:
                    c.execute(insert(threads).values(thread=state.thread, **values))
                elif (
                    c.execute(
                        update(threads)
                        .where(threads.c.thread == state.thread, threads.c.version == state.version)
                        .values(**values)
                    ).rowcount
                    != 1
                ):
                    raise _Changed
                for row in rows:
                    c.execute(insert(tickets).values(created_at=now, updated_at=now, **_plain(row)))
                if resolved is not None:
                    c.execute(
                        update(tickets)
                        .where(tickets.c.key == resolved[0])
                        .values(
                            resolved=1, updated_at=now, **({"resolution": resolved[1]} if resolved[1] else {})
                        )
                    )
            return True
        except (IntegrityError, _Changed):
            return False

    def add_reply(self, row: dict[str, Any], cap: int) -> bool:
        """Insert a change's thread reply under its incident (`row["parent_key"]`) unless the incident has `cap`
        change replies already, or is gone, or this reply was stored before (by a racing replica)."""
        now, parent = utcnow(), row["parent_key"]
        try:
            with self.engine.begin() as c:
                # Count under a lock, or concurrent changes each see room for one more. A no-op UPDATE of the
                # incident's row is that lock on both backends: PostgreSQL's row lock (held to commit; the COUNT
                # after it, in READ COMMITTED, sees what the previous holder inserted) and SQLite's write lock
                # (pysqlite opens the transaction at the first write; SELECT ... FOR UPDATE is a no-op there).
                lock = (
                    update(tickets).where(tickets.c.key == parent).values(group_count=tickets.c.group_count)
                )
                if c.execute(lock).rowcount != 1 or (c.execute(count_replies(parent)).scalar() or 0) >= cap:
                    return False
                c.execute(insert(tickets).values(created_at=now, updated_at=now, **_plain(row)))
            return True
        except IntegrityError:
            return False

    def get(self, key: str) -> TicketRow | None:
        with self.engine.connect() as c:
            row = c.execute(select(tickets).where(tickets.c.key == key)).mappings().first()
        return TicketRow.of(row) if row else None

    def members(self, parent_key: str, *statuses: TicketState | str) -> list[TicketRow]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(tickets)
                .where(tickets.c.parent_key == parent_key, tickets.c.status.in_([str(s) for s in statuses]))
                .order_by(tickets.c.created_at, tickets.c.key)
            ).mappings()
            return [TicketRow.of(r) for r in rows]

    def set_status(self, keys: list[str], **values: Any) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(tickets).where(tickets.c.key.in_(keys)).values(updated_at=utcnow(), **_plain(values))
            )

    def count(self, *statuses: TicketState | str) -> int:
        with self.engine.connect() as c:
            query = select(func.count()).where(tickets.c.status.in_([str(s) for s in statuses]))
            return int(c.execute(query).scalar() or 0)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            rows = c.execute(select(tickets.c.status, func.count()).group_by(tickets.c.status))
            return {status: n for status, n in rows}

    def update_ticket(self, key: str, **values: Any) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(tickets).where(tickets.c.key == key).values(updated_at=utcnow(), **_plain(values))
            )

    def history_pending(self) -> list[str]:
        """Keys whose labelled incident could not be written to the history yet, oldest first."""
        with self.engine.connect() as c:
            query = select(tickets.c.key).where(tickets.c.history_pending == 1).order_by(tickets.c.updated_at)
            return [r[0] for r in c.execute(query)]

    def add_feedback(self, key: str, fb: Feedback) -> int:
        with self.engine.begin() as c:
            res = c.execute(insert(feedback).values(ticket_key=key, created_at=utcnow(), **fb.model_dump()))
            return int(res.inserted_primary_key[0])

    def feedback_for(self, key: str) -> list[Feedback]:
        """The verdicts on one ticket, oldest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(feedback).where(feedback.c.ticket_key == key).order_by(feedback.c.id)
            ).mappings()
            return [Feedback.model_validate(dict(r)) for r in rows]

    def labelled_incident(self, key: str) -> HistoricalIncident | None:
        """The ticket with the engineer's latest confirmed or corrected labels and fix, for the history."""
        row = self.get(key)
        if row is None:
            return None
        fb = [f for f in self.feedback_for(key) if f.action in ("confirm", "correct")]
        if not fb:
            return None
        last = fb[-1]
        resolution = "\n".join(x for x in (last.fix, row.resolution) if x)
        return HistoricalIncident(
            **row.ticket.model_dump(exclude={"id", "raw", "source"}),
            id=key,
            labels=last.labels or {},
            resolution=resolution,
            resolved_at=row.updated_at if row.resolved else None,
            source=f"feedback:{last.action}",
        )

    def export(self) -> list[HistoricalIncident]:
        with self.engine.connect() as c:
            keys = [
                r[0]
                for r in c.execute(select(feedback.c.ticket_key).distinct().order_by(feedback.c.ticket_key))
            ]
        return [inc for k in keys if (inc := self.labelled_incident(k)) is not None]
