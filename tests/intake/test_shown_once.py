"""The ticket as people see it is redacted once, at intake, and every post and redraw reads that copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testkit.emulators import SlackEmulator
from tests.helpers import accept, make_service, top_level_posts, wait_until


def test_the_shown_ticket_is_redacted_at_intake_and_posts_never_redact_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = SlackEmulator()
    try:
        service = make_service(tmp_path, slack)
        text = "Errors for customer jane@corp.example since the 14:00 deploy"
        assert (
            accept(service, {"id": "s1", "title": "API 500s", "text": text, "service": "openai"})
            == "accepted"
        )
        row = service.store.get("generic:s1")
        assert row is not None and row.shown is not None
        assert "jane@corp.example" not in row.shown.text and "[EMAIL_1]" in row.shown.text
        assert "jane@corp.example" not in row.ticket.model_dump_json()  # at rest too (store_raw_tickets off)

        def no_second_redaction(ticket: object) -> object:
            raise AssertionError("the ticket was redacted again after intake")

        monkeypatch.setattr(service.triager.preparer, "shown", no_second_redaction)
        service.start()
        wait_until(lambda: top_level_posts(slack), what="post")
        wait_until(
            lambda: (r := service.store.get("generic:s1")) and r.message_ts, what="the post's ts stored"
        )
        service.poster.redraw("generic:s1", "Confirmed by <@U1>")
        service.stop()
        assert any("Confirmed by" in json.dumps(u) for u in slack.of("chat.update"))
        body = json.dumps(slack.calls)
        assert "[EMAIL_1]" in body and "jane@corp.example" not in body
    finally:
        slack.close()
