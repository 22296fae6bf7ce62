"""Change events as each sender really sends them (payloads in tests/payloads/, provenance in its README), through
the real HTTP endpoint into the SQL store: each sender's authentication right, wrong and missing, the HTTP answer,
duplicates, unknown services, ignored events, malformed and huge bodies, and a flood of deploys."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from bot.clock import utcnow
from bot.config import AuthScheme, Settings
from bot.intake.auth import body_signature, webhook_signature
from bot.intake.changes import CHANGE_SENDERS, Ignored, accepted_auth, map_service, parse_change
from bot.models import ChangeEvent, ChangeKind
from bot.server import build_server
from bot.service import TriageService
from bot.store.tickets import Priority, TicketKind
from testkit.emulators import SlackEmulator
from tests.helpers import PAYLOADS, REPO, make_service

SECRETS: dict[str, str] = {
    "webhook_secret": "hmac-secret-for-changes",
    "webhook_token": "bearer-token-for-changes",
    "webhook_basic_user": "argocd",
    "webhook_basic_password": "basic-password-for-changes",
    "github_webhook_secret": "github-secret-0123456789",
    "gitlab_webhook_token": "gitlab-token-0123456789",
    "launchdarkly_webhook_secret": "launchdarkly-secret-0123456789",
}
SERVICE_MAP = {"Codertocat/Hello-World@production": "chat-api", "guestbook": "chat-api"}
HEADERS = {"github": {"x-github-event": "deployment_status"}}


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


PAYLOAD = {
    "change": "change/readme-deploy.json",
    "github": "github/octokit-deployment_status.json",
    "gitlab": "gitlab/gitlab4j-deployment-event.json",
    "argocd": "argocd/readme-app-deployed.json",
    "launchdarkly": "launchdarkly/docs-environment-renamed.json",
}


def with_id(sender: str, payload: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The same delivery about another change (a new id), to send one payload several times as new changes."""
    p = copy.deepcopy(payload)
    if sender == "change":
        p["id"] += suffix
    elif sender == "github":
        p["deployment_status"]["id"] = f"{p['deployment_status']['id']}{suffix}"
    elif sender == "gitlab":
        p["deployment_id"] = f"{p['deployment_id']}{suffix}"
    elif sender == "argocd":
        p["revision"] += suffix
    else:
        p["_id"] += suffix
    return p


def credentials(scheme: AuthScheme, body: bytes, wrong: bool = False) -> dict[str, str]:
    bad = "x" if wrong else ""
    if scheme == AuthScheme.GITHUB:
        return {
            "x-hub-signature-256": "sha256=" + body_signature(SECRETS["github_webhook_secret"] + bad, body)
        }
    if scheme == AuthScheme.GITLAB:
        return {"x-gitlab-token": SECRETS["gitlab_webhook_token"] + bad}
    if scheme == AuthScheme.LAUNCHDARKLY:
        return {"x-ld-signature": body_signature(SECRETS["launchdarkly_webhook_secret"] + bad, body)}
    if scheme == AuthScheme.HMAC:
        ts = str(int(time.time()))
        return {"x-incibot-timestamp": ts,
                "x-incibot-signature": webhook_signature(SECRETS["webhook_secret"] + bad, ts, body)}  # fmt: skip
    if scheme == AuthScheme.BEARER:
        return {"authorization": f"Bearer {SECRETS['webhook_token']}{bad}"}
    pair = f"{SECRETS['webhook_basic_user']}:{SECRETS['webhook_basic_password']}{bad}"
    return {"authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def url(sender: str) -> str:
    return "/webhooks/change" if sender == "change" else f"/webhooks/change/{sender}"


def send(client: TestClient, sender: str, payload: Any, scheme: AuthScheme | None = None, wrong: bool = False,
         headers: dict[str, str] | None = None) -> Any:  # fmt: skip
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    creds = credentials(scheme or CHANGE_SENDERS[sender].auth[0], body, wrong)
    return client.post(url(sender), content=body, headers={"content-type": "application/json"}
                       | HEADERS.get(sender, {}) | creds | (headers or {}))  # fmt: skip


@pytest.fixture(scope="module")
def bot(
    emu: SlackEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, TriageService]]:
    service = make_service(tmp_path_factory.mktemp("changes"), emu, storm_similarity=1.01,
                           change_service_map=SERVICE_MAP, webhook_max_bytes=200_000, **SECRETS)  # fmt: skip
    client = TestClient(build_server(service.settings, service, None))
    yield client, service


# ---- parsing real payloads -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sender", list(CHANGE_SENDERS))
def test_every_change_sender_parses_each_of_its_payloads(sender: str) -> None:
    files = sorted((PAYLOADS / sender).glob("*.json"))
    assert files, f"add {sender}'s real payloads to tests/payloads/{sender}/, provenance in its README"
    for f in files:
        change = parse_change(sender, json.loads(f.read_text()), {})  # GitHub's event header is optional here
        assert isinstance(change, ChangeEvent) and change.source == sender, f.name


