"""The bot against a Slack as strict as Slack (testkit's SlackEmulator): the scopes slack-manifest.yaml grants,
channel membership, ids where Slack takes no names, Block Kit and text limits, metadata, tokens and rate limits.
The emulator's own rules are checked first, then the product under them."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from starlette.testclient import TestClient

from bot.config import PROJECT_ROOT, Settings
from bot.delivery.slack.app import build_app, web_client
from bot.delivery.slack.channels import NotInChannel
from bot.delivery.slack.messages import TICKET_EVENT, SlackMessages
from bot.models import Ticket
from bot.server import build_server
from testkit.emulators import HISTORY_SCOPES, LIST_SCOPES, METHODS, SlackEmulator, manifest_scopes
from tests.helpers import OPS, accept, make_service, posted_keys, wait_until

BOT = PROJECT_ROOT / "bot"
OLD_SCOPES = {"chat:write", "chat:write.public", "commands"}  # the manifest before the lookup needed more


def _client(emu: SlackEmulator, token: str = "xoxb-test") -> WebClient:
    return WebClient(token=token, base_url=emu.url)


def _error(call: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as e:
        call()
    return dict(e.value.response.data)


def _messages(emu: SlackEmulator) -> SlackMessages:
    settings = Settings(seed_demo_history=False, llm_backend="none", slack_bot_token="xoxb-test",
                        slack_api_url=emu.url, slack_retries=2)  # fmt: skip
    return SlackMessages(web_client(settings), settings)


def _methods(emu: SlackEmulator) -> list[str]:
    return [m for m, _ in emu.calls]


@pytest.fixture
def old() -> Iterator[SlackEmulator]:
    """A workspace where the app was installed with the old manifest's scopes."""
    emu = SlackEmulator(scopes=OLD_SCOPES)
    yield emu
    emu.close()


# ---- the manifest grants what the code calls -----------------------------------------------------------------
def called_methods() -> set[str]:
    """Every Web API method the product calls through slack_sdk (client.chat_postMessage -> chat.postMessage)."""
    found: set[str] = set()
    for path in BOT.rglob("*.py"):
        for name in re.findall(
            r"\.((?:chat|conversations|views|auth|users|reactions|apps|files)_\w+)\(", path.read_text()
        ):
            family, _, rest = name.partition("_")
            found.add(f"{family}.{rest}")
    if "files.upload_v2" in found:  # slack_sdk's helper for Slack's upload flow: two Web API methods
        found = found - {"files.upload_v2"} | {"files.getUploadURLExternal", "files.completeUploadExternal"}
    return found


def test_every_web_api_method_the_bot_calls_has_its_scope_in_the_manifest() -> None:
    methods = called_methods()
    assert {"chat.postMessage", "chat.update", "conversations.history", "conversations.join"} <= methods
    granted = manifest_scopes()
    for method in sorted(methods):
        assert method in METHODS, f"{method}: unknown to the emulator (add it, with Slack's scope and tier)"
        scope = METHODS[method][0]
        needed = {"history": set(HISTORY_SCOPES.values()), "list": set(LIST_SCOPES.values())}.get(
            scope or "", {scope} if scope else set()
        )
        assert needed <= granted, f"{method} needs {needed - granted}, not in slack-manifest.yaml"
    assert "commands" in granted  # /triage
    assert "chat:write.public" in granted  # posts to public channels the bot never joined


def test_the_slack_docs_list_the_manifest_scopes() -> None:
    slack_section = (PROJECT_ROOT / "docs" / "slack.md").read_text().split("### Scopes")[1].split("\n## ")[0]
    assert all(f"`{s}`" in slack_section for s in manifest_scopes())


# ---- the emulator is as strict as Slack ---------------------------------------------------------------------
def test_a_missing_scope_is_refused_naming_the_needed_and_provided_scopes(old: SlackEmulator) -> None:
    c = _client(old)
    c.chat_postMessage(channel="#incidents", text="hi")  # chat:write + chat:write.public
    err = _error(lambda: c.conversations_history(channel="C-incidents"))
    assert err["error"] == "missing_scope" and err["needed"] == "channels:history"
    assert set(err["provided"].split(",")) == OLD_SCOPES
    old.add_channel("G-secret", member=True)
    assert _error(lambda: c.conversations_replies(channel="G-secret", ts="1.0"))["needed"] == "groups:history"
    assert _error(lambda: c.conversations_join(channel="C-incidents"))["needed"] == "channels:join"


