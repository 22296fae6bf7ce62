"""Hardening (issue #5) in process: redaction before an external LLM (OpenAI-compatible emulator on 127.0.0.1),
answer validation, LLM outages, Slack outages, exactly-once posting, storms, backpressure, Chroma failures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from starlette.testclient import TestClient

from benchmarks.backends import free_port
from bot.config import Settings
from bot.delivery.slack.app import web_client
from bot.delivery.slack.messages import SlackMessages, retryable
from bot.models import Feedback, Ticket
from bot.retrying import retry_after
from bot.server import build_server
from bot.store.vectors import VectorStore
from bot.triage.pipeline import Triager
from testkit.emulators import OpenAIEmulator, SlackEmulator
from tests.helpers import (
    accept,
    corpus,
    grouped_keys,
    make_service,
    posted_keys,
    tool_answer,
    top_level_posts,
    wait_until,
)

TENANT = {"TENANT_ID": r"\btnt-[0-9a-f]{8}\b"}  # an organisation-specific pattern from configuration


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    emu = SlackEmulator()
    yield emu
    emu.close()


@pytest.fixture
def llm() -> Iterator[OpenAIEmulator]:
    emu = OpenAIEmulator(lambda request: tool_answer(request))
    yield emu
    emu.close()


def external(settings: Settings, llm: OpenAIEmulator, **kw: object) -> Settings:
    return settings.model_copy(
        update={
            "llm_backend": "openai",
            "openai_base_url": llm.url,
            "openai_model": "emulated",
            "redact_patterns": TENANT,
            **kw,
        }
    )


def _escaped(value: str) -> set[str]:
    """The forms a value takes inside a JSON request body."""
    return {value, json.dumps(value)[1:-1]}


# ---- redaction -----------------------------------------------------------------------------------------------
def test_no_planted_secret_or_personal_data_reaches_the_external_llm(
    settings: Settings, store: VectorStore, llm: OpenAIEmulator
) -> None:
    tickets = corpus("secrets")
    assert len(tickets) >= 50
    triager = Triager.from_settings(external(settings, llm), store)
    for t in tickets:
        draft = triager.triage(Ticket(id=t["id"], title=t["title"], text=t["text"]))
        assert draft.kind == "llm" and draft.redactions, t["id"]
    assert len(llm.bodies) == len(tickets)  # one request per ticket, each recorded
    planted = {p["value"] for t in tickets for p in t["planted"]}
    bodies = [b.decode() for b in llm.bodies]
    leaks = [(i, v) for i, body in enumerate(bodies) for v in planted if any(f in body for f in _escaped(v))]
    assert leaks == []
    # The ticket text did reach the endpoint, as placeholders.
    assert sum(b.decode().count("[EMAIL_") for b in llm.bodies) >= 5


def test_without_redaction_the_same_values_do_reach_it(
    settings: Settings, store: VectorStore, llm: OpenAIEmulator
) -> None:
    """Control: the check above would see a leak."""
    t = corpus("secrets")[0]
    Triager.from_settings(external(settings, llm, redact_for_external_llm=False), store).triage(
        Ticket(id=t["id"], title=t["title"], text=t["text"])
    )
    assert any(p["value"] in llm.bodies[0].decode() or json.dumps(p["value"])[1:-1] in llm.bodies[0].decode()
               for p in t["planted"])  # fmt: skip


def test_posts_and_history_show_the_ticket_redacted(tmp_path: Path, slack: SlackEmulator) -> None:
    service = make_service(tmp_path, slack)
    service.start()
    text = "Errors for tenant tnt-8f3a2b1c; customer jane@corp.example, key sk-proj-abcdefghijklmnop1234"
    accept(service, {"id": "r1", "title": "API 500s", "text": text, "service": "openai"})
    wait_until(lambda: top_level_posts(slack), what="post")
    service.stop()
    body = json.dumps(slack.calls)
    assert "jane@corp.example" not in body and "sk-proj-abcdefghijklmnop1234" not in body
    assert "[EMAIL_1]" in body and "[API_KEY_1]" in body
    resolve = {
        "id": "r1",
        "status": "resolved",
        "resolution": "Rotated key sk-proj-abcdefghijklmnop1234 and told jane@corp.example",
    }
    assert accept(service, resolve) == "resolved"
    stored = service.history.get(["generic:r1"])[0]
    assert "jane@corp.example" not in stored.model_dump_json() and "sk-proj" not in stored.model_dump_json()


# ---- answer validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("free_text", "why"),
    [
        (
            {"triage_step": "Page the owner at jane@corp.example right now and check the error rates."},
            "repeats",
        ),
        (
            {"rationale": "See https://evil.example/phish for the real runbook, it explains everything."},
            "links",
        ),
        (
            {"mitigation_steps": ["Alert <!channel> and roll back the deployment immediately please"]},
            "mentions",
        ),
        (
            {"rationale": "Same as incident INC-4242 which was fixed by a rollback of the model weights."},
            "cites",
        ),
    ],
)
def test_answers_breaking_content_rules_fall_back_to_retrieval_and_are_flagged(
    settings: Settings, store: VectorStore, free_text: dict[str, object], why: str
) -> None:
    emu = OpenAIEmulator(lambda request: tool_answer(request, **free_text))
    try:
        # Raw text to the model (allowed for a local model when configured): it can echo what it sees.
        s = external(settings, emu, redact_for_external_llm=False)
        draft = Triager.from_settings(s, store).triage(
            Ticket(id="v1", title="Elevated errors", text="Reported by jane@corp.example after the rollout")
        )
    finally:
        emu.close()
    assert draft.kind == "retrieval-only" and draft.llm.status == "rejected"
    assert why in (draft.llm.error or "") and any("discarded" in w for w in draft.warnings)
    shown = draft.model_dump_json()
    assert "evil.example" not in shown and "<!channel>" not in shown and "INC-4242" not in shown


def test_version_numbers_in_an_answer_are_not_taken_for_leaked_ip_addresses(
    settings: Settings, store: VectorStore
) -> None:
    emu = OpenAIEmulator(
        lambda request: tool_answer(request, rationale="Errors began with build 3.5.1.1 rollout.")
    )
    try:
        draft = Triager.from_settings(external(settings, emu), store).triage(
            Ticket(id="v2", title="API errors")
        )
    finally:
        emu.close()
    assert draft.kind == "llm" and draft.llm.status == "ok"


# ---- LLM outages ---------------------------------------------------------------------------------------------
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


# ---- Slack outages, crash window, order ----------------------------------------------------------------------
def test_slack_down_posts_wait_in_the_outbox_and_go_out_in_order(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack, storm_similarity=1.01)
    slack.down = True
    service.start()
    keys = [f"generic:o{i}" for i in range(6)]
    for i in range(6):
        accept(service, {"id": f"o{i}", "title": f"Distinct incident number {i}", "service": "openai"})
    wait_until(lambda: len(slack.calls) >= 3, what="failed attempts")
    assert top_level_posts(slack) == [] and service.store.counts().get("posting") == 1
    slack.down = False
    wait_until(lambda: len(top_level_posts(slack)) == 6, timeout=30, what="outbox drained")
    service.stop()
    assert posted_keys(slack) == keys


def test_a_post_that_reached_slack_before_a_crash_is_not_posted_again(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack)
    accept(service, {"id": "c1", "title": "GPU pool exhausted", "service": "openai"})
    # Crash window: status says "posting" and the message is already in the channel.
    row = service.store.get("generic:c1")
    draft = service.triager.triage(Ticket.model_validate(row.ticket), use_llm=False)
    service.store.update_ticket("generic:c1", status="posting", draft=draft)
    sent = service.client.chat_postMessage(
        channel="#genai-oncall", text="x", metadata={"event_type": "incibot_ticket", "event_payload": {"key": "generic:c1"}}
    )  # fmt: skip
    restarted = make_service(tmp_path, slack)  # a new process on the same store
    restarted.start()
    wait_until(lambda: restarted.store.get("generic:c1").status == "drafted", what="resumed")
    restarted.stop()
    assert len(top_level_posts(slack)) == 1 and restarted.store.get("generic:c1").message_ts == sent["ts"]


# ---- Slack's own retry handlers: edits and lookups retried, posts never -----------------------------------------
def _poster(settings: Settings, url: str, retries: int = 2) -> SlackMessages:
    s = settings.model_copy(
        update={"slack_bot_token": SecretStr("xoxb-test"), "slack_api_url": url, "slack_retries": retries}
    )
    return SlackMessages(web_client(s), s)


def _methods(slack: SlackEmulator) -> list[str]:
    return [m for m, _ in slack.calls]


def test_an_edit_rate_limited_by_slack_waits_the_retry_after_and_goes_through(
    settings: Settings, slack: SlackEmulator
) -> None:
    slack.failures["chat.update"] = [(429, {"Retry-After": "1"})]
    _poster(settings, slack.url).update("C-x", "1.0", "t", [])
    assert _methods(slack) == ["chat.update!429", "chat.update"]
    assert slack.arrivals[1] - slack.arrivals[0] >= 1.0  # the second try waited what Slack asked


def test_a_long_retry_after_is_left_to_the_caller(settings: Settings, slack: SlackEmulator) -> None:
    """The worker must not sleep a minute for one channel: the 429 is raised, Retry-After readable on it."""
    slack.failures["conversations.history"] = [(429, {"Retry-After": "30"})]
    t0 = time.monotonic()
    with pytest.raises(SlackApiError) as e:
        _poster(settings, slack.url).find_posted("#x", datetime.now(UTC), "incibot_ticket", "k")
    assert time.monotonic() - t0 < 2 and retry_after(e.value) == 30 and retryable(e.value)
    assert _methods(slack) == ["conversations.history!429"]


def test_edits_and_lookups_are_retried_after_5xx_and_dropped_connections(
    settings: Settings, slack: SlackEmulator
) -> None:
    poster = _poster(settings, slack.url, retries=3)
    slack.failures["chat.update"] = [(503, {}), (502, {}), (0, {})]  # 502: beyond slack_sdk's 500/503 handler
    poster.update("C-x", "1.0", "t", [])
    assert _methods(slack) == ["chat.update!503", "chat.update!502", "chat.update!0", "chat.update"]
    slack.failures["conversations.history"] = [(500, {})]
    assert poster.find_posted("#x", datetime.now(UTC), "incibot_ticket", "k") is None
    assert _methods(slack)[-2:] == ["conversations.history!500", "conversations.history"]


def test_an_edit_gives_up_after_slack_retries(settings: Settings, slack: SlackEmulator) -> None:
    slack.failures["chat.update"] = [(503, {})] * 5
    with pytest.raises(SlackApiError) as e:
        _poster(settings, slack.url, retries=2).update("C-x", "1.0", "t", [])
    assert e.value.response.status_code == 503 and retryable(e.value)
    assert _methods(slack) == ["chat.update!503"] * 3  # the first try and 2 retries


def test_an_edit_to_an_unreachable_slack_is_retried_then_raised(settings: Settings) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api/"  # nobody listens: connection refused
    t0 = time.monotonic()
    with pytest.raises(OSError) as e:
        _poster(settings, dead, retries=2).update("C-x", "1.0", "t", [])
    # slack_sdk's backoff before the 2 retries: 0.5 s and 1 s, each plus up to 1 s of jitter
    assert time.monotonic() - t0 >= 1.5 and retryable(e.value)
    t0 = time.monotonic()
    with pytest.raises(OSError):
        _poster(settings, dead, retries=2).post("#x", "t", [], {})
    assert time.monotonic() - t0 < 1.0  # a post is not retried, not even a refused one


@pytest.mark.parametrize("failure", [(503, {}), (502, {}), (0, {})], ids=["503", "502", "dropped"])
def test_a_post_is_never_retried_by_the_client(
    settings: Settings, slack: SlackEmulator, failure: tuple[int, dict[str, str]]
) -> None:
    """A post may have reached the channel when its answer is a 5xx or nothing: the outbox looks it up first."""
    slack.failures["chat.postMessage"] = [failure]
    with pytest.raises((SlackApiError, OSError)) as e:
        _poster(settings, slack.url, retries=3).post("#x", "t", [], {"event_type": "incibot_ticket"})
    assert retryable(e.value)
    assert _methods(slack) == [f"chat.postMessage!{failure[0]}"]  # exactly one call reached Slack


def test_a_rate_limited_post_is_raised_with_its_retry_after(settings: Settings, slack: SlackEmulator) -> None:
    """Safe to send again, but the caller does it: it parks that channel only, for the time Slack asked."""
    slack.failures["chat.postMessage"] = [(429, {"Retry-After": "1"})]
    with pytest.raises(SlackApiError) as e:
        _poster(settings, slack.url, retries=3).post("#x", "t", [], {})
    assert retry_after(e.value) == 1 and retryable(e.value)
    assert _methods(slack) == ["chat.postMessage!429"]


# ---- storms, pacing, backpressure -----------------------------------------------------------------------------
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


def test_history_store_unavailable_the_ticket_is_kept_and_posted_with_a_warning(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack)
    service.history.client.delete_collection(service.history.name)  # the store goes away under the bot
    service.start()
    accept(service, {"id": "h1", "title": "Elevated error rates", "service": "openai"})
    wait_until(lambda: top_level_posts(slack), what="post")
    service.stop()
    assert "History store unavailable" in json.dumps(top_level_posts(slack)[0]["blocks"])
    assert service.store.get("generic:h1").status == "drafted"


def test_old_databases_get_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE tickets (key VARCHAR(300) PRIMARY KEY, ticket JSON NOT NULL, channel VARCHAR(200) "
                  "NOT NULL, status VARCHAR(20) NOT NULL, message_ts VARCHAR(40), draft JSON, resolution TEXT, "
                  "resolved INTEGER, attempts INTEGER, last_error TEXT, created_at DATETIME NOT NULL, "
                  "updated_at DATETIME NOT NULL)")  # fmt: skip
    from bot.store.sql import Store

    store = Store(f"sqlite:///{db}")
    assert store.add_ticket("k", Ticket(id="k", title="t"), "#c") and store.get("k").group_count == 0


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


def test_slack_failing_in_one_channel_does_not_hold_the_others(tmp_path: Path, slack: SlackEmulator) -> None:
    service = make_service(tmp_path, slack, storm_similarity=1.01)
    slack.failing_channels = {"#genai-oncall"}  # the openai route
    service.start()
    try:
        for i in range(3):
            accept(service, {"id": f"o{i}", "title": f"OpenAI errors {i}", "service": "openai"})
        for i in range(3):
            accept(service, {"id": f"c{i}", "title": f"Claude latency {i}", "service": "anthropic"})
        wait_until(lambda: len(posted_keys(slack)) == 3, 30, "the healthy channel's tickets")
        assert posted_keys(slack) == [f"generic:c{i}" for i in range(3)]
        assert service.backlog() == 3  # the failing channel's tickets wait, none lost
        slack.failing_channels = set()
        wait_until(lambda: len(posted_keys(slack)) == 6, 60, "the recovered channel's tickets")
        assert posted_keys(slack)[3:] == [f"generic:o{i}" for i in range(3)]  # in their arrival order
        assert len(set(posted_keys(slack))) == 6  # each exactly once
    finally:
        service.stop()
