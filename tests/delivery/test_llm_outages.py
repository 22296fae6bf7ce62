"""The LLM endpoint down or rate limited: every ticket is still posted (retrieval-only, once the circuit opens
without waiting for the endpoint), one quality alert, and a 429 is retried after the time it asks for."""

from __future__ import annotations

import json
from pathlib import Path

from bot.config import Settings
from bot.models import Ticket
from bot.store.vectors import VectorStore
from bot.triage.pipeline import Triager
from testkit.emulators import OpenAIEmulator, SlackEmulator
from tests.helpers import accept, external, make_service, posted_keys, top_level_posts, wait_until


def test_llm_endpoint_down_every_ticket_still_posted_as_retrieval_only(
    tmp_path: Path, slack: SlackEmulator, llm: OpenAIEmulator
) -> None:
    llm.down = True
    service = make_service(
        tmp_path, slack, llm_backend="openai", openai_base_url=llm.url, llm_retries=2, llm_breaker_failures=3,
        storm_similarity=1.01,
    )  # fmt: skip
    service.start()
    n = 12
    for i in range(n):
        accept(
            service, {"id": f"down{i}", "title": f"Incident {i}: errors on model {i}", "service": "openai"}
        )
    wait_until(lambda: service.store.counts().get("drafted") == n, what="all drafted")
    service.stop()
    assert sorted(k for k in posted_keys(slack) if k) == sorted(f"generic:down{i}" for i in range(n))
    # The bot noticed: one alert (no ops_channel set: the default channel) that its LLM fails, not one per ticket.
    alerts = [p for p in top_level_posts(slack) if "incibot quality alert" in p.get("text", "")]
    assert len(top_level_posts(slack)) == n + 1 and len(alerts) == 1
    assert "`gpt-4o-mini` failed 100% of the last" in alerts[0]["text"]
    finals = {u["ts"]: u for u in slack.of("chat.update")}
    assert len(finals) == n and all(
        "Retrieval-only draft" in json.dumps(u["blocks"]) for u in finals.values()
    )
    # The circuit opened after 3 failed tickets (2 attempts each): later tickets did not wait for the endpoint.
    assert len(llm.bodies) == 3 * 2
    assert all("circuit open" in json.dumps(u["blocks"]) for u in list(finals.values())[3:])


def test_rate_limited_llm_is_retried_after_the_time_it_asks_for(
    settings: Settings, store: VectorStore, llm: OpenAIEmulator
) -> None:
    llm.failures = [(429, {"retry-after": "1"})]
    draft = Triager.from_settings(external(settings, llm), store).triage(Ticket(id="rl", title="API errors"))
    assert draft.kind == "llm" and len(llm.bodies) == 2