def test_posting_outside_a_channel_needs_chat_write_public() -> None:
    emu = SlackEmulator(scopes={"chat:write"})
    try:
        c = _client(emu)
        assert _error(lambda: c.chat_postMessage(channel="C-x", text="hi"))["error"] == "not_in_channel"
        emu.add_channel("C-x", member=True)
        assert c.chat_postMessage(channel="C-x", text="hi")["ok"]
    finally:
        emu.close()


def test_membership_joins_and_private_channels(slack: SlackEmulator) -> None:
    c = _client(slack)
    assert _error(lambda: c.conversations_history(channel="C-x"))["error"] == "not_in_channel"
    assert c.conversations_join(channel="C-x")["channel"]["is_member"]
    assert c.conversations_join(channel="C-x")["warning"] == "already_in_channel"
    assert c.conversations_history(channel="C-x")["messages"] == []
    slack.add_channel("G-secret")
    assert _error(lambda: c.chat_postMessage(channel="G-secret", text="x"))["error"] == "channel_not_found"
    assert _error(lambda: c.conversations_history(channel="G-secret"))["error"] == "not_in_channel"
    err = _error(lambda: c.conversations_join(channel="G-secret"))
    assert err["error"] == "method_not_supported_for_channel_type"
    assert _error(lambda: c.conversations_history(channel="G-unknown"))["error"] == "channel_not_found"


def test_channel_names_are_taken_only_where_slack_takes_them(slack: SlackEmulator) -> None:
    c = _client(slack)
    ts = c.chat_postMessage(channel="#incidents", text="x")["ts"]  # postMessage takes names
    for call in (lambda: c.conversations_history(channel="#incidents"),
                 lambda: c.conversations_replies(channel="#incidents", ts=ts),
                 lambda: c.chat_update(channel="#incidents", ts=ts, text="y"),
                 lambda: c.conversations_join(channel="#incidents")):  # fmt: skip
        assert _error(call)["error"] == "channel_not_found"
    assert c.chat_update(channel="C-incidents", ts=ts, text="y")["ok"]
    assert (
        _error(lambda: c.chat_update(channel="C-incidents", ts="1.0", text="y"))["error"]
        == "message_not_found"
    )
    listed = c.conversations_list(types="public_channel,private_channel")["channels"]
    assert {"id": "C-incidents", "name": "incidents"}.items() <= listed[0].items()


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")  # the no_text case
def test_blocks_text_and_metadata_are_checked(slack: SlackEmulator) -> None:
    c = _client(slack)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    too_long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    button = {"type": "actions", "elements": [{"type": "button", "action_id": "a", "text": {"type": "plain_text",
              "text": "x" * 80}}]}  # fmt: skip
    for blocks in ([section] * 51, [too_long], [{"type": "nonsense"}], [button]):
        assert _error(lambda b=blocks: c.chat_postMessage(channel="C-x", text="t", blocks=b))["error"] == (
            "invalid_blocks"
        )
    assert _error(lambda: c.chat_postMessage(channel="C-x", text="x" * 40_001))["error"] == "msg_too_long"
    assert _error(lambda: c.chat_postMessage(channel="C-x", text=""))["error"] == "no_text"
    for metadata in ({"event_payload": {}}, {"event_type": "t", "event_payload": [1]}, {"event_type": 3}):
        err = _error(lambda m=metadata: c.chat_postMessage(channel="C-x", text="t", metadata=m))
        assert err["error"] == "invalid_metadata"
    assert c.chat_postMessage(channel="C-x", text="t", blocks=[section] * 50, metadata={"event_type": "t"})[
        "ok"
    ]
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "x" * 25}, "blocks": [section]}
    assert _error(lambda: c.views_open(trigger_id="t", view=modal))["error"] == "invalid_arguments"


def test_tokens(slack: SlackEmulator) -> None:
    assert _error(lambda: WebClient(base_url=slack.url).auth_test())["error"] == "not_authed"
    assert _error(lambda: _client(slack, "nonsense").auth_test())["error"] == "invalid_auth"
    strict = SlackEmulator(tokens={"xoxb-right"})
    try:
        assert _error(lambda: _client(strict, "xoxb-wrong").auth_test())["error"] == "invalid_auth"
        assert _client(strict, "xoxb-right").auth_test()["ok"]
        strict.revoked.add("xoxb-right")
        assert _error(lambda: _client(strict, "xoxb-right").auth_test())["error"] == "token_revoked"
    finally:
        strict.close()


