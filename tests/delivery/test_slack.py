"""The Slack bot over real HTTP: signed requests into the real slack-bolt app and webhook endpoint, a Slack Web
API emulator on 127.0.0.1, the real embedded Chroma, the real embedding model and the real local LLM."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from slack_sdk.signature import SignatureVerifier

from bot.clock import utcnow
from bot.config import Settings
from bot.models import ChangeEvent, Feedback
from bot.net import free_port
from bot.server import create, webhook_signature
from bot.service import TriageService
from testkit.emulators import SlackEmulator
from tests.conftest import SMALL_HISTORY

SIGNING = "test-signing-secret"
HOOK = "test-webhook-secret"


@pytest.fixture(scope="module")
def emulator() -> Iterator[SlackEmulator]:
    emu = SlackEmulator()
    yield emu
    emu.close()


class Bot:
    def __init__(self, settings: Settings, service: TriageService, base: str, emu: SlackEmulator) -> None:
        self.settings, self.service, self.base, self.emu = settings, service, base, emu
        self.http = httpx.Client(base_url=base, timeout=30)

    def webhook(self, source: str, payload: Any, *, ts: int | None = None, secret: str = HOOK,
                raw: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
        body = raw if raw is not None else json.dumps(payload).encode()
        stamp = str(ts if ts is not None else int(time.time()))
        h = {"content-type": "application/json", "x-incibot-timestamp": stamp,
             "x-incibot-signature": webhook_signature(secret, stamp, body)} | (headers or {})  # fmt: skip
        return self.http.post(f"/webhooks/{source}", content=body, headers=h)

    def slack(self, form: dict[str, str], *, ts: int | None = None, secret: str = SIGNING,
              signed: bool = True) -> httpx.Response:  # fmt: skip
        body = urlencode(form)
        stamp = str(ts if ts is not None else int(time.time()))
        h = {"content-type": "application/x-www-form-urlencoded"}
        if signed:
            sig = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
            h |= {"x-slack-request-timestamp": stamp, "x-slack-signature": sig}
        return self.http.post("/slack/events", content=body, headers=h)

    def click(self, action_id: str, key: str, channel: str, ts: str, user: str = "UALICE") -> httpx.Response:
        payload = {"type": "block_actions", "user": {"id": user}, "team": {"id": "T1"}, "api_app_id": "A1",
                   "trigger_id": f"trig-{action_id}-{key}", "channel": {"id": channel},
                   "container": {"type": "message", "message_ts": ts, "channel_id": channel},
                   "message": {"ts": ts}, "response_url": self.emu.url.replace("/api/", "/respond/x"),
                   "actions": [{"action_id": action_id, "block_id": "feedback", "value": key, "type": "button"}]}  # fmt: skip
        return self.slack({"payload": json.dumps(payload)})

    def submit(
        self, callback_id: str, key: str, values: dict[str, Any], user: str = "UBOB"
    ) -> httpx.Response:
        payload = {"type": "view_submission", "user": {"id": user}, "team": {"id": "T1"}, "api_app_id": "A1",
                   "view": {"id": "V1", "type": "modal", "callback_id": callback_id, "private_metadata": key,
                            "state": {"values": values}}}  # fmt: skip
        return self.slack({"payload": json.dumps(payload)})

    def posted(self, key: str) -> dict[str, Any]:
        """Wait for the bot's first post of a ticket, return that call."""
        return self.emu.wait_for(
            lambda: next((p for p in self.emu.of("chat.postMessage") if key in json.dumps(p)), None)
        )

    def updates(self, ts: str) -> list[dict[str, Any]]:
        return [p for p in self.emu.of("chat.update") if p.get("ts") == ts]


@pytest.fixture(scope="module")
def bot(emulator: SlackEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("slack"),
        seed_demo_history=False,
        llm_backend="local",
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING,
        slack_api_url=emulator.url,
        webhook_secret=HOOK,
        default_channel="#incidents",
        channel_routes={"openai": "#genai-oncall"},
        slack_retries=4,
    )
    service, _, server = create(settings)
    service.history.upsert(SMALL_HISTORY)
    service.start()
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(server, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.02)
    yield Bot(settings, service, f"http://127.0.0.1:{port}", emulator)
    uv.should_exit = True
    thread.join(timeout=10)
    service.stop()


