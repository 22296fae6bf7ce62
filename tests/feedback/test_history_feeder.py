"""Verdicts reach the history even when it is down: the labelled incident is kept in SQL, marked pending, and
written to the history (a real Chroma server) once it is back."""

from __future__ import annotations

from pathlib import Path

from benchmarks.backends import ChromaServer
from bot.config import Settings
from bot.models import Feedback
from bot.server import create
from testkit.emulators import SlackEmulator
from tests.conftest import SMALL_HISTORY
from tests.helpers import accept, wait_until


def test_feedback_given_while_the_chroma_server_is_down_reaches_the_history_when_it_returns(
    tmp_path: Path,
) -> None:
    chroma, emu = ChromaServer(tmp_path / "chroma"), SlackEmulator()
    settings = Settings(data_dir=tmp_path / "d", seed_demo_history=False, llm_backend="none",
                        chroma_host="127.0.0.1", chroma_port=chroma.port, slack_bot_token="xoxb-test",
                        slack_signing_secret="s", slack_api_url=emu.url, history_retry_s=0.3)  # fmt: skip
    service, _, _ = create(settings)
    try:
        service.history.upsert(SMALL_HISTORY)
        service.start()
        key = "generic:fb-1"
        assert accept(service, {"id": "fb-1", "title": "Slow responses from the Claude API"}) == "accepted"
        wait_until(lambda: getattr(service.store.get(key), "status", None) == "drafted", 60, "posted")
        chroma.stop()
        fb = Feedback(action="correct", user_id="U1", fix="Scaled out the GPU pool in us-east",
                      labels={"symptom": ["latency"], "root_cause": ["external_traffic"], "severity": ["sev3"]})  # fmt: skip
        status = service.record_feedback(key, fb)
        assert status is not None
        service.apply_feedback(key, status)  # the history is down: kept in SQL, marked pending
        assert service.store.history_pending() == [key]

        chroma.start()  # same port and data directory
        hits = wait_until(
            lambda: [
                h
                for h in service.history.search("Slow responses from the Claude API", 5)
                if h.incident.id == key
            ],
            60,
            "the verdict in the history",
        )
        assert (
            hits[0].incident.labels["symptom"] == ["latency"] and "Scaled out" in hits[0].incident.resolution
        )
        # The flag is cleared just after the upsert that search already sees: wait for it, do not race it.
        wait_until(lambda: service.store.history_pending() == [], 10, "the pending flag cleared")
    finally:
        service.stop()
        chroma.stop()
        emu.close()