def test_rate_limits_by_method_when_pacing_is_on(slack: SlackEmulator) -> None:
    c = WebClient(token="xoxb-test", base_url=slack.url, retry_handlers=[])
    for _ in range(6):
        c.chat_postMessage(channel="C-a", text="t")  # pacing off: as fast as the caller goes
    slack.pacing = True
    for _ in range(slack.post_burst):
        c.chat_postMessage(channel="C-b", text="t")  # a short burst is allowed...
    with pytest.raises(SlackApiError) as e:
        c.chat_postMessage(channel="C-b", text="t")  # ...then about one per second in that channel
    assert e.value.response.status_code == 429 and int(e.value.response.headers["Retry-After"]) == 1
    c.chat_postMessage(channel="C-c", text="t")  # another channel is not held
    time.sleep(1.05)
    c.chat_postMessage(channel="C-b", text="t")
    c.conversations_join(channel="C-b")
    with pytest.raises(SlackApiError) as e:
        for _ in range(100):  # Tier 3: 50+ per minute, bursts welcome
            c.conversations_history(channel="C-b")
    reads = len(slack.of("conversations.history"))
    assert e.value.response.status_code == 429 and 5 <= reads < 50


# ---- the product under Slack's rules --------------------------------------------------------------------------
def test_with_the_old_manifest_the_crash_lookup_could_not_work(old: SlackEmulator) -> None:
    """The bug the strict emulator found: only chat:write, chat:write.public and commands were granted."""
    messages = _messages(old)
    messages.post("#incidents", "t", [], {"event_type": TICKET_EVENT, "event_payload": {"key": "k"}})
    err = _error(lambda: messages.find_posted("#incidents", datetime.now(UTC), TICKET_EVENT, "k"))
    assert err == {"ok": False, "error": "missing_scope", "needed": "channels:history",
                   "provided": ",".join(sorted(OLD_SCOPES))}  # fmt: skip


def test_a_lookup_by_name_resolves_the_id_and_joins_the_public_channel_once(slack: SlackEmulator) -> None:
    slack.add_message("#genai-oncall", metadata={"event_type": TICKET_EVENT, "event_payload": {"key": "k1"}})
    messages = _messages(slack)  # a new process: it has posted nothing yet
    found = messages.find_posted("#genai-oncall", datetime.now(UTC), TICKET_EVENT, "k1")
    assert found is not None and found["channel"] == "C-genai-oncall"
    assert _methods(slack) == ["conversations.list", "conversations.history!not_in_channel",
                               "conversations.join", "conversations.history"]  # fmt: skip
    assert messages.find_posted("#genai-oncall", datetime.now(UTC), TICKET_EVENT, "k2") is None
    assert _methods(slack)[4:] == ["conversations.history"]  # id and membership kept
    posted = messages.post("#ops", "t", [], {"event_type": TICKET_EVENT, "event_payload": {"key": "k3"}})
    assert messages.find_posted("#ops", datetime.now(UTC), TICKET_EVENT, "k3")["ts"] == posted["ts"]
    assert "conversations.list" not in _methods(slack)[5:]  # the post's answer gave the id
    assert messages.find_posted("#no-such-channel", datetime.now(UTC), TICKET_EVENT, "k") is None


def test_a_lookup_in_a_private_channel_needs_an_invitation(slack: SlackEmulator) -> None:
    slack.add_channel("G-secret", private=True)
    with pytest.raises(NotInChannel, match="invite it there"):
        _messages(slack).find_posted("G-secret", datetime.now(UTC), TICKET_EVENT, "k")
    slack.channels["G-secret"].member = True  # /invite @incibot
    ts = slack.add_message("G-secret", metadata={"event_type": TICKET_EVENT, "event_payload": {"key": "k"}})
    assert _messages(slack).find_posted("G-secret", datetime.now(UTC), TICKET_EVENT, "k")["ts"] == ts


