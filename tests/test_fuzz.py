"""Property-based fuzzing of the HTTP endpoints (hypothesis): random JSON, wrong types, deep nesting, huge strings,
invalid UTF-8 and wrong content types into the webhooks and the Slack endpoint, properly signed so they reach
the parsers. Never a 5xx; every 202 "accepted" ticket is in the store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier
from starlette.testclient import TestClient

from bot.delivery.slack.app import build_app
from bot.intake.senders import SOURCES
from bot.server import build_server, webhook_signature
from bot.service import TriageService
from testkit.emulators import SlackEmulator
from tests.helpers import make_service

HOOK, SIGNING = "fuzz-hook-secret", "fuzz-signing-secret"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50)
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)  # fmt: skip
FIELDS = ["id", "title", "text", "description", "service", "component", "created_at", "status", "resolution",
          "event", "data", "event_type", "action", "alert", "alerts", "labels", "annotations", "incident",
          "component_update", "page", "meta", "fingerprint", "startsAt", "message", "alertId"]  # fmt: skip
# Payloads shaped like the real formats, with any value in any field: where parsers meet wrong types.
shaped = st.dictionaries(
    st.sampled_from(FIELDS), json_values | st.dictionaries(st.sampled_from(FIELDS), json_values)
)


def deep(n: int) -> bytes:
    """JSON nested n levels (json.dumps itself cannot write it)."""
    return (b'{"event": {"data": ' * n) + b'"x"' + (b"}}" * n)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TriageService]]:
    emu = SlackEmulator()
    service = make_service(
        tmp_path_factory.mktemp("fuzz"),
        emu,
        webhook_secret=HOOK,
        slack_signing_secret=SIGNING,
        max_backlog=10**6,
    )
    client = TestClient(
        build_server(service.settings, service, build_app(service.settings, service.client, service))
    )
    yield client, service
    emu.close()


def _signed_webhook(client: TestClient, source: str, body: bytes, ctype: str) -> Any:
    ts = str(int(time.time()))
    headers = {
        "content-type": ctype,
        "x-incibot-timestamp": ts,
        "x-incibot-signature": webhook_signature(HOOK, ts, body),
    }
    return client.post(f"/webhooks/{source}", content=body, headers=headers)


def _check(resp: Any, service: TriageService) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code == 202 and resp.json().get("status") == "accepted":
        assert service.store.get(resp.json()["key"]) is not None


@FUZZ
@given(source=st.sampled_from([*SOURCES, "unknown"]), payload=json_values | shaped)
def test_webhooks_never_5xx_on_any_json(
    app: tuple[TestClient, TriageService], source: str, payload: Any
) -> None:
    client, service = app
    _check(_signed_webhook(client, source, json.dumps(payload).encode(), "application/json"), service)


@FUZZ
@given(
    source=st.sampled_from(SOURCES),
    body=st.binary(max_size=300)
    | st.just(deep(5000))
    | st.just(b"[" * 100_000 + b"]" * 100_000)
    | st.just(json.dumps({"id": "big", "title": "x" * 900_000}).encode())
    | st.just(b'{"id": "\xff\xfe", "title": "bad utf-8"}'),
    ctype=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "json"]
    ),
)
def test_webhooks_never_5xx_on_bytes_nesting_huge_or_wrong_types(
    app: tuple[TestClient, TriageService], source: str, body: bytes, ctype: str
) -> None:
    client, service = app
    _check(_signed_webhook(client, source, body, ctype), service)


slack_payloads = st.fixed_dictionaries(
    {"type": st.sampled_from(["block_actions", "view_submission", "view_closed", "shortcut", "x"])},
    optional={
        "user": json_values | st.fixed_dictionaries({"id": st.text(max_size=12)}),
        "actions": json_values | st.lists(st.fixed_dictionaries(
            {"action_id": st.sampled_from(["confirm", "correct", "reject", "label_history", "zzz"]), "value": json_values}), max_size=2),
        "view": json_values | st.fixed_dictionaries(
            {"callback_id": st.sampled_from(["correct_modal", "reject_modal", "correct_submit", "label_history_submit", "x"]), "private_metadata": json_values,
             "state": json_values}),
        "container": json_values, "channel": json_values, "message": json_values, "trigger_id": json_values,
    },
)  # fmt: skip
slack_forms = st.one_of(
    slack_payloads.map(lambda p: {"payload": json.dumps(p)}),
    st.dictionaries(st.sampled_from(["payload", "command", "text", "user_id", "channel_id", "response_url"]),
                    st.text(max_size=80), max_size=5),
    st.fixed_dictionaries({"command": st.just("/triage"), "text": st.text(max_size=200),
                           "user_id": st.text(max_size=10), "channel_id": st.text(max_size=10)}),
)  # fmt: skip


@FUZZ
@given(form=slack_forms, as_json=st.booleans())
def test_slack_endpoint_never_5xx_on_signed_garbage(
    app: tuple[TestClient, TriageService], form: dict[str, str], as_json: bool
) -> None:
    client, _ = app
    body = json.dumps(form) if as_json else urlencode(form)
    ts = str(int(time.time()))
    sig = SignatureVerifier(SIGNING).generate_signature(timestamp=ts, body=body)
    ctype = "application/json" if as_json else "application/x-www-form-urlencoded"
    resp = client.post(
        "/slack/events",
        content=body,
        headers={"content-type": ctype, "x-slack-request-timestamp": ts, "x-slack-signature": sig},
    )
    assert resp.status_code < 500, (form, resp.text)


def test_after_fuzzing_a_real_ticket_is_still_accepted_and_stored(
    app: tuple[TestClient, TriageService],
) -> None:
    client, service = app
    resp = _signed_webhook(
        client, "generic", b'{"id": "after-fuzz", "title": "API errors"}', "application/json"
    )
    assert resp.status_code == 202 and service.store.get("generic:after-fuzz") is not None
