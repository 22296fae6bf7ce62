"""Faults of the bundled model's running server process: a crash or a hang mid-draft is an LLM outage, never a bot
outage, and a new server takes over. Every test here runs the real llama.cpp server with the bundled SmolLM2, a
server of its own per test (its faults stay its own). Startup failures and the server's answers:
test_model_server.py (two files, so that the two xdist workers share them)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from testkit.emulators import SlackEmulator
from tests.helpers import accept, wait_until
from tests.triage.model_server_rig import bot, final_update, health, posts_of, ticket

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_model_crash_mid_draft_is_an_llm_outage_not_a_bot_outage(
    tmp_path: Path, slack: SlackEmulator, sig: signal.Signals
) -> None:
    service, client = bot(tmp_path, slack)
    try:
        wait_until(lambda: health(client)["state"] == "ready", 90, "model server ready")
        accept(service, ticket(1))
        wait_until(lambda: health(client)["in_flight"] > 0, 90, "a draft being generated")
        time.sleep(0.3)  # well inside the generation (prompt evaluation alone takes longer)
        pid = health(client)["pid"]
        os.kill(pid, sig)
        seen = wait_until(lambda: (h := health(client))["state"] == "restarting" and h, 30, "restarting")
        assert sig.name in seen["last_error"]
        first = final_update(service, slack, "generic:m-1")
        text = json.dumps(first["blocks"])
        assert "Retrieval-only draft" in text and sig.name in text
        assert posts_of(slack, "generic:m-1") == 1
        # The bot never went down; the restarted server drafts the next ticket.
        assert client.get("/healthz").status_code == 200
        accept(service, ticket(2))
        second = final_update(service, slack, "generic:m-2")
        assert "LLM draft" in json.dumps(second["blocks"])
        status = health(client)
        assert status["state"] == "ready" and status["restarts"] == 1 and status["pid"] != pid
        assert posts_of(slack, "generic:m-1") == 1 and posts_of(slack, "generic:m-2") == 1
    finally:
        service.stop()
        service.triager.model.server.stop()  # type: ignore[union-attr]


def test_a_hung_model_is_cut_at_the_timeout_and_replaced(tmp_path: Path, slack: SlackEmulator) -> None:
    # 45 s: long enough that the replacement server's first answer fits on a busy 2-core CI machine.
    service, client = bot(tmp_path, slack, llm_timeout_s=45)
    try:
        wait_until(lambda: health(client)["state"] == "ready", 90, "model server ready")
        accept(service, ticket(1))
        wait_until(lambda: health(client)["in_flight"] > 0, 90, "a draft being generated")
        pid = health(client)["pid"]
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        first = final_update(service, slack, "generic:m-1")
        waited = time.monotonic() - t0
        text = json.dumps(first["blocks"])
        assert "Retrieval-only draft" in text and "no answer within 45" in text
        assert 40 < waited < 120, waited
        with pytest.raises(ProcessLookupError):  # the stopped server was killed, not left behind
            wait_until(lambda: os.kill(pid, 0) and False, 10, "old server gone")
        # the replacement starts at once; the second ticket is sent once it is up, so that its 45 s are the
        # draft's alone, not the model load's too on a loaded machine
        wait_until(
            lambda: (h := health(client))["state"] == "ready" and h["pid"] != pid, 120, "replacement ready"
        )
        accept(service, ticket(2))
        assert "LLM draft" in json.dumps(final_update(service, slack, "generic:m-2")["blocks"])
        assert health(client)["restarts"] == 1
    finally:
        service.stop()
        service.triager.model.server.stop()  # type: ignore[union-attr]
