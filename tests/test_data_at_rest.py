"""What is kept, and who may read the bot's own state: tickets and verdict text are redacted in SQL unless raw
tickets are configured; /healthz says only ready to anyone, details and /metrics need the ops token."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from starlette.testclient import TestClient

from bot.delivery.slack.app import build_app
from bot.models import Feedback
from bot.server import build_server
from bot.store.schema import feedback, tickets
from testkit.emulators import SlackEmulator
from tests.helpers import OPS, accept, make_service

SECRET_TEXT = "Errors for jane@corp.example, key sk-proj-abcdefghijklmnop1234"


def _sql_dump(service) -> str:  # type: ignore[no-untyped-def]
    with service.store.engine.connect() as c:
        rows = [*c.execute(select(tickets)).mappings(), *c.execute(select(feedback)).mappings()]
    return repr([dict(r) for r in rows])


def test_sql_keeps_tickets_and_verdict_text_redacted(tmp_path: Path) -> None:
    emu = SlackEmulator()
    try:
        service = make_service(tmp_path, emu)
        assert accept(service, {"id": "d1", "title": "API 500s", "text": SECRET_TEXT}) == "accepted"
        line = service.record_feedback("generic:d1", Feedback(action="reject", user_id="U1",
                                                               reason=f"wrong: {SECRET_TEXT}"))  # fmt: skip
        service.record_feedback("generic:d1", Feedback(action="correct", user_id="U1", labels={},
                                                        fix="rotated sk-proj-abcdefghijklmnop1234"))  # fmt: skip
        dump = _sql_dump(service)
        assert "jane@corp.example" not in dump and "sk-proj-abcdefghijklmnop1234" not in dump
        assert "[EMAIL_1]" in dump and "[API_KEY_1]" in dump
        assert line is not None and "jane@corp.example" not in line and "[EMAIL_1]" in line  # as posted
    finally:
        emu.close()


def test_raw_tickets_are_kept_only_when_configured(tmp_path: Path) -> None:
    emu = SlackEmulator()
    try:
        service = make_service(tmp_path, emu, store_raw_tickets=True)
        accept(service, {"id": "d2", "title": "API 500s", "text": SECRET_TEXT})
        row = service.store.get("generic:d2")
        assert row is not None and row.ticket.text == SECRET_TEXT
        assert row.shown is not None and "jane@corp.example" not in row.shown.text  # posts stay redacted
    finally:
        emu.close()


def test_healthz_details_and_metrics_need_the_ops_token(tmp_path: Path) -> None:
    emu = SlackEmulator()
    try:
        service = make_service(tmp_path, emu)
        server = build_server(service.settings, service, build_app(service.settings, service.client, service))
        anyone, ops = TestClient(server), TestClient(server, headers=OPS)
        assert anyone.get("/healthz").json() == {"ok": True, "status": "ready"}
        assert {"llm", "outbox", "tickets"} <= set(ops.get("/healthz").json())
        assert anyone.get("/metrics").status_code == 401
        assert (
            TestClient(server, headers={"Authorization": "Bearer wrong"}).get("/metrics").status_code == 401
        )
        assert ops.get("/metrics").status_code == 200 and "incibot_" in ops.get("/metrics").text
        no_token = make_service(tmp_path / "b", emu, ops_token=None)
        closed = TestClient(build_server(no_token.settings, no_token, None), headers=OPS)
        assert closed.get("/metrics").status_code == 401  # no token configured: nobody reads them
        assert closed.get("/healthz").json() == {"ok": True, "status": "ready"}
    finally:
        emu.close()