FORMATS: dict[str, tuple[dict[str, Any], str, str]] = {
    "generic": ({"id": "g-1", "title": "Elevated 500 errors on chat completions", "text": "Since 14:05 UTC.",
                 "service": "openai"}, "generic:g-1", "#genai-oncall"),
    "pagerduty": ({"event": {"id": "e1", "event_type": "incident.triggered", "occurred_at": "2024-05-01T10:00:00Z",
                   "data": {"id": "PD123", "type": "incident", "title": "GPU capacity exhausted in us-west",
                            "service": {"summary": "inference"}, "html_url": "https://pd/PD123"}}},
                  "pagerduty:PD123", "#incidents"),
    "opsgenie": ({"action": "Create", "alert": {"alertId": "og-9", "message": "Slow responses from Claude API",
                  "description": "p95 latency 12s", "entity": "anthropic", "createdAt": 1714557600000}},
                 "opsgenie:og-9", "#incidents"),
    "alertmanager": ({"version": "4", "status": "firing", "groupKey": "{}:{alertname=\"HighErrorRate\"}",
                      "commonLabels": {"alertname": "HighErrorRate", "service": "openai"},
                      "commonAnnotations": {"summary": "High 5xx error rate on ChatGPT"},
                      "alerts": [{"status": "firing", "labels": {"alertname": "HighErrorRate", "severity": "page"},
                                  "annotations": {"description": "5xx ratio 7%"}, "startsAt": "2024-05-01T10:00:00Z",
                                  "fingerprint": "abc"}]}, "", "#genai-oncall"),
    "statuspage": ({"incident": {"id": "sp1", "name": "ChatGPT unavailable for some users", "status": "investigating",
                    "impact": "major", "created_at": "2024-05-01T10:00:00Z", "components": [{"name": "ChatGPT"}],
                    "incident_updates": [{"status": "investigating", "body": "We are investigating.",
                                          "created_at": "2024-05-01T10:00:00Z"}]}},
                   "statuspage:sp1", "#incidents"),
}  # fmt: skip


@pytest.mark.e2e
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_webhook_posts_once_then_edits_with_llm_draft(bot: Bot, fmt: str) -> None:
    payload, key, channel = FORMATS[fmt]
    t0 = time.perf_counter()
    r = bot.webhook(fmt, payload)
    assert r.status_code == 202 and r.json()["status"] == "accepted", r.text
    key = key or r.json()["key"]
    post = bot.posted(key)
    first_post_s = time.perf_counter() - t0
    assert post["channel"] == channel and "Retrieval draft" in json.dumps(post["blocks"])
    # Slack answers before the bot stores the message's ts: wait for it (reading it at once races the bot).
    ts = bot.emu.wait_for(lambda: bot.service.store.get(key).message_ts, timeout=30)
    update = bot.emu.wait_for(lambda: bot.updates(ts))[0]
    print(f"{fmt}: first post {first_post_s:.2f}s, LLM edit {time.perf_counter() - t0:.2f}s")
    assert "LLM draft" in json.dumps(update["blocks"]) or "Retrieval-only" in json.dumps(update["blocks"])
    assert bot.service.store.get(key).status == "drafted"
    assert len([p for p in bot.emu.of("chat.postMessage") if key in json.dumps(p)]) == 1
    assert len(update["blocks"]) <= 50 and all(
        len(b.get("text", {}).get("text", "")) <= 3000 for b in update["blocks"]
    )


def test_duplicate_delivery_posts_once(bot: Bot) -> None:
    payload = {"id": "dup-1", "title": "Model returns garbled output after rollout"}
    assert bot.webhook("generic", payload).json()["status"] == "accepted"
    assert bot.webhook("generic", payload).json()["status"] == "duplicate"
    bot.posted("generic:dup-1")
    time.sleep(0.5)
    assert len([p for p in bot.emu.of("chat.postMessage") if "generic:dup-1" in json.dumps(p)]) == 1


def test_slash_command_acks_within_three_seconds(bot: Bot) -> None:
    t0 = time.perf_counter()
    r = bot.slack({"command": "/triage", "text": "Claude API returns overloaded errors", "channel_id": "CSLASH",
                   "user_id": "UALICE", "trigger_id": "trig-slash-1", "team_id": "T1", "token": "x",
                   "response_url": bot.emu.url.replace("/api/", "/respond/1")})  # fmt: skip
    assert r.status_code == 200 and time.perf_counter() - t0 < 3.0
    assert "Triaging" in r.text
    post = bot.posted("slash:trig-slash-1")
    assert post["channel"] == "CSLASH"


