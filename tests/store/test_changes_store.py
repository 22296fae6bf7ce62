"""The changes table and a ticket's context in SQL: the window and clock skew, what counts as also firing
(storm members, thread replies and old resolved tickets do not), retention, and the terminal's rendering."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import update

from benchmarks.backends import Postgres, postgres_bin
from bot.clock import utcnow
from bot.config import Settings
from bot.delivery.context import ContextLookup, lines, plain
from bot.delivery.terminal import _why_now
from bot.models import ChangeEvent, Context
from bot.store.schema import tickets
from bot.store.sql import Store
from bot.store.tickets import TicketState
from tests.helpers import receive


def store_at(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'incibot.db'}")


def test_window_skew_and_newest_first(tmp_path: Path) -> None:
    store, now = store_at(tmp_path), utcnow()
    for i, minutes in enumerate((-130, -90, -12, 1.5, 5)):  # minutes relative to the alert
        store.changes.add(ChangeEvent(id=f"c{i}", service="chat-api", kind="deploy", summary=f"v{i}",
                                      at=now + timedelta(minutes=minutes)))  # fmt: skip
    lookup = ContextLookup(Settings(), store.changes)
    ctx = store.changes.context("k", "chat-api", None, now, now, lookup.window)
    assert [c.change.summary for c in ctx.changes] == ["v3", "v2", "v1"]  # skewed 90 s after, then before
    assert ctx.changes[0].minutes_before < 0 and "after the alert (clock skew)" in plain(lines(ctx)[0])
    assert not store.changes.add(ChangeEvent(id="c0", service="x", kind="deploy", at=now))  # duplicate id


def test_concurrent_signals_leave_out_storm_members_replies_and_old_resolved(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    for name in ("me", "gpu", "member", "old", "other"):
        svc = "billing" if name == "other" else "chat-api"
        assert receive(store, {"id": name, "title": f"{name} alert", "service": svc}) == "accepted"
    with store.engine.begin() as c:
        c.execute(update(tickets).where(tickets.c.key == "generic:member")
                  .values(status=TicketState.GROUPED.value, parent_key="generic:gpu"))  # fmt: skip
        c.execute(update(tickets).where(tickets.c.key == "generic:old")
                  .values(resolved=1, created_at=utcnow() - timedelta(hours=5)))  # fmt: skip
    row = store.get("generic:me")
    assert row is not None
    ctx = ContextLookup(Settings(), store.changes).for_row(row)
    assert ctx is not None and [s.key for s in ctx.concurrent] == ["generic:gpu"]
    assert plain(lines(ctx)[1]).startswith("Also firing on chat-api: gpu alert (since ")
    assert (
        plain(lines(ctx)[0])
        == "Recent changes to chat-api: no recorded change in the 120 min before the alert"
    )


def test_retention_drops_old_changes(tmp_path: Path) -> None:
    store, now = store_at(tmp_path), utcnow()
    store.changes.add(ChangeEvent(id="old", service="s", kind="infra", at=now - timedelta(days=15)))
    store.changes.add(ChangeEvent(id="new", service="s", kind="infra", at=now - timedelta(days=1)))
    assert store.changes.prune(now - timedelta(days=14)) == 1
    assert [c.id for c in store.changes.latest("s")] == ["new"]


def test_terminal_shows_why_now() -> None:
    ctx = Context(service="chat-api", window_min=120)
    console = Console(record=True, width=200)
    for t in _why_now_for(ctx):
        console.print(t)
    assert "Recent changes to chat-api: no recorded change" in console.export_text()


def _why_now_for(ctx: Context) -> list[object]:
    from bot.models import DraftPlaybook, LLMUsage, TriageDraft

    draft = TriageDraft(ticket_id="t", taxonomy="genai", labels={}, triage_step="-", triage_step_source="rule",
                        playbook=DraftPlaybook(id="p", title="p", source="rule", steps=[]),
                        llm=LLMUsage(model="none"), context=ctx)  # fmt: skip
    assert '"context"' in draft.model_dump_json()  # `incibot triage --json` carries it
    return list(_why_now(draft))


@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries not installed")
def test_changes_and_context_on_postgres() -> None:
    server = Postgres()
    try:
        store = Store(server.database("changes"))
        now = utcnow()
        # An offset time is stored as the same instant (SQLite would keep the wall time: the model converts).
        change = ChangeEvent(id="d1", service="chat-api", kind="deploy", summary="v1",
                             at=(now - timedelta(minutes=5)).astimezone(timezone(timedelta(hours=2))))  # fmt: skip
        assert store.changes.add(change) and not store.changes.add(change)
        assert (
            receive(store, {"id": "a", "title": "GPU memory above 95%", "service": "chat-api"}) == "accepted"
        )
        assert receive(store, {"id": "b", "title": "5xx on chat", "service": "chat-api"}) == "accepted"
        row = store.get("generic:b")
        assert row is not None
        ctx = ContextLookup(Settings(), store.changes).for_row(row)
        assert ctx is not None and [c.change.id for c in ctx.changes] == ["d1"]
        assert round(ctx.changes[0].minutes_before) == 5 and [s.key for s in ctx.concurrent] == ["generic:a"]
        store.engine.dispose()
    finally:
        server.stop()
        server.remove()
