"""A resolve that overtakes its open (two deliveries racing, a sender retrying the open later) is kept, and the
open, when it comes, is posted resolved with that resolution: nothing stays open for ever."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bot.intake.occurrences import Outcome, decide
from bot.intake.senders import parse
from testkit.emulators import SlackEmulator
from tests.helpers import PAYLOADS, accept, make_service, post_of

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_a_resolve_before_its_open_is_held_then_the_open_is_posted_resolved(tmp_path: Path) -> None:
    emu = SlackEmulator()
    try:
        service = make_service(tmp_path, emu)
        resolve = {"id": "early-1", "status": "resolved", "resolution": "Rolled back the router to v2.3.0"}
        assert accept(service, resolve) == "held"
        assert accept(service, resolve) == "held"  # a redelivery changes nothing
        assert service.store.get("generic:early-1") is None  # nothing to post yet
        assert (
            accept(service, {"id": "early-1", "title": "Chat completions failing in East US"}) == "accepted"
        )
        row = service.store.get("generic:early-1")
        assert row is not None and row.resolved and row.resolution == "Rolled back the router to v2.3.0"
        assert service.history.get(["generic:early-1"])[0].resolution == "Rolled back the router to v2.3.0"
        service.start()
        assert "Resolved" in json.dumps(post_of(emu, "generic:early-1")["blocks"])
        service.stop()
        # The open redelivered: the same ticket (a generic id is one incident), nothing posted twice.
        assert (
            accept(service, {"id": "early-1", "title": "Chat completions failing in East US"}) == "duplicate"
        )
    finally:
        emu.close()


def test_an_alertmanager_group_resolved_before_it_fired_opens_resolved() -> None:
    resolved = parse(
        "alertmanager", json.loads((PAYLOADS / "alertmanager/debian-0.25-resolved.json").read_text())
    )
    firing = parse(
        "alertmanager", json.loads((PAYLOADS / "alertmanager/debian-0.25-firing.json").read_text())
    )
    held = decide(None, resolved, NOW, 3600)
    assert held.outcome == Outcome.HELD and held.thread is not None and held.thread.number == 0
    opened = decide(held.thread, firing, NOW, 3600)
    assert opened.outcome == Outcome.NEW and opened.key == firing.thread and opened.resolution is not None
    assert opened.thread is not None and opened.thread.number == 1 and opened.thread.held_resolution is None