def test_slash_help_and_similar(bot: Bot) -> None:
    r = bot.slack({"command": "/triage", "text": "help", "channel_id": "C1", "user_id": "U1", "trigger_id": "t",
                   "team_id": "T1", "token": "x", "response_url": bot.emu.url.replace("/api/", "/respond/2")})  # fmt: skip
    assert "/triage similar" in r.text
    bot.slack({"command": "/triage", "text": "similar GPU capacity throttling", "channel_id": "C1", "user_id": "U1",
               "trigger_id": "t2", "team_id": "T1", "token": "x",
               "response_url": bot.emu.url.replace("/api/", "/respond/3")})  # fmt: skip
    reply = bot.emu.wait_for(lambda: bot.emu.of("respond/3"))
    assert "Rate limit errors (429)" in json.dumps(reply[0]["blocks"])


def test_confirm_correct_reject_are_stored_and_teach_the_history(bot: Bot) -> None:
    r = bot.webhook("generic", {"id": "fb-1", "title": "Inference nodes lost GPUs; image generation failing",
                                "service": "images"})  # fmt: skip
    key = r.json()["key"]
    bot.posted(key)
    row = bot.emu.wait_for(lambda: (x := bot.service.store.get(key)) and x.status == "drafted" and x)
    channel, ts = row.channel, row.message_ts

    assert bot.click("confirm", key, channel, ts).status_code == 200
    assert [f.action for f in bot.service.store.feedback_for(key)] == ["confirm"]  # stored before the ack
    bot.emu.wait_for(
        lambda: any("Confirmed by <@UALICE>" in json.dumps(u["blocks"]) for u in bot.updates(ts))
    )

    bot.click("correct", key, channel, ts)
    modal = bot.emu.wait_for(
        lambda: [v for v in bot.emu.of("views.open") if v["view"]["private_metadata"] == key]
    )
    assert modal[0]["view"]["callback_id"] == "correct_submit"
    values = {"label_symptom": {"value": {"selected_option": {"value": "throttling_capacity"}}},
              "label_root_cause": {"value": {"selected_option": {"value": "infrastructure"}}},
              "label_severity": {"value": {"selected_option": {"value": "sev2"}}},
              "fix": {"value": {"value": "Drained the bad GPU hosts and scaled out the pool."}}}  # fmt: skip
    assert bot.submit("correct_submit", key, values).status_code == 200
    fb = bot.service.store.feedback_for(key)[-1]
    assert (
        fb.action == "correct"
        and fb.labels is not None
        and fb.labels["symptom"] == ["throttling_capacity"]
        and fb.user_id == "UBOB"
    )
    bot.emu.wait_for(lambda: any("Corrected by <@UBOB>" in json.dumps(u["blocks"]) for u in bot.updates(ts)))
    hits = bot.emu.wait_for(lambda: [h for h in bot.service.history.search("image generation failing, GPUs lost", 3)
                                     if h.incident.id == key])  # fmt: skip
    assert hits[0].incident.labels["root_cause"] == ["infrastructure"]
    assert "scaled out the pool" in hits[0].incident.resolution

    bot.click("reject", key, channel, ts)
    bot.emu.wait_for(
        lambda: [v for v in bot.emu.of("views.open") if v["view"]["callback_id"] == "reject_submit"]
    )
    empty = bot.submit("reject_submit", key, {"reason": {"value": {"value": " "}}})
    assert empty.json()["response_action"] == "errors"
    bot.submit("reject_submit", key, {"reason": {"value": {"value": "It was a DNS problem"}}})
    assert bot.service.store.feedback_for(key)[-1].reason == "It was a DNS problem"


def test_click_on_unknown_message_answers_politely(bot: Bot) -> None:
    assert bot.click("confirm", "generic:never-seen", "C9", "123.456").status_code == 200
    eph = bot.emu.wait_for(lambda: [p for p in bot.emu.of("chat.postEphemeral") if p["channel"] == "C9"])
    assert "no longer know" in eph[0]["text"]


def test_resolve_webhook_adds_resolution_to_history(bot: Bot) -> None:
    key = bot.webhook("generic", {"id": "rs-1", "title": "Embeddings API timeouts in EU"}).json()["key"]
    bot.posted(key)
    r = bot.webhook(
        "generic", {"id": "rs-1", "status": "resolved", "resolution": "Failed over to the US region."}
    )
    assert r.status_code == 202 and r.json()["status"] == "resolved"
    got = bot.service.history.get([key])
    assert got and "Failed over" in got[0].resolution
    # A resolve before its open is kept for it (tests/intake/test_resolve_before_open.py); nothing is posted.
    r = bot.webhook("generic", {"id": "never-opened", "status": "resolved", "resolution": "x"})
    assert r.status_code == 202 and r.json()["status"] == "held"
    assert bot.service.store.get("generic:never-opened") is None


