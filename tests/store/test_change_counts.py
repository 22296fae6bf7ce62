"""Counts the change features promise, on SQLite and on real PostgreSQL: at most `change_replies_max` thread
replies per incident however many changes arrive at once, and an exact "and N more" however many changes and
tickets fall in the window (issue 32)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import insert

from bot.clock import utcnow
from bot.config import Settings
from bot.delivery.context import ContextLookup, lines, plain
from bot.intake.changes.receiver import ChangeIntake
from bot.models import ChangeEvent
from bot.store.schema import changes, tickets
from bot.store.sql import Store
from bot.triage.redact import redactor
from tests.helpers import receive


@pytest.fixture
def store(sql_store: Store) -> Store:
    return sql_store


def test_the_reply_cap_holds_when_changes_arrive_at_once(store: Store) -> None:
    """60 changes from 16 threads at once to a service with one open incident: exactly `change_replies_max`
    replies (before the fix, each change counted the replies, then inserted: 13-16 were queued)."""
    assert (
        receive(store, {"id": "open-1", "title": "Errors on chat-api", "service": "chat-api"}) == "accepted"
    )
    cap, senders, n = 10, 16, 60
    intake = ChangeIntake(Settings(change_replies_max=cap), store, redactor())
    start = threading.Barrier(senders)

    def sender(first: int) -> list[str]:
        start.wait()
        return [key for i in range(first, n, senders)
                for key in intake.receive(ChangeEvent(id=f"c{i}", service="chat-api", kind="deploy",
                                                      summary=f"build {i}", at=utcnow())).replies]  # fmt: skip

    with ThreadPoolExecutor(senders) as pool:
        replies = [key for keys in pool.map(sender, range(senders)) for key in keys]
    assert store.changes.count() == n  # every change stored
    assert len(replies) == len(set(replies)) == cap
    assert store.changes.replies("generic:open-1") == cap


def test_and_n_more_counts_every_change_in_the_window(store: Store) -> None:
    """2,000 changes in the window: five listed, "and 1995 more" (before: "and 45 more", 50 rows read)."""
    now = utcnow()
    rows = [{"source": "change", "id": f"d{i}", "service": "chat-api", "kind": "deploy", "summary": f"build {i}",
             "at": now - timedelta(seconds=i + 1), "received_at": now} for i in range(2000)]  # fmt: skip
    rows.append(rows[0] | {"id": "old", "at": now - timedelta(hours=3)})  # outside the window: not counted
    with store.engine.begin() as c:
        c.execute(insert(changes), rows)
    ctx = store.changes.context(
        "k", "chat-api", None, now, now, ContextLookup(Settings(), store.changes).window
    )
    assert [r.change.id for r in ctx.changes] == ["d0", "d1", "d2", "d3", "d4"]
    assert ctx.more_changes == 1995
    assert plain(lines(ctx)[0]).endswith("; and 1995 more")


def test_and_n_more_counts_every_ticket_also_firing(store: Store) -> None:
    """120 tickets on the service and 120 more in its dedicated channel, 60 of them both: each counted once."""
    now = utcnow()

    def row(i: int, service: str, route: str) -> dict[str, object]:
        t = {"id": f"t{i}", "title": f"alert {i}", "source": "generic", "created_at": now.isoformat()}
        return {"key": f"generic:t{i}", "ticket": t, "shown": t, "channel": route, "route": route,
                "status": "posted", "service": service, "created_at": now - timedelta(seconds=i + 1),
                "updated_at": now}  # fmt: skip

    rows = [row(i, "chat-api", "#chat" if i < 60 else "#other") for i in range(120)]
    rows += [row(i, "gpu", "#chat") for i in range(120, 180)]
    with store.engine.begin() as c:
        c.execute(insert(tickets), rows)
    window = ContextLookup(Settings(), store.changes).window
    ctx = store.changes.context("generic:me", "chat-api", "#chat", now, now, window)
    assert [s.key for s in ctx.concurrent] == [f"generic:t{i}" for i in range(5)]
    assert ctx.more_concurrent == 180 - 5
    assert plain(lines(ctx)[1]).endswith("; and 175 more")