def test_fields_from_real_payloads() -> None:
    gh = parse_change(
        "github", load("github/octokit-deployment_status.json"), {"x-github-event": "deployment_status"}
    )
    assert isinstance(gh, ChangeEvent)
    assert (gh.service, gh.kind, gh.summary, gh.author, gh.environment) == (
        "Codertocat/Hello-World", ChangeKind.DEPLOY, "master@f95f852", "Codertocat", "production")  # fmt: skip
    assert gh.at == datetime(2019, 5, 15, 15, 20, 55, tzinfo=UTC)
    created = parse_change("github", load("github/octokit-deployment.json"), {"x-github-event": "deployment"})
    assert (
        isinstance(created, ChangeEvent)
        and created.summary == "master@f95f852 (started)"
        and created.id != gh.id
    )
    gl = parse_change("gitlab", load("gitlab/gitlab4j-deployment-event.json"), {})
    assert isinstance(gl, ChangeEvent) and gl.service == "root/test-deployment-webhooks"
    assert gl.at == datetime(2021, 4, 28, 19, 50, tzinfo=UTC)  # "21:50:00 +0200", kept in UTC
    assert (gl.summary, gl.author, gl.environment) == ("Add new file (279484c0)", "root", "staging")
    argo = parse_change("argocd", load("argocd/readme-app-deployed.json"), {})
    assert (
        isinstance(argo, ChangeEvent)
        and argo.summary == "sync to 4773b9f"
        and argo.author == "automated sync"
    )
    ld = parse_change("launchdarkly", load("launchdarkly/docs-environment-renamed.json"), {})
    assert isinstance(ld, ChangeEvent) and (ld.kind, ld.service, ld.environment) == (
        ChangeKind.CONFIG,
        "alexis",
        "test",
    )
    assert ld.author == "Reese Applebaum" and ld.link == "https://app.launchdarkly.com/settings#/projects"
    # A flag change: the same audit-log entry about a flag (LaunchDarkly's documented resource syntax).
    flag = load("launchdarkly/docs-environment-renamed.json") | {"kind": "flag", "name": "Router v2",
                                                                  "titleVerb": "turned on the flag"}  # fmt: skip
    flag["target"] = {"name": "Router v2", "resources": ["proj/alexis:env/production:flag/router-v2"]}
    f = parse_change("launchdarkly", flag, {})
    assert isinstance(f, ChangeEvent) and (f.kind, f.service, f.environment) == (
        ChangeKind.FLAG,
        "router-v2",
        "production",
    )
    assert f.describe() == "flag 'turned on the flag Router v2' by Reese Applebaum (production)"


def test_events_that_record_no_change_are_ignored() -> None:
    status = load("github/octokit-deployment_status.json")
    status["deployment_status"]["state"] = "in_progress"
    assert isinstance(parse_change("github", status, {"x-github-event": "deployment_status"}), Ignored)
    assert isinstance(parse_change("github", {"zen": "Keep it simple."}, {"x-github-event": "ping"}), Ignored)
    assert isinstance(parse_change("github", {}, {"x-github-event": "push"}), Ignored)
    running = load("gitlab/gitlab4j-deployment-event.json") | {"status": "running"}
    assert isinstance(parse_change("gitlab", running, {}), Ignored)
    assert isinstance(parse_change("gitlab", {"object_kind": "push"}, {}), Ignored)
    assert isinstance(
        parse_change("argocd", load("argocd/readme-app-deployed.json") | {"phase": "Running"}, {}), Ignored
    )
    member = load("launchdarkly/docs-environment-renamed.json") | {"kind": "member"}
    assert isinstance(parse_change("launchdarkly", member, {}), Ignored)


def test_service_mapping_and_unknown_services() -> None:
    s = Settings(
        change_service_map={"org/router@production": "chat-api", "org/router": "router", "flag-x": "chat-api"}
    )
    base = ChangeEvent(id="1", source="github", service="org/router", kind="deploy", at=utcnow())
    assert map_service(s, base.model_copy(update={"environment": "production"}))[0].service == "chat-api"
    assert map_service(s, base.model_copy(update={"environment": "staging"}))[0].service == "router"
    unknown, mapped = map_service(s, base.model_copy(update={"service": "org/other"}))
    assert unknown.service == "org/other" and not mapped  # kept under the sender's own name


