"""The verdict line on a post ("Confirmed by @alice") is kept with the ticket: a redraw after a restart shows it."""

from __future__ import annotations

import json
from pathlib import Path

from bot.models import Feedback
from testkit.emulators import SlackEmulator
from tests.helpers import accept, make_service, wait_until


def test_the_verdict_line_survives_a_restart(tmp_path: Path, slack: SlackEmulator) -> None:
    service = make_service(tmp_path, slack, storm_similarity=1.01)
    service.start()
    try:
        accept(service, {"id": "v1", "title": "Image generation returns blank images"})
        wait_until(lambda: (r := service.store.get("generic:v1")) and r.status == "drafted", 30, "the draft")
        line = service.record_feedback("generic:v1", Feedback(action="confirm", user_id="UALICE"))
        assert line is not None
        service.apply_feedback("generic:v1", line)
    finally:
        service.stop()
    restarted = make_service(
        tmp_path, slack, storm_similarity=1.01
    )  # the same database, a new process's memory
    restarted.redraw("generic:v1")  # e.g. a storm counter edit after the restart
    assert "Confirmed by <@UALICE>" in json.dumps(slack.of("chat.update")[-1]["blocks"])
