"""An urgent ticket (personal-data exposure, or the sender's most severe level) is posted before everything
waiting, and the rest keep their arrival order."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testkit.emulators import SlackEmulator
from tests.helpers import accept, make_service, posted_keys, wait_until


@pytest.mark.parametrize(
    "urgent",
    [
        {
            "id": "leak",
            "title": "Users see other users' conversations in their chat history",
            "service": "openai",
        },
        # Nothing in the text says privacy, but the sender rates it at the most severe level.
        {"id": "leak", "title": "Checkout API down in all regions", "service": "openai", "severity": "SEV1"},
    ],
    ids=["privacy-exposure", "sender-sev1"],
)
def test_an_urgent_ticket_is_posted_before_500_waiting_tickets(
    tmp_path: Path, slack: SlackEmulator, urgent: dict[str, str]
) -> None:
    service = make_service(tmp_path, slack, storm_similarity=1.01)  # workers not started: 500 tickets wait
    for i in range(500):
        accept(
            service, {"id": f"w{i}", "title": f"Elevated latency on model endpoint {i}", "service": "openai",
                      "severity": "sev2"}
        )  # fmt: skip
    accept(service, urgent)
    t0 = time.monotonic()
    service.start()
    try:
        wait_until(lambda: "generic:leak" in posted_keys(slack), 5.0, "the urgent ticket posted within 5 s")
        assert posted_keys(slack)[0] == "generic:leak"  # before any of the 500 that arrived earlier
        assert time.monotonic() - t0 < 5.0
        wait_until(lambda: len(posted_keys(slack)) >= 5, 30, "the others follow")
        assert posted_keys(slack)[1:5] == [f"generic:w{i}" for i in range(4)]  # and they keep arrival order
    finally:
        service.stop()
