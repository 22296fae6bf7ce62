"""Hostile and careless input on every endpoint: lone UTF-16 surrogates, nesting at every depth, invalid UTF-8,
NUL, bidi and zero-width controls. Never a 5xx; what is accepted is stored whole and clean, what is refused is not
stored at all."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bot.delivery.slack.app import build_app
from bot.intake.senders import SOURCES
from bot.server import build_server, webhook_signature
from bot.service import TriageService
from bot.store.schema import tickets
from bot.text import MAX_JSON_DEPTH
from testkit.emulators import SlackEmulator
from tests.helpers import PAYLOADS, make_service, wait_until

HOOK, SIGNING = "hostile-hook-secret", "hostile-signing-secret"
UNSAFE = re.compile("[\x00\ud800-\udfff\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\u061c]")
FUZZ = settings(
    max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TriageService]]:
    emu = SlackEmulator()
    service = make_service(tmp_path_factory.mktemp("hostile"), emu, webhook_secret=HOOK,
                           slack_signing_secret=SIGNING, max_backlog=10**6)  # fmt: skip
    server = build_server(service.settings, service, build_app(service.settings, service.client, service))
    yield TestClient(server), service
    emu.close()


def hook(client: TestClient, source: str, body: bytes) -> Any:
    ts = str(int(time.time()))
    headers = {"content-type": "application/json", "x-incibot-timestamp": ts,
               "x-incibot-signature": webhook_signature(HOOK, ts, body)}  # fmt: skip
    return client.post(f"/webhooks/{source}", content=body, headers=headers)


def slack(client: TestClient, body: bytes, signed: bool = True) -> Any:
    ts = str(int(time.time()))
    mac = hmac.new(SIGNING.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": ts,
               "x-slack-signature": "v0=" + (mac if signed else "0" * 64)}  # fmt: skip
    return client.post("/slack/events", content=body, headers=headers)


def stored_keys(service: TriageService) -> set[str]:
    with service.store.engine.connect() as c:
        return {r[0] for r in c.execute(tickets.select().with_only_columns(tickets.c.key))}


def clean_everywhere(service: TriageService, key: str) -> None:
    row = service.store.get(key)
    assert row is not None
    assert not UNSAFE.search(row.ticket.model_dump_json()), row.ticket
    assert row.shown is None or not UNSAFE.search(row.shown.model_dump_json())


def with_each_string(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {k: with_each_string(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [with_each_string(v, change) for v in value]
    return value


@pytest.mark.parametrize("path", sorted(PAYLOADS.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_lone_surrogate_in_every_field_of_every_real_payload_is_stored_replaced(
    app: tuple[TestClient, TriageService], path: Path
) -> None:
    client, service = app
    payload = json.loads(path.read_text())
    # Half an emoji (a lone high surrogate as a JSON escape) and bidi/zero-width controls in every string.
    bad = with_each_string(payload, lambda s: f"{s}\ud83d\u202e\u200b\x00" if s else s)
    before = stored_keys(service)
    resp = hook(
        client, path.parent.name, json.dumps(bad).encode()
    )  # ensure_ascii: the escapes as senders send
    assert resp.status_code < 500, resp.text
    if resp.json().get("status") in ("accepted", "updated"):
        for key in stored_keys(service) - before:
            clean_everywhere(service, key)


@pytest.mark.parametrize("source", SOURCES)
def test_nesting_at_every_depth_from_1_to_1000_is_accepted_or_refused_never_a_5xx_or_half_stored(
    app: tuple[TestClient, TriageService], source: str
) -> None:
    client, service = app
    for depth in range(1, 1001):
        as_list = depth % 2 == 0
        nested = (
            (b"[" * depth + b"1" + b"]" * depth) if as_list else (b'{"a": ' * depth + b"1" + b"}" * depth)
        )
        key = f"deep-{depth}-{source}"
        body = b'{"id": "%s", "title": "GPU errors", "extra": %s}' % (key.encode(), nested)
        before = stored_keys(service) if depth + 1 > MAX_JSON_DEPTH and depth % 50 == 0 else None
        resp = hook(client, source, body)
        assert resp.status_code < 500, (depth, resp.text)
        if depth + 1 > MAX_JSON_DEPTH:
            assert resp.status_code == 400, (depth, resp.text)
            assert "nested deeper" in resp.text or "RecursionError" in resp.text
            if before is not None:
                assert stored_keys(service) == before
        elif source == "generic":
            assert resp.status_code == 202 and service.store.get(f"generic:{key}") is not None, depth


@FUZZ
@given(
    text=st.text(st.characters(codec=None, categories=["Cc", "Cf", "Cs", "Zs", "Ll", "So"]), max_size=60),
    source=st.sampled_from(SOURCES),
)
def test_control_characters_and_surrogates_in_text_never_5xx_and_are_stored_clean(
    app: tuple[TestClient, TriageService], text: str, source: str
) -> None:
    client, service = app
    key = f"ctl-{abs(hash((text, source)))}"
    body = json.dumps({"id": key, "title": f"GPU {text} errors", "text": text, "service": text}).encode()
    resp = hook(client, source, body)
    assert resp.status_code < 500, resp.text
    if source == "generic" and resp.status_code == 202:
        clean_everywhere(service, f"generic:{key}")


@FUZZ
@given(body=st.binary(max_size=200).filter(lambda b: not _utf8(b)), signed=st.booleans())
def test_slack_bodies_that_are_not_utf8_are_refused_401_unsigned_400_signed(
    app: tuple[TestClient, TriageService], body: bytes, signed: bool
) -> None:
    client, _ = app
    assert slack(client, body, signed).status_code == (400 if signed else 401)


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_a_slash_command_with_nul_surrogate_and_bidi_is_stored_clean(
    app: tuple[TestClient, TriageService],
) -> None:
    client, service = app
    form = {"command": "/triage", "text": "GPU \x00pool\ud800 \u202eexhausted\u200b in westus", "user_id": "U1",
            "channel_id": "C1", "trigger_id": "hostile-1", "team_id": "T1", "token": "x", "response_url": "http://127.0.0.1:9/"}  # fmt: skip
    body = urlencode(form, encoding="utf-8", errors="surrogatepass").encode()
    assert slack(client, body).status_code == 200
    row = wait_until(lambda: service.store.get("slash:hostile-1"), what="the slash ticket stored")
    # A form body carries UTF-8 percent-encoded: the surrogate's three bytes are not UTF-8, each becomes U+FFFD.
    assert row.ticket.text == "GPU pool\ufffd\ufffd\ufffd exhausted in westus"
    clean_everywhere(service, "slash:hostile-1")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, 480])
def test_a_signed_slack_payload_nested_too_deep_is_a_400(
    app: tuple[TestClient, TriageService], depth: int
) -> None:
    client, _ = app
    payload = (
        '{"type": "block_actions", "user": {"id": "U1"}, "x": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    )
    assert slack(client, urlencode({"payload": payload}).encode()).status_code == 400


def test_a_reject_reason_with_a_lone_surrogate_is_stored_replaced(
    app: tuple[TestClient, TriageService],
) -> None:
    client, service = app
    assert hook(client, "generic", b'{"id": "hostile-r", "title": "API errors"}').status_code == 202
    payload = {"type": "view_submission", "user": {"id": "U1"}, "team": {"id": "T1"}, "api_app_id": "A1",
               "view": {"id": "V1", "type": "modal", "callback_id": "reject_submit", "private_metadata": "generic:hostile-r",
                        "state": {"values": {"reason": {"value": {"value": "bad \ud800 reason \u202e"}}}}}}  # fmt: skip
    assert slack(client, urlencode({"payload": json.dumps(payload)}).encode()).status_code == 200
    assert [f.reason for f in service.store.feedback_for("generic:hostile-r")] == ["bad \ufffd reason"]


def test_ticket_and_history_files_are_cleaned_and_nesting_bounded(tmp_path: Path) -> None:
    from bot.intake.files import InputError, read_history, read_ticket

    ticket = tmp_path / "t.json"
    ticket.write_text('{"id": "f1", "title": "GPU \\ud83d pool\\u202e", "text": "zero\\u200bwidth\\u0000"}')
    t = read_ticket(ticket)
    assert (t.title, t.text) == ("GPU \ufffd pool", "zerowidth")
    deep = tmp_path / "deep.json"
    deep.write_text('{"id": "f2", "title": "t", "x": ' + '{"a": ' * 300 + "1" + "}" * 300 + "}")
    with pytest.raises(InputError, match="nested too deeply"):
        read_ticket(deep)
    history = tmp_path / "h.jsonl"
    history.write_text(
        '{"id": "h1", "title": "API \\udfff errors", "text": "", "created_at": "2024-01-01T00:00:00Z"}\n'
    )
    assert read_history(history, "jsonl")[0].title == "API \ufffd errors"
