"""Every alert source as it really sends (payloads in tests/payloads/, provenance in its README): each sender's
authentication right and wrong, and create / grow or update / resolve / fire again through the real HTTP
endpoint, the store and the outbox, into a Slack emulator. No LLM: the posts are retrieval drafts."""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from bot.config import AuthScheme, Settings
from bot.intake.auth import body_signature, check_webhook_auth, pagerduty_signature, webhook_signature
from bot.intake.occurrences import Outcome, decide
from bot.intake.senders import SENDERS, EventKind, WebhookEvent, accepted_auth, parse, severity_map
from bot.models import SenderIncident
from bot.server import build_server
from bot.service import TriageService
from testkit.emulators import SlackEmulator
from tests.helpers import PAYLOADS, REPO, last_edit, make_service, post_of, reply_count

SECRETS: dict[str, str] = {
    "webhook_secret": "hmac-secret",
    "webhook_token": "bearer-token",
    "webhook_basic_user": "alertmanager",
    "webhook_basic_password": "basic-password",
    "webhook_url_token": "url-token-0123456789",
    "pagerduty_webhook_secret": "pagerduty-secret",
}


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def pointed(payload: dict[str, Any], incident: str) -> dict[str, Any]:
    """A PagerDuty capture re-pointed at one incident id, to play one incident's lifecycle from several
    captures (nothing else changes)."""
    p = copy.deepcopy(payload)
    data = p["event"]["data"]
    (data["incident"] if data.get("type") in ("incident_note", "incident_status_update") else data)["id"] = (
        incident
    )
    return p


def credentials(scheme: AuthScheme, body: bytes, *, wrong: bool = False) -> tuple[str, dict[str, str]]:
    """(URL suffix, headers) that present one scheme's credential, right or wrong."""
    bad = "x" if wrong else ""
    if scheme == AuthScheme.HMAC:
        ts = str(int(time.time()))
        return "", {"x-incibot-timestamp": ts,
                    "x-incibot-signature": webhook_signature(SECRETS["webhook_secret"] + bad, ts, body)}  # fmt: skip
    if scheme == AuthScheme.BEARER:
        return "", {"authorization": f"Bearer {SECRETS['webhook_token']}{bad}"}
    if scheme == AuthScheme.BASIC:
        pair = f"{SECRETS['webhook_basic_user']}:{SECRETS['webhook_basic_password']}{bad}"
        return "", {"authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    if scheme == AuthScheme.PAGERDUTY:
        return "", {
            "x-pagerduty-signature": pagerduty_signature(SECRETS["pagerduty_webhook_secret"] + bad, body)
        }
    # Change senders' schemes (tests/intake/test_changes.py): alert senders refuse them.
    if scheme == AuthScheme.GITHUB:
        return "", {"x-hub-signature-256": "sha256=" + body_signature("github-secret" + bad, body)}
    if scheme == AuthScheme.GITLAB:
        return "", {"x-gitlab-token": "gitlab-token" + bad}
    if scheme == AuthScheme.LAUNCHDARKLY:
        return "", {"x-ld-signature": body_signature("launchdarkly-secret" + bad, body)}
    return f"/{SECRETS['webhook_url_token']}{bad}", {}


@pytest.fixture(scope="module")
def bot(
    emu: SlackEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, TriageService]]:
    service = make_service(tmp_path_factory.mktemp("senders"), emu, storm_similarity=1.01, **SECRETS)
    service.start()
    client = TestClient(build_server(service.settings, service, None))
    yield client, service
    service.stop()


def send(client: TestClient, source: str, payload: Any, scheme: AuthScheme | None = None, **kw: Any) -> Any:
    """POST a payload with the first scheme the source accepts by default (or the one given)."""
    body = json.dumps(payload).encode()
    suffix, headers = credentials(scheme or SENDERS[source].auth[0], body, **kw)
    return client.post(f"/webhooks/{source}{suffix}", content=body,
                       headers={"content-type": "application/json"} | headers)  # fmt: skip


def ok(resp: Any, status: str) -> str:
    assert resp.status_code == 202 and resp.json()["status"] == status, resp.text
    return resp.json()["key"]