def test_slack_429_is_retried_and_nothing_is_lost(bot: Bot) -> None:
    bot.emu.failures["chat.postMessage"] = [(429, {"Retry-After": "1"}), (429, {"Retry-After": "1"})]
    key = bot.webhook("generic", {"id": "rl-1", "title": "Throttling on batch API"}).json()["key"]
    bot.posted(key)
    assert len([m for m, _ in bot.emu.calls if m == "chat.postMessage!429"]) == 2
    assert len([p for p in bot.emu.of("chat.postMessage") if key in json.dumps(p)]) == 1


@pytest.mark.parametrize(
    "case, expected",
    [("unsigned", 401), ("wrong_secret", 401), ("stale", 401)],
)
def test_slack_requests_must_be_signed_and_fresh(bot: Bot, case: str, expected: int) -> None:
    form = {
        "command": "/triage",
        "text": "help",
        "channel_id": "C1",
        "user_id": "U1",
        "trigger_id": "t",
        "team_id": "T1",
    }
    kw: dict[str, Any] = {"unsigned": {"signed": False}, "wrong_secret": {"secret": "nope"},
                          "stale": {"ts": int(time.time()) - 3600}}[case]  # fmt: skip
    assert bot.slack(form, **kw).status_code == expected


def test_webhook_bad_input(bot: Bot) -> None:
    ok = {"id": "bad-x", "title": "t"}
    assert bot.webhook("generic", ok, secret="wrong").status_code == 401
    assert bot.webhook("generic", ok, ts=int(time.time()) - 3600).status_code == 401
    assert bot.http.post("/webhooks/generic", json=ok).status_code == 401  # no signature at all
    assert bot.webhook("generic", None, raw=b"{not json").status_code == 400
    assert bot.webhook("generic", None, raw=b'{"id": "\xff"}').status_code == 400
    r = bot.webhook("nagios", ok)
    assert r.status_code == 404 and "unknown ticket format" in r.json()["error"]
    r = bot.webhook("pagerduty", {"event": {"event_type": "incident.triggered"}})
    assert r.status_code == 422 and "missing field event.data" in r.json()["error"]
    assert bot.webhook("generic", {"id": "x"}).status_code == 422
    assert bot.webhook("generic", [1, 2]).status_code == 400
    assert bot.webhook("generic", None, raw=b"x" * 1_100_000).status_code == 413
    assert bot.webhook("generic", ok, headers={"content-type": "text/plain"}).status_code == 415
    r = bot.webhook("pagerduty", {"event": {"event_type": "incident.acknowledged", "data": {"id": "P9"}}})
    assert r.status_code == 202 and r.json()["status"] == "ignored"


def test_feedback_export_writes_labelled_jsonl(
    bot: Bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    key = bot.webhook("generic", {"id": "ex-1", "title": "Login failures on console"}).json()["key"]
    bot.posted(key)
    bot.emu.wait_for(lambda: bot.service.store.get(key).draft)
    bot.service.record_feedback(
        key,
        Feedback(
            action="correct", user_id="UX", labels={"symptom": ["unavailability"]}, fix="Restarted auth"
        ),
    )
    monkeypatch.setenv("INCIBOT_DATA_DIR", str(bot.settings.data_dir))
    out = tmp_path / "fb.jsonl"
    result = CliRunner().invoke(app, ["feedback", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    mine = next(r for r in rows if r["id"] == key)
    assert mine["labels"] == {"symptom": ["unavailability"]} and "Restarted auth" in mine["resolution"]


def test_slash_changes_lists_a_services_recent_changes(bot: Bot) -> None:
    change = ChangeEvent(id="slash-1", source="launchdarkly", service="chat-api", kind="flag",
                         summary="turned on the flag router-v2", author="Ariel Flores", at=utcnow())  # fmt: skip
    assert bot.service.receive_change(change).status == "accepted"
    form = {
        "command": "/triage",
        "channel_id": "C1",
        "user_id": "U1",
        "trigger_id": "t",
        "team_id": "T1",
        "token": "x",
    }
    r = bot.slack(form | {"text": "changes chat-api"})
    assert "Recent changes to chat-api, newest first" in r.text
    assert "flag 'turned on the flag router-v2' by Ariel Flores at " in r.text and "[launchdarkly]" in r.text
    assert "No recorded change to nothing-here" in bot.slack(form | {"text": "changes nothing-here"}).text
    assert "Usage: /triage changes <service>" in bot.slack(form | {"text": "changes"}).text
