"""Storms and backpressure: similar tickets grouped into one post with thread replies and a counter (also after
a restart), and a full outbox answers 429 with Retry-After and loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.testclient import TestClient

from bot.server import build_server
from testkit.emulators import SlackEmulator
from tests.helpers import accept, grouped_keys, make_service, posted_keys, top_level_posts, wait_until


def test_a_storm_is_grouped_into_one_post_with_thread_replies_and_a_counter(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack)
    service.start()
    for i in range(15):
        accept(service, {"id": f"s{i}", "service": "openai",
                         "title": f"[FIRING] HighErrorRate gpt-4o eastus: 5xx ratio {10 + i}% on inference pod infer-{i}"})  # fmt: skip
    accept(service, {"id": "other", "service": "openai", "title": "Fine-tuning jobs stuck in queued state"})
    accept(
        service,
        {"id": "claude", "service": "anthropic", "title": "[FIRING] HighErrorRate gpt-4o eastus: 5xx"},
    )
    wait_until(
        lambda: len(grouped_keys(slack)) == 14 and len(top_level_posts(slack)) == 3, timeout=30, what="storm"
    )
    service.stop()
    # Arrival order within a channel; the other channel does not wait for this one's storm.
    posted = posted_keys(slack)
    assert [k for k in posted if k != "generic:claude"] == [
        "generic:s0",
        "generic:other",
    ] and "generic:claude" in posted
    assert sorted(grouped_keys(slack)) == sorted(f"generic:s{i}" for i in range(1, 15))
    replies = [p for p in slack.of("chat.postMessage") if p.get("thread_ts")]
    assert {r["thread_ts"] for r in replies} == {service.store.get("generic:s0").message_ts}
    last = [u for u in slack.of("chat.update") if u["ts"] == service.store.get("generic:s0").message_ts][-1]
    assert "14 more ticket(s)" in json.dumps(last["blocks"])


def test_a_storm_keeps_grouping_after_a_restart(tmp_path: Path, slack: SlackEmulator) -> None:
    title = "[FIRING] HighErrorRate gpt-4o eastus: 5xx ratio {}% on inference pod infer-{}"
    service = make_service(tmp_path, slack)
    service.start()
    accept(service, {"id": "p0", "service": "openai", "title": title.format(12, 1)})
    wait_until(lambda: top_level_posts(slack), what="first post")
    service.stop()
    restarted = make_service(tmp_path, slack)  # a new process: open incidents come back from the store
    restarted.start()
    accept(restarted, {"id": "p1", "service": "openai", "title": title.format(14, 2)})
    wait_until(lambda: grouped_keys(slack), timeout=30, what="the repeat listed in the thread")
    restarted.stop()
    assert posted_keys(slack) == ["generic:p0"] and grouped_keys(slack) == ["generic:p1"]


def test_full_outbox_answers_429_with_retry_after_and_loses_nothing(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack, max_backlog=3)  # workers not started: the outbox fills
    client = TestClient(build_server(service.settings, service, None))
    titles = ["API errors", "GPU pool exhausted", "Bad answers after rollout", "Privacy leak", "Throttling"]
    codes = [client.post("/webhooks/generic", json={"id": f"b{i}", "title": titles[i]}) for i in range(5)]
    assert [r.status_code for r in codes] == [202, 202, 202, 429, 429]
    assert int(codes[3].headers["retry-after"]) >= 1 and "retry after" in codes[3].json()["error"]
    assert (
        client.post("/webhooks/generic", json={"id": "b0", "title": "API errors"}).json()["status"]
        == "duplicate"
    )
    assert service.store.counts() == {"received": 3}  # the 429s were not stored: their senders retry
    service.start()
    wait_until(lambda: len(top_level_posts(slack)) == 3, what="posted after draining")
    assert client.post("/webhooks/generic", json={"id": "b3", "title": titles[3]}).status_code == 202
    service.stop()