# ---- over HTTP: authentication, answers, duplicates ----------------------------------------------------------
@pytest.mark.parametrize("sender", list(CHANGE_SENDERS))
def test_auth_right_wrong_and_missing_per_sender(bot: tuple[TestClient, TriageService], sender: str) -> None:
    client, _ = bot
    payload = with_id(sender, load(PAYLOAD[sender]), "-auth")
    for scheme in CHANGE_SENDERS[sender].auth:
        wrong = send(client, sender, payload, scheme, wrong=True)
        assert wrong.status_code == 401, wrong.text
        assert f"{sender} expects" in wrong.json()["error"]
    body = json.dumps(payload).encode()
    missing = client.post(
        url(sender), content=body, headers={"content-type": "application/json"} | HEADERS.get(sender, {})
    )
    assert missing.status_code == 401 and missing.json()["error"].startswith("no credentials")
    right = send(client, sender, payload)
    assert right.status_code == 202 and right.json()["status"] == "accepted", right.text
    for r in (wrong, missing, right):
        assert not any(v in r.text for v in SECRETS.values() if len(v) > 12)
    # Another scheme (the generic format's Bearer token) does not let a signed sender in.
    if AuthScheme.BEARER not in CHANGE_SENDERS[sender].auth:
        assert send(client, sender, payload, AuthScheme.BEARER).status_code == 401


def test_generic_format_takes_each_of_our_schemes(bot: tuple[TestClient, TriageService]) -> None:
    client, _ = bot
    for n, scheme in enumerate((AuthScheme.HMAC, AuthScheme.BEARER, AuthScheme.BASIC)):
        r = send(client, "change", with_id("change", load(PAYLOAD["change"]), f"-scheme{n}"), scheme)
        assert r.status_code == 202, r.text
    assert list(accepted_auth(Settings(webhook_auth={"argocd": ["basic"]}), "argocd")) == [AuthScheme.BASIC]


def test_duplicate_delivery_is_stored_once(bot: tuple[TestClient, TriageService]) -> None:
    client, service = bot
    payload = with_id("gitlab", load(PAYLOAD["gitlab"]), "-dup")
    first, again = send(client, "gitlab", payload), send(client, "gitlab", payload)
    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert [c.id for c in service.store.changes.latest("root/test-deployment-webhooks", 100)].count(
        "root/test-deployment-webhooks/deployments/15-dup/success") == 1  # fmt: skip


def test_mapped_and_unmapped_service_answers(bot: tuple[TestClient, TriageService]) -> None:
    client, service = bot
    r = send(client, "github", with_id("github", load(PAYLOAD["github"]), "-map"))
    assert r.json()["service"] == "chat-api" and r.json()["mapped"] is True and "reason" not in r.json()
    r = send(client, "gitlab", with_id("gitlab", load(PAYLOAD["gitlab"]), "-unmapped"))
    answer = r.json()
    assert (
        r.status_code == 202
        and answer["mapped"] is False
        and answer["service"] == "root/test-deployment-webhooks"
    )
    assert "no change_service_map entry for 'root/test-deployment-webhooks'" in answer["reason"]
    assert service.recent_changes("root/test-deployment-webhooks")  # stored under the sender's own name


def test_ignored_deliveries_are_answered_200_with_the_reason(bot: tuple[TestClient, TriageService]) -> None:
    client, _ = bot
    status = load(PAYLOAD["github"])
    status["deployment_status"]["state"] = "queued"
    r = send(client, "github", status)
    assert (
        r.status_code == 200 and r.json()["status"] == "ignored" and "deployment queued" in r.json()["reason"]
    )
    r = send(client, "github", {"zen": "Design for failure."}, headers={"x-github-event": "ping"})
    assert r.status_code == 200 and r.json()["status"] == "ignored"


def test_bad_bodies(bot: tuple[TestClient, TriageService]) -> None:
    client, service = bot
    huge = json.dumps(load(PAYLOAD["change"]) | {"summary": "x" * 300_000}).encode()
    assert send(client, "change", huge).status_code == 413
    r = send(client, "change", b"{not json")
    assert r.status_code == 400 and "not valid UTF-8 JSON" in r.json()["error"]
    r = send(client, "change", b"[1, 2]")
    assert r.status_code == 400 and "JSON object" in r.json()["error"]
    r = send(client, "change", {"id": "x", "service": "chat-api"})
    assert r.status_code == 422 and r.json()["error"] == "missing field kind"
    r = send(client, "change", {"id": "x", "service": "chat-api", "kind": "reboot"})
    assert r.status_code == 422 and r.json()["error"].startswith("invalid field kind")
    r = send(client, "change", {"id": "x", "service": "chat-api", "kind": "deploy", "at": "yesterday"})
    assert r.status_code == 422 and "unreadable time in field at" in r.json()["error"]
    r = send(client, "gitlab", {"object_kind": "deployment", "status": "success", "project": []})
    assert r.status_code == 422
    body = json.dumps(load(PAYLOAD["change"])).encode()
    r = client.post("/webhooks/change", content=body, headers={"content-type": "text/plain"}
                    | credentials(AuthScheme.BEARER, body))  # fmt: skip
    assert r.status_code == 415
    r = client.post("/webhooks/change/jenkins", content=body, headers={"content-type": "application/json"}
                    | credentials(AuthScheme.BEARER, body))  # fmt: skip
    assert r.status_code == 404 and "unknown change sender" in r.json()["error"]
    long = load(PAYLOAD["change"]) | {"id": "long-summary", "summary": "y" * 5000}  # cut, not refused
    assert send(client, "change", long).status_code == 202
    assert len(service.store.changes.latest("chat-api", 200)[0].summary) <= 500