# ---- authentication: each sender x each scheme, right, wrong, missing, in the wrong place ---------------------
SOURCES_PAYLOADS = {
    "generic": {"id": "auth-probe", "title": "Elevated 500 errors on chat completions"},
    "pagerduty": load("pagerduty/zulip-acknowledged_v3.json"),
    "alertmanager": load("alertmanager/zulip-alert.json"),
    "opsgenie": load("opsgenie/zulip-addnote.json"),
    "statuspage": load("statuspage/zulip-component_status_update.json"),
}


@pytest.mark.parametrize("source", list(SOURCES_PAYLOADS))
@pytest.mark.parametrize("scheme", list(AuthScheme))
def test_each_scheme_right_and_wrong_for_each_sender(
    bot: tuple[TestClient, TriageService], source: str, scheme: AuthScheme
) -> None:
    client, _ = bot
    payload = SOURCES_PAYLOADS[source]
    right = send(client, source, payload, scheme)
    wrong = send(client, source, payload, scheme, wrong=True)
    if scheme in SENDERS[source].auth:
        assert right.status_code == 202, right.text
        assert wrong.status_code == 401
        assert f"{source} expects" in wrong.json()["error"]
    else:  # a credential this sender cannot use is refused, naming what it should send instead
        assert right.status_code == 401 and wrong.status_code == 401
        assert source in right.json()["error"]
    for r in (right, wrong):  # never echoed
        assert not any(v in r.text for v in SECRETS.values() if len(v) > 12)