def test_a_ticket_whose_lookup_is_refused_fails_clearly_and_is_not_posted_twice(
    tmp_path: Path, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    slack.add_channel("G-secret", private=True)  # the bot was never invited
    service = make_service(tmp_path, slack, channel_routes={"openai": "G-secret"})
    accept(service, {"id": "p1", "title": "GPU pool exhausted", "service": "openai"})
    row = service.store.get("generic:p1")
    draft = service.triager.triage(Ticket.model_validate(row.ticket), use_llm=False)
    service.store.update_ticket("generic:p1", status="posting", draft=draft)  # a crash in the post's window
    with caplog.at_level(logging.ERROR, logger="incibot"):
        service.start()
        try:
            failed = wait_until(
                lambda: (r := service.store.get("generic:p1")).status == "failed" and r, 30, "failed"
            )
        finally:
            service.stop()
    assert "invite it there" in (failed.last_error or "") and slack.of("chat.postMessage") == []
    giving_up = [r for r in caplog.records if "giving up on generic:p1" in r.getMessage()]
    assert giving_up and "invite" in giving_up[0].getMessage() and giving_up[0].exc_info is None


def test_a_storm_under_slack_rate_limits_goes_out_once_with_nothing_refused(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    """Real drafts (long, hostile text included) pass Slack's Block Kit, length and metadata checks, and a burst
    into one channel with Slack's pacing on arrives exactly once."""
    slack.pacing = True
    service = make_service(tmp_path, slack, storm_similarity=1.01)
    service.start()
    try:
        for i in range(8):
            accept(service, {"id": f"s{i}", "title": f"Incident {i}: " + "<!channel> *bold* " * 300,
                             "text": "é" * 60_000, "service": "openai"})  # fmt: skip
        keys = [f"generic:s{i}" for i in range(8)]
        wait_until(lambda: len(posted_keys(slack)) == 8, 60, "all posted")
        wait_until(lambda: all(service.store.get(k).status == "drafted" for k in keys), 30, "all drafted")
    finally:
        service.stop()
    assert sorted(posted_keys(slack)) == sorted(keys)
    # A rate-limited post is looked up before it is sent again: the bot joins the channel to read it.
    assert [r for r in slack.refused() if r != "conversations.history!not_in_channel"] == [], slack.refused()


# ---- Bolt: acknowledgements and Slack's redeliveries ---------------------------------------------------------
class SignedSlack:
    def __init__(self, service: Any) -> None:
        app = build_app(service.settings, service.client, service)
        self.http = TestClient(build_server(service.settings, service, app), headers=OPS)

    def post(self, body: str, content_type: str, headers: dict[str, str] | None = None) -> Any:
        stamp = str(int(time.time()))
        sig = SignatureVerifier("s").generate_signature(timestamp=stamp, body=body)  # make_service's secret
        return self.http.post("/slack/events", content=body, headers={
            "content-type": content_type, "x-slack-request-timestamp": stamp, "x-slack-signature": sig,
            **(headers or {})})  # fmt: skip


def test_a_redelivered_event_is_handled_once(tmp_path: Path, slack: SlackEmulator) -> None:
    service = make_service(tmp_path, slack)
    bolt = SignedSlack(service)
    body = json.dumps({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "Ev1",
                       "event_time": int(time.time()),
                       "event": {"type": "app_home_opened", "user": "UALICE", "channel": "D1", "tab": "home"}})  # fmt: skip
    assert bolt.post(body, "application/json").status_code == 200
    for n in (1, 2, 3):  # Slack thought it unacknowledged: up to 3 retries, the same event_id
        retry = {"x-slack-retry-num": str(n), "x-slack-retry-reason": "http_timeout"}
        assert bolt.post(body, "application/json", retry).status_code == 200
    wait_until(lambda: slack.of("views.publish"), 30, "the Home tab")
    time.sleep(0.5)
    assert len(slack.of("views.publish")) == 1
    other = body.replace('"Ev1"', '"Ev2"')  # another event is not a retry
    bolt.post(other, "application/json")
    wait_until(lambda: len(slack.of("views.publish")) == 2, 30, "the second Home tab")


def test_slash_commands_and_button_clicks_are_acknowledged_within_three_seconds(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack)
    service.start()
    bolt = SignedSlack(service)
    try:
        form = {"command": "/triage", "text": "Claude API returns overloaded errors", "channel_id": "C-incidents",
                "user_id": "UALICE", "trigger_id": "trig-ack", "team_id": "T1",
                "response_url": slack.url.replace("/api/", "/respond/ack")}  # fmt: skip
        t0 = time.perf_counter()
        r = bolt.post(urlencode(form), "application/x-www-form-urlencoded")
        assert r.status_code == 200 and time.perf_counter() - t0 < 3.0 and "Triaging" in r.text
        key = "slash:trig-ack"
        row = wait_until(lambda: (x := service.store.get(key)) and x.message_ts and x, 60, "the slash draft")
        for action in ("confirm", "correct", "reject"):
            payload = {"type": "block_actions", "user": {"id": "UBOB"}, "team": {"id": "T1"}, "api_app_id": "A1",
                       "trigger_id": f"trig-{action}", "channel": {"id": row.channel},
                       "container": {"type": "message", "message_ts": row.message_ts, "channel_id": row.channel},
                       "message": {"ts": row.message_ts},
                       "actions": [{"action_id": action, "block_id": "feedback", "value": key, "type": "button"}]}  # fmt: skip
            t0 = time.perf_counter()
            r = bolt.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")
            assert r.status_code == 200 and time.perf_counter() - t0 < 3.0, action
        wait_until(lambda: len(slack.of("views.open")) == 2, 30, "the two modals")
    finally:
        service.stop()
    assert slack.refused() == [], slack.refused()
