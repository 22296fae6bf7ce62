"""Why now, end to end: changes and alerts through the real HTTP endpoints, posts into the Slack emulator.

A deploy to chat-api, an alert on chat-api five minutes later: the post lists the deploy, and the other alert
firing on chat-api. A change that arrives while the incident is open is a reply in its thread. A failing lookup
posts the ticket without its context."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from bot.clock import utcnow
from bot.delivery.context import listing, plain
from bot.models import Feedback
from bot.server import build_server
from bot.service import TriageService
from testkit.emulators import SlackEmulator
from tests.helpers import last_edit, make_service, post_of, reply_count

TOKEN = "change-scenario-token"
AUTH = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}


def iso(minutes_from_now: float) -> str:
    return (utcnow() + timedelta(minutes=minutes_from_now)).isoformat()


@pytest.fixture
def bot(tmp_path: Any, slack: SlackEmulator) -> Iterator[tuple[TestClient, TriageService]]:
    service = make_service(tmp_path, slack, storm_similarity=1.01, webhook_token=TOKEN)
    service.start()
    yield TestClient(build_server(service.settings, service, None)), service
    service.stop()


def change(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"kind": "deploy", "service": "chat-api", "author": "ci-bot", "environment": "production"} | fields
    r = client.post("/webhooks/change", content=json.dumps(body), headers=AUTH)
    assert r.status_code == 202, r.text
    return r.json()


def ticket(client: TestClient, **fields: Any) -> str:
    r = client.post("/webhooks/generic", content=json.dumps(fields), headers=AUTH)
    assert r.status_code == 202 and r.json()["status"] == "accepted", r.text
    return r.json()["key"]


def text_of(post: dict[str, Any]) -> str:
    return json.dumps(post["blocks"])


def test_deploy_then_alert_lists_the_deploy_and_a_change_while_open_is_a_thread_reply(
    bot: tuple[TestClient, TriageService], slack: SlackEmulator
) -> None:
    client, service = bot
    change(client, id="deploy-1", summary="router v2.3.1", at=iso(-5), link="https://ci.example.com/p/1")
    change(client, id="deploy-old", summary="router v2.2.0", at=iso(-300))  # outside the 120-minute window
    change(client, id="other-svc", service="billing", summary="billing v9", at=iso(-3))  # another service
    gpu = ticket(client, id="gpu-1", title="GPU memory above 95%", service="chat-api",
                 link="https://grafana.example.com/d/gpu")  # fmt: skip
    post_of(slack, gpu)
    key = ticket(
        client, id="err-1", title="Elevated 5xx on chat completions", service="chat-api", created_at=iso(0)
    )
    post = text_of(post_of(slack, key))
    assert (
        "Recent changes to chat-api: deploy &#39;router v2.3.1&#39; by ci-bot (production), 5 min before the alert"
        in post
        or "Recent changes to chat-api: deploy 'router v2.3.1' by ci-bot (production), 5 min before the alert"
        in post
    )
    assert "<https://ci.example.com/p/1|link>" in post
    assert "router v2.2.0" not in post and "billing v9" not in post
    assert "Also firing on chat-api: GPU memory above 95% (since " in post
    assert "<https://grafana.example.com/d/gpu|link>" in post
    # The draft keeps it: --json, redraws after a verdict, the LLM edit all show the same.
    row = service.store.get(key)
    assert row is not None and row.draft is not None and row.draft.context is not None
    assert [c.change.id for c in row.draft.context.changes] == ["deploy-1"]
    # ... and the decision read it as evidence (its worth is learned from verdicts: tests/triage/test_evidence.py)
    assert row.draft.evidence == ["alert:resource", "change:deploy"]
    status = service.record_feedback(key, Feedback(action="confirm", user_id="U1"))
    assert status is not None
    service.apply_feedback(key, status)
    last_edit(slack, service, key, "Recent changes to chat-api")
    # A change while the incident is open: a reply in its thread (and in the GPU incident's).
    answer = change(client, id="rollback-1", summary="rollback of router v2.3.1", at=iso(0))
    assert any(k.startswith(f"{key}~change:") for k in answer["replies"])
    reply = text_of(reply_count(slack, key, 1)[0])
    assert "Change on chat-api: deploy" in reply and "rollback of router v2.3.1" in reply and "UTC" in reply
    # A ticket on a service without changes says so; /triage changes lists the service's changes.
    quiet = ticket(client, id="quiet-1", title="Latency on embeddings", service="embeddings")
    assert "Recent changes to embeddings: no recorded change in the 120 min before the alert" in text_of(
        post_of(slack, quiet)
    )
    shown = [plain(x) for x in listing("chat-api", service.recent_changes("chat-api"), utcnow())]
    assert shown[0].startswith("Recent changes to chat-api") and "rollback of router v2.3.1" in shown[1]
    assert len(shown) == 4  # rollback, deploy-1, deploy-old (kept 14 days), header


def test_clock_skew_a_change_stamped_after_the_alert_counts(
    bot: tuple[TestClient, TriageService], slack: SlackEmulator
) -> None:
    client, _ = bot
    change(client, id="skewed", summary="config push", kind="config", at=iso(1.5))  # CI clock 90 s ahead
    change(client, id="later", summary="too late", at=iso(10))  # after the alert: not a cause
    key = ticket(client, id="skew-1", title="Errors after config push", service="chat-api", created_at=iso(0))
    post = text_of(post_of(slack, key))
    assert "min after the alert (clock skew)" in post and "too late" not in post, post


def test_a_failing_lookup_posts_without_context(
    bot: tuple[TestClient, TriageService], slack: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, service = bot

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("changes table unreadable")

    monkeypatch.setattr(service.store.changes, "context", broken)
    key = ticket(client, id="no-ctx", title="Errors on chat completions", service="chat-api")
    post = text_of(post_of(slack, key))
    assert "Recent changes" not in post and "Triage" in post
    row = service.store.get(key)
    assert row is not None and row.draft is not None and row.draft.context is None