def test_changes_are_redacted_like_tickets(bot: tuple[TestClient, TriageService]) -> None:
    client, service = bot
    p = load(PAYLOAD["change"]) | {"id": "pii", "service": "billing", "author": "jane.doe@corp.example",
                                    "link": "https://ci.example.com/run?token=ghp_0123456789abcdefghij0123456789abcdef"}  # fmt: skip
    assert send(client, "change", p).status_code == 202
    stored = service.store.changes.latest("billing")[0]
    assert stored.author == "[EMAIL_1]" and "ghp_0123456789" not in (stored.link or "")


def test_a_flood_of_deploys_is_one_insert_each_and_queues_nothing(
    bot: tuple[TestClient, TriageService],
) -> None:
    _, service = bot
    before = service.backlog()
    t0 = time.perf_counter()
    now = utcnow()
    for i in range(1000):
        change = ChangeEvent(id=f"flood-{i}", service=f"svc-{i % 40}", kind="deploy", summary=f"build {i}",
                             at=now - timedelta(seconds=i), author="ci-bot")  # fmt: skip
        assert service.receive_change(change).status == "accepted"
    elapsed = time.perf_counter() - t0
    assert service.backlog() == before  # no incident open on those services: nothing to post
    assert elapsed < 60, f"1,000 changes took {elapsed:.1f} s"
    print(f"1,000 changes stored in {elapsed:.2f} s ({elapsed:.2f} ms each)")


def test_the_docs_document_each_change_sender() -> None:
    text = (REPO / "docs" / "senders.md").read_text()
    section = text.split("## Connecting change sources", 1)[1].split("\n## ", 1)[0]
    for name in CHANGE_SENDERS:
        assert url(name) in section, name
    for setting in ("INCIBOT_GITHUB_WEBHOOK_SECRET", "INCIBOT_GITLAB_WEBHOOK_TOKEN",
                    "INCIBOT_LAUNCHDARKLY_WEBHOOK_SECRET", "INCIBOT_CHANGE_SERVICE_MAP", "argocd-notifications-cm"):  # fmt: skip
        assert setting in section, setting


def test_change_replies_are_low_priority_and_capped(tmp_path: Any) -> None:
    from bot.intake.changes.receiver import ChangeIntake
    from bot.store.sql import Store
    from bot.triage.redact import redactor
    from tests.helpers import receive

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert (
        receive(store, {"id": "open-1", "title": "Errors on chat-api", "service": "chat-api"}) == "accepted"
    )
    intake = ChangeIntake(Settings(change_replies_max=3), store, redactor())
    keys = []
    for i in range(5):
        keys += intake.receive(
            ChangeEvent(id=f"c{i}", service="chat-api", kind="config", at=utcnow())
        ).replies
    assert len(keys) == 3  # at most change_replies_max per incident
    rows = [store.get(k) for k in keys]
    assert all(r is not None and r.kind == TicketKind.UPDATE and r.priority == Priority.LOW
               and r.parent_key == "generic:open-1" for r in rows)  # fmt: skip
    old = ChangeEvent(id="late", service="chat-api", kind="deploy", at=utcnow() - timedelta(days=1))
    assert intake.receive(old).replies == []  # a late delivery of an old change is stored, not announced


def test_retention_is_pruned_by_the_service(bot: tuple[TestClient, TriageService]) -> None:
    _, service = bot
    old = ChangeEvent(id="ancient", service="retention", kind="infra", at=utcnow() - timedelta(days=30))
    assert service.receive_change(old).status == "accepted" and service.recent_changes("retention")
    assert service.prune_changes(force=True) >= 1
    assert service.recent_changes("retention") == []
    assert service.prune_changes() == 0  # at most once an hour per replica, unless forced


def test_change_paths_are_not_masked_in_access_logs() -> None:
    import logging

    from bot.intake.auth import HideUrlTokens

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:1", "POST", "/webhooks/change/github", "1.1", 202), None)  # fmt: skip
    HideUrlTokens().filter(record)
    assert "/webhooks/change/github" in record.getMessage()
