"""The database unreachable (PostgreSQL stopped): webhooks answer 503 with Retry-After, never a 500 and never a 202
for a ticket that was not stored; /healthz says why; once it is back, the retried ticket is stored and posted."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.testclient import TestClient

from benchmarks.backends import Postgres, postgres_bin
from benchmarks.serving import deliveries
from bot.config import Settings
from bot.server import create, database_down
from testkit.emulators import SlackEmulator
from tests.helpers import wait_until

needs_postgres = pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries not installed")


def test_only_connection_failures_count_as_the_database_being_down() -> None:
    assert database_down(OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert not database_down(IntegrityError("INSERT", {}, Exception("duplicate key")))


@needs_postgres
def test_webhooks_answer_503_with_retry_after_while_postgres_is_down(tmp_path: Path) -> None:
    pg, emu = Postgres(), SlackEmulator()
    service = None
    try:
        settings = Settings(data_dir=tmp_path, seed_demo_history=False, llm_backend="none",
                            database_url=pg.database("down"), slack_bot_token="xoxb-test", slack_signing_secret="s",
                            slack_api_url=emu.url)  # fmt: skip
        service, _, server = create(settings)
        service.start()
        client = TestClient(server, raise_server_exceptions=False)

        def send(i: int) -> object:
            body = json.dumps({"id": f"down-{i}", "title": f"Elevated 5xx on chat completions #{i}"})
            return client.post(
                "/webhooks/generic", content=body, headers={"content-type": "application/json"}
            )

        assert send(1).status_code == 202
        wait_until(lambda: "generic:down-1" in deliveries(emu), 60, "the first ticket posted")

        pg.stop()
        for _ in range(2):  # the pool's first dead connection, then a refused new one: the same answer
            r = send(2)
            assert r.status_code == 503, r.text
            assert 1 <= int(r.headers["retry-after"]) <= 30
            assert r.json()["ok"] is False and "database unavailable" in r.json()["error"]
        health = client.get("/healthz")
        assert health.status_code == 503 and "database unavailable" in health.json()["error"]

        pg.start()
        r = send(2)  # the sender retries
        assert r.status_code == 202, r.text
        assert client.get("/healthz").status_code == 200
        wait_until(lambda: "generic:down-2" in deliveries(emu), 60, "the retried ticket posted")
        assert {k: len(v) for k, v in deliveries(emu).items()} == {"generic:down-1": 1, "generic:down-2": 1}
    finally:
        if service is not None:
            service.stop()
        emu.close()
        with contextlib.suppress(RuntimeError):  # already stopped, if the test failed while it was down
            pg.stop()
        pg.remove()