def test_refusals_say_what_the_source_expects(bot: tuple[TestClient, TriageService]) -> None:
    client, _ = bot
    body = json.dumps(SOURCES_PAYLOADS["pagerduty"]).encode()
    missing = client.post("/webhooks/pagerduty", content=body, headers={"content-type": "application/json"})
    assert missing.status_code == 401
    assert missing.json()["error"].startswith("no credentials; pagerduty expects X-PagerDuty-Signature")
    r = client.post("/webhooks/pagerduty", content=body,
                    headers={"content-type": "application/json", "x-pagerduty-signature": "sha256=abc"})  # fmt: skip
    assert "no v1 signature" in r.json()["error"]
    # A Basic password that is wrong, and an HMAC signature that is stale.
    r = send(client, "alertmanager", SOURCES_PAYLOADS["alertmanager"], AuthScheme.BASIC, wrong=True)
    assert r.json()["error"].startswith(
        "wrong Basic user or password; alertmanager expects Authorization: Bearer"
    )
    stale = str(int(time.time()) - 3600)
    r = client.post("/webhooks/generic", content=b"{}", headers={"content-type": "application/json",
                    "x-incibot-timestamp": stale, "x-incibot-signature": webhook_signature("hmac-secret", stale, b"{}")})  # fmt: skip
    assert r.status_code == 401 and r.json()["error"].startswith("stale timestamp")
    # The token in the wrong place: in the URL for a sender that sends headers, in a header for Statuspage.
    r = client.post(f"/webhooks/alertmanager?token={SECRETS['webhook_url_token']}", content=b"{}",
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 401 and "does not take a token in the URL" in r.json()["error"]
    r = client.post("/webhooks/statuspage", content=b"{}", headers={"content-type": "application/json",
                    "authorization": f"Bearer {SECRETS['webhook_url_token']}"})  # fmt: skip
    assert r.status_code == 401 and r.json()["error"].startswith(
        "wrong bearer token; statuspage expects the token"
    )
    r = client.post(f"/webhooks/statuspage?token={SECRETS['webhook_token']}", content=b"{}",
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 401 and r.json()["error"].startswith("wrong token in the URL")


def test_pagerduty_rotation_and_query_token(bot: tuple[TestClient, TriageService]) -> None:
    client, _ = bot
    payload = SOURCES_PAYLOADS["pagerduty"]
    body = json.dumps(payload).encode()
    both = f"{pagerduty_signature('old-secret', body)}, {pagerduty_signature(SECRETS['pagerduty_webhook_secret'], body)}"
    r = client.post("/webhooks/pagerduty", content=body,
                    headers={"content-type": "application/json", "x-pagerduty-signature": both})  # fmt: skip
    assert r.status_code == 202 and r.json()["status"] == "ignored"  # acknowledged changes nothing shown
    r = client.post(f"/webhooks/statuspage?token={SECRETS['webhook_url_token']}",
                    content=json.dumps(SOURCES_PAYLOADS["statuspage"]), headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 202


def test_per_source_choice_and_unconfigured_source() -> None:
    only_bearer = Settings(webhook_token="t", webhook_secret="s", webhook_auth={"alertmanager": ["bearer"]})
    body = b"{}"
    ts = str(int(time.time()))
    signed = {"x-incibot-timestamp": ts, "x-incibot-signature": webhook_signature("s", ts, body)}
    assert check_webhook_auth(only_bearer, "alertmanager", signed, body) is not None  # HMAC not chosen for it
    assert check_webhook_auth(only_bearer, "generic", signed, body) is None
    pd_only = Settings(pagerduty_webhook_secret="p")
    why = check_webhook_auth(pd_only, "statuspage", {}, body, url_token="anything")
    assert why is not None and why.startswith("no credential is configured for statuspage")
    assert check_webhook_auth(Settings(), "statuspage", {}, body) is None  # nothing configured: local use


def test_url_tokens_are_hidden_in_access_logs() -> None:
    import logging

    from bot.intake.auth import HideUrlTokens

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:1", "POST", "/webhooks/statuspage/s3cret?x=1&token=s3cret", "1.1", 202),
                               None)  # fmt: skip
    HideUrlTokens().filter(record)
    assert "s3cret" not in record.getMessage() and "/webhooks/statuspage/***" in record.getMessage()


# ---- the registry: every sender has payloads, auth tests, documented defaults --------------------------------
@pytest.mark.parametrize("source", list(SENDERS))
def test_every_sender_parses_each_of_its_payloads(source: str) -> None:
    files = sorted((PAYLOADS / source).glob("*.json"))
    assert files, f"add {source}'s real payloads to tests/payloads/{source}/, provenance in its README"
    for f in files:
        ev = parse(source, json.loads(f.read_text()))
        assert isinstance(ev, WebhookEvent) and ev.source == source, f.name


def test_every_sender_is_in_the_auth_matrix() -> None:
    assert set(SOURCES_PAYLOADS) == set(SENDERS)


def test_the_docs_document_each_senders_auth_defaults() -> None:
    readme = (REPO / "docs" / "senders.md").read_text()
    section = readme.split("## Connecting alert sources", 1)[1].split("\n\n", 3)[2]
    words = {"our HMAC": AuthScheme.HMAC, "Bearer": AuthScheme.BEARER, "Basic": AuthScheme.BASIC,
             "PagerDuty's signature": AuthScheme.PAGERDUTY, "a token in the URL": AuthScheme.URL_TOKEN}  # fmt: skip
    documented = {}
    for row in section.splitlines()[2:]:
        source, accepts = (cell.strip() for cell in row.strip("|").split("|")[:2])
        documented[source.strip("`")] = tuple(words[x.split(" (")[0]] for x in accepts.split(", "))
    assert documented == {name: s.auth for name, s in SENDERS.items()}


def test_operator_settings_replace_a_senders_defaults_per_source() -> None:
    s = Settings(
        webhook_auth={"alertmanager": ["bearer"], "statuspage": []},
        severity_map={"pagerduty": {"p1": "sev2"}, "custom": {"high": "sev1"}},
    )
    assert list(accepted_auth(s, "alertmanager")) == [AuthScheme.BEARER]
    assert list(accepted_auth(s, "statuspage")) == []  # an empty list accepts nothing
    assert accepted_auth(s, "opsgenie") == SENDERS["opsgenie"].auth
    assert accepted_auth(s, "no-such-sender") == SENDERS["generic"].auth
    assert severity_map(s, "pagerduty") == {"p1": "sev2"}  # the whole map: P2..P5 are no longer mapped
    assert severity_map(s, "custom") == {"high": "sev1"}
    assert severity_map(s, "alertmanager") == SENDERS["alertmanager"].severity_map
    assert severity_map(Settings(), "generic") == {} and severity_map(Settings(), "unknown") == {}


# ---- what each sender's payload becomes --------------------------------------------------------------------
def test_parsed_fields_from_real_payloads() -> None:
    pd = parse("pagerduty", load("pagerduty/zulip-reopened_v3.json")).ticket
    assert (
        pd
        and pd.text
        and "priority P3" in pd.text
        and pd.link == "https://harsh0303.pagerduty.com/incidents/Q05XJA8GDXGOB3"
    )
    assert [(s.name, s.value) for s in pd.severity] == [("priority", "P3"), ("urgency", "low")]
    docs = parse("pagerduty", load("pagerduty/docs-priority_updated.json"))
    assert docs.kind == EventKind.UPDATE and [s.value for s in docs.severity] == ["P1", "high"]
    og = parse("opsgenie", load("opsgenie/zulip-create.json")).ticket
    assert og and og.service == "Server" and "Tags: vip" in og.text and og.severity[0].value == "P3"
    # A real alert whose entity is empty and whose source is Alertmanager's URL (created by a person's address):
    # the service comes from the alert's details, never from `source` or `username`.
    watch = load("opsgenie/watchops-addnote-p1.json") | {"action": "Create"}
    og2 = parse("opsgenie", watch).ticket
    assert (
        og2
        and og2.service == "gdpr-deleter-srv"
        and og2.severity[0].value == "P1"
        and "Teams: Tech" in og2.text
    )
    am = parse("alertmanager", load("alertmanager/debian-0.25-truncated.json")).ticket
    assert am and "left 1 more alert(s) out of this notification" in am.text
    assert [x.label for x in am.links] == ["Runbook", "Source", "Alertmanager"]
    many = load("alertmanager/zulip-alert.json")
    many["alerts"] = [a | {"fingerprint": f"{i:016x}"} for i in range(30) for a in many["alerts"][:1]]
    assert "… and 10 more alerts not listed here." in (parse("alertmanager", many).ticket or am).text
    sp = parse("statuspage", load("statuspage/docs-incident_monitoring.json")).ticket
    assert sp and sp.link == "http://j.mp/18zyDQx" and sp.severity[0].value == "critical"
    assert "monitoring: A fix has been implemented" in sp.text and "investigating: The cloud" in sp.text
    comp = parse("statuspage", load("statuspage/zulip-component_status_update.json"))
    assert comp.kind == EventKind.UPDATE and comp.component == "sqm6pl84wzjc"


def test_stock_resolutions_are_not_fixes() -> None:
    assert parse("pagerduty", load("pagerduty/zulip-resolved_v3.json")).resolution == ""
    assert parse("opsgenie", load("opsgenie/zulip-close.json")).resolution == ""
    assert parse("alertmanager", load("alertmanager/debian-0.25-resolved.json")).resolution == ""
    merged = load("pagerduty/zulip-resolved_v3.json")
    # PagerDuty's documented ResolveReason: type merge_resolve_reason with an incident_reference.
    merged["event"]["data"]["resolve_reason"] = {"type": "merge_resolve_reason", "incident": load(
        "pagerduty/zulip-annotated_v3.json")["event"]["data"]["incident"]}  # fmt: skip
    ev = parse("pagerduty", merged)
    assert ev.resolution == "" and ev.merged_into is not None
    assert ev.merged_into.url == "https://harsh0303.pagerduty.com/incidents/Q3B15VLMF3ASBD"


def test_occurrences_quiet_period_and_overlap() -> None:
    fired = parse("alertmanager", load("alertmanager/debian-0.25-firing.json"))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = decide(None, fired, t0, 3600)
    assert first.outcome == Outcome.NEW and first.thread is not None
    state = first.thread.model_copy(update={"version": 1})
    refired = parse("alertmanager", load("alertmanager/debian-0.25-refired.json"))  # no alert in common
    assert decide(state, refired, t0 + timedelta(minutes=5), 3600).outcome == Outcome.UPDATE  # lately active
    assert decide(state, refired, t0 + timedelta(hours=2), 3600).outcome == Outcome.NEW  # quiet, no overlap
    grown = parse("alertmanager", load("alertmanager/debian-0.25-grown.json"))  # still shows the first alert
    assert decide(state, grown, t0 + timedelta(hours=2), 3600).outcome == Outcome.UPDATE
    assert decide(state, fired, t0 + timedelta(hours=2), 3600).outcome == Outcome.DUPLICATE
    closed = SenderIncident.model_validate(state.model_dump() | {"open": False})
    assert decide(closed, fired, t0, 3600).outcome == Outcome.DUPLICATE  # a late redelivery
    step = decide(closed, refired, t0, 3600)
    assert step.outcome == Outcome.NEW and step.key.endswith("#2")


# ---- lifecycles over HTTP ----------------------------------------------------------------------------------
def test_alertmanager_fire_grow_resolve_fire_again(
    bot: tuple[TestClient, TriageService], emu: SlackEmulator
) -> None:
    client, service = bot
    key = ok(send(client, "alertmanager", load("alertmanager/debian-0.25-firing.json")), "accepted")
    post = json.dumps(post_of(emu, key)["blocks"])
    assert "<https://runbooks.example/high-error-rate|Runbook>" in post
    assert "Alertmanager: http://[IP_ADDRESS_1]:39094" in post  # its IP address is redacted, so not a link
    assert "alertmanager says severity critical (SEV2 major)" in post
    assert ok(send(client, "alertmanager", load("alertmanager/debian-0.25-firing.json")), "duplicate") == key
    assert ok(send(client, "alertmanager", load("alertmanager/debian-0.25-grown.json")), "updated") == key
    grown = reply_count(emu, key, 1)[0]
    assert grown["thread_ts"] == service.store.get(key).message_ts and "gpu-b" in json.dumps(grown["blocks"])
    assert ok(send(client, "alertmanager", load("alertmanager/debian-0.25-resolved.json")), "resolved") == key
    assert "All 2 alert(s) of the group resolved" in json.dumps(reply_count(emu, key, 2)[1]["blocks"])
    last_edit(emu, service, key, "Resolved in alertmanager")
    assert service.store.get(key).resolution is None and service.history.get([key]) == []
    again = ok(send(client, "alertmanager", load("alertmanager/debian-0.25-refired.json")), "accepted")
    assert again == f"{key}#2"
    assert f"occurrence 2 (previous: `{key}`)" in json.dumps(post_of(emu, again)["blocks"])
    # The first firing, delivered late: nothing new.
    assert (
        ok(send(client, "alertmanager", load("alertmanager/debian-0.25-firing.json")), "duplicate") == again
    )


def test_pagerduty_trigger_priority_note_resolve_reopen_merge(
    bot: tuple[TestClient, TriageService], emu: SlackEmulator
) -> None:
    client, service = bot
    key = ok(send(client, "pagerduty", load("pagerduty/zulip-triggered_v3.json")), "accepted")
    post = json.dumps(post_of(emu, key)["blocks"])
    assert "<https://pig208.pagerduty.com/incidents/PFQZPSY|pagerduty incident>" in post
    assert "PagerDuty incident #9: service pig208; urgency high." in post
    prio = pointed(load("pagerduty/docs-priority_updated.json"), "PFQZPSY")
    assert ok(send(client, "pagerduty", prio), "updated") == key
    assert "priority P1, urgency high" in json.dumps(reply_count(emu, key, 1)[0]["blocks"])
    last_edit(emu, service, key, "pagerduty says priority P1, urgency high (SEV1 critical)")
    note = pointed(load("pagerduty/zulip-annotated_v3.json"), "PFQZPSY")
    assert ok(send(client, "pagerduty", note), "updated") == key
    assert "Running KILL on long-running queries" in json.dumps(reply_count(emu, key, 2)[1]["blocks"])
    assert ok(
        send(client, "pagerduty", pointed(load("pagerduty/zulip-resolved_v3.json"), "PFQZPSY")), "resolved"
    )
    assert service.store.get(key).resolution is None  # "Resolved in PagerDuty." is not a fix
    reopened = ok(
        send(client, "pagerduty", pointed(load("pagerduty/zulip-reopened_v3.json"), "PFQZPSY")), "accepted"
    )
    assert reopened == f"{key}#2"
    merged = pointed(load("pagerduty/zulip-resolved_v3.json"), "PFQZPSY")
    merged["event"]["id"] = "merge-event"  # a second resolve of the same incident is a new event
    merged["event"]["data"]["resolve_reason"] = {"type": "merge_resolve_reason", "incident": load(
        "pagerduty/zulip-annotated_v3.json")["event"]["data"]["incident"]}  # fmt: skip
    assert ok(send(client, "pagerduty", merged), "resolved") == reopened
    reply = json.dumps(reply_count(emu, reopened, 1)[0]["blocks"])
    assert (
        "<https://harsh0303.pagerduty.com/incidents/Q3B15VLMF3ASBD|Merged into Critical: Checkout API"
        in reply
    )
    assert service.store.get(reopened).resolution is None
    r = send(client, "pagerduty", load("pagerduty/zulip-acknowledged_v3.json"))
    assert r.json()["status"] == "ignored" and "incident.acknowledged" in r.json()["reason"]


def test_opsgenie_create_note_close_and_a_new_alert(
    bot: tuple[TestClient, TriageService], emu: SlackEmulator
) -> None:
    client, service = bot
    create = load("opsgenie/zulip-create.json")
    key = ok(send(client, "opsgenie", create), "accepted")
    post = json.dumps(post_of(emu, key)["blocks"])
    assert "service *Server*" in post and "opsgenie says priority P3 (SEV3 minor)" in post
    assert "test@example.com" not in post
    assert ok(send(client, "opsgenie", create, AuthScheme.BASIC), "duplicate") == key
    note = load("opsgenie/zulip-addnote.json")
    note["alert"]["alertId"] = create["alert"]["alertId"]  # the captures are of two alerts: one lifecycle
    assert ok(send(client, "opsgenie", note), "updated") == key
    assert "note to test alert" in json.dumps(reply_count(emu, key, 1)[0]["blocks"])
    close = load("opsgenie/zulip-close.json")
    close["alert"]["alertId"] = create["alert"]["alertId"]
    assert ok(send(client, "opsgenie", close), "resolved") == key
    assert service.store.get(key).resolution is None  # "Closed in Opsgenie." is not a fix
    # Opsgenie opens a new alert (new alertId, same alias) when it fires after a close: a new ticket.
    again = create | {"alert": create["alert"] | {"alertId": "a-new-alert-id"}}
    assert ok(send(client, "opsgenie", again), "accepted") == "opsgenie:a-new-alert-id"


def test_statuspage_by_url_token_update_component_resolve_reopen(
    bot: tuple[TestClient, TriageService], emu: SlackEmulator
) -> None:
    client, service = bot
    created = load("statuspage/zulip-incident_created.json")
    key = ok(send(client, "statuspage", created), "accepted")
    assert "<http://stspg.io/646947c1e|statuspage incident>" in json.dumps(post_of(emu, key)["blocks"])
    unrelated = load("statuspage/zulip-component_status_update.json")
    r = send(client, "statuspage", unrelated)
    assert (
        r.json()["status"] == "ignored" and "no open Statuspage incident has component" in r.json()["reason"]
    )
    ours = copy.deepcopy(unrelated)  # the same notification about the incident's own component
    ours["component_update"]["component_id"] = ours["component"]["id"] = "zvdm6f7gf76j"
    assert ok(send(client, "statuspage", ours), "updated") == key
    assert "operational -&gt; under_maintenance" in json.dumps(reply_count(emu, key, 1)[0]["blocks"])
    assert ok(send(client, "statuspage", load("statuspage/zulip-incident_update.json")), "resolved") == key
    assert service.store.get(key).resolution == "The database issue is resolved."
    assert ok(send(client, "statuspage", created), "duplicate") == key  # a late redelivery
    reopened = copy.deepcopy(created)  # investigating again, with a new update (Statuspage reopens in place)
    update = reopened["incident"]["incident_updates"][0] | {"id": "reopen1", "status": "investigating",
                                                             "created_at": "2017-12-26T09:00:00.000Z"}  # fmt: skip
    reopened["incident"] |= {
        "status": "investigating",
        "incident_updates": [update, *created["incident"]["incident_updates"]],
    }
    assert ok(send(client, "statuspage", reopened), "accepted") == f"{key}#2"


def test_service_holding_personal_data_is_redacted(
    bot: tuple[TestClient, TriageService], emu: SlackEmulator
) -> None:
    client, service = bot
    key = ok(send(client, "generic", {"id": "pii-svc", "title": "Checkout errors", "service": "jane.doe@corp.example",
                                      "severity": "sev2", "link": "https://tickets.example/1?token=abcdef123456"}),
             "accepted")  # fmt: skip
    stored = service.store.get(key).ticket.model_dump(mode="json")
    assert stored["service"] == "[EMAIL_1]" and "jane.doe" not in json.dumps(post_of(emu, key))
    assert stored["severity"] == [{"name": "severity", "value": "sev2", "label": "sev2"}]


def test_racing_deliveries_store_one_ticket(bot: tuple[TestClient, TriageService]) -> None:
    _, service = bot
    event = parse("alertmanager", load("alertmanager/debian-0.25-firing.json") | {"groupKey": "{}:{racing}"})
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(service.accept(event))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == ["accepted"] + ["duplicate"] * 7
