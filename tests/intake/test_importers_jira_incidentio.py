"""The Jira Service Management and incident.io importers against their stand-ins (testkit/incident_apis.py), as
the PagerDuty and Opsgenie ones are tested: a full import, resume after a page that fails mid-way (nothing written
twice), 429 with Retry-After and 5xx, a refused token, triage-time text kept apart from what was learnt later,
ADF and HTML bodies, no text, time zones and --since; and ADF read as text."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.intake.importers import IMPORTERS, ImportOptions, SourceError
from bot.intake.importers.adf import adf_to_text, body_text
from bot.intake.importers.mapping import LabelMapping
from bot.intake.importers.run import Outcome, run_import
from bot.taxonomy import Taxonomy
from testkit.incident_apis import IncidentIoAPI, JiraAPI, incidentio_history, jira_history
from tests.intake.test_importers import CountingStore, cli, fast

MAPPING = """
jira:
  priority: {Highest: {severity: sev1}, High: {severity: sev2}}
  components: {checkout-api: {root_cause: infrastructure}}
  customfield_10010: {Sev 1: {severity: sev1}, Sev 2: {severity: sev2}}
incidentio:
  severity: {Critical: {severity: sev1}, Major: {severity: sev2}}
  Affected Team: {Payments: {root_cause: infrastructure}}
"""


@pytest.fixture
def mapping(settings: Settings, tmp_path: Path) -> LabelMapping:
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING)
    return LabelMapping.load(path, Taxonomy.load(settings.taxonomy_path))


def options(settings: Settings, mapping: LabelMapping | None = None, **kw: Any) -> ImportOptions:
    return ImportOptions(settings=settings, mapping=mapping or LabelMapping(), **kw)


# ---- ADF -----------------------------------------------------------------------------------------------------
def _p(*inline: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(inline)}


def _t(text: str, **mark: str) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": text}
    if mark:
        node["marks"] = [{"type": "link", "attrs": mark}]
    return node


RICH = {
    "type": "doc",
    "version": 1,
    "content": [
        {"type": "heading", "attrs": {"level": 2}, "content": [_t("What we see")]},
        _p(_t("Errors on "), _t("gpt-4o", href="https://grafana.example/d/1"), {"type": "hardBreak"}, _t("since 14:05")),
        {
            "type": "bulletList",
            "content": [
                {"type": "listItem", "content": [_p(_t("eastus"))]},
                {"type": "listItem", "content": [_p(_t("westeurope"))]},
            ],
        },
        {"type": "orderedList", "attrs": {"order": 1}, "content": [{"type": "listItem", "content": [_p(_t("roll back"))]}]},
        {"type": "codeBlock", "attrs": {"language": "sh"}, "content": [_t("kubectl rollout undo deploy/router")]},
        _p(
            {"type": "mention", "attrs": {"id": "5b10a2844c20165700ede21g", "text": "@Mia Krystof"}},
            _t(" see"),
            {"type": "inlineCard", "attrs": {"url": "https://status.example/incidents/1"}},
        ),
        {"type": "panel", "attrs": {"panelType": "info"}, "content": [{"type": "someNewNode", "text": "kept words"}]},
        {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "x", "type": "file"}}]},
    ],
}  # fmt: skip


def test_adf_reads_as_plain_text() -> None:
    assert adf_to_text(RICH).splitlines() == [
        "What we see",
        "Errors on gpt-4o (https://grafana.example/d/1)",
        "since 14:05",
        "- eastus",
        "- westeurope",
        "1. roll back",
        "kubectl rollout undo deploy/router",
        "@Mia Krystof see https://status.example/incidents/1",
        "kept words",  # a node type not known here keeps its text
    ]


def test_body_text_takes_adf_or_html_and_nothing_else() -> None:
    assert body_text("<p>Errors on <b>gpt-4o</b></p><p>since 14:05</p>") == "Errors on gpt-4o\nsince 14:05"
    assert body_text(None) == "" and body_text(42) == "" and body_text({"type": "doc"}) == ""
    deep: dict[str, Any] = {"type": "text", "text": "bottom"}
    for _ in range(500):  # a hostile tree: read to a depth, no recursion error
        deep = {"type": "blockquote", "content": [deep]}
    assert body_text({"type": "doc", "content": [deep]}) == ""


# ---- Jira ----------------------------------------------------------------------------------------------------
EMAIL, TOKEN = "ops@example.com", "jira-token"


def jira_vary(i: int, issue: dict[str, Any]) -> None:
    f = issue["fields"]
    if i == 3:  # nothing known at triage time
        f["summary"], f["description"] = "", None
    if i == 4:
        f["description"] = RICH
    if i == 5:
        f["created"] = "2024-01-01T07:00:00.000+0200"  # 05:00 UTC
    if i == 6:
        f["created"] = "not a time"


@pytest.fixture
def jira() -> Iterator[JiraAPI]:
    issues, comments = jira_history(120, vary=jira_vary)
    api = JiraAPI(issues, comments, TOKEN, email=EMAIL)
    yield api
    api.close()


def jira_settings(settings: Settings, api: JiraAPI, token: str = TOKEN, **kw: Any) -> Settings:
    return fast(
        settings,
        jira_url=api.url,
        jira_email=EMAIL if api.cloud else None,
        jira_api_token=SecretStr(token),
        import_page_size=50,
        **kw,
    )


def test_jira_cloud_full_import(settings: Settings, jira: JiraAPI, mapping: LabelMapping) -> None:
    store = CountingStore(settings)
    report = run_import(IMPORTERS["jira"], options(jira_settings(settings, jira), mapping), store)
    assert report.counts[Outcome.IMPORTED] == 118
    assert {s.id: s.reason for s in report.skipped} == {
        "jira:INC-4": "no summary or description",
        "jira:INC-7": "no readable created",
    }
    searches = [(p, q, h) for p, q, h in jira.requests if p == "/rest/api/3/search/jql"]
    assert len(searches) == 3  # 40 a page, whatever was asked: the importer follows the token, not the count
    basic = base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
    assert all(h["authorization"] == f"Basic {basic}" for _, _, h in jira.requests)
    assert searches[0][1]["jql"] == "project = INC ORDER BY created ASC" and "startAt" not in searches[0][1]
    one = store.get(["jira:INC-2"])[0]
    assert one.title == "Checkout API returns 502s in eu-west, shard 1" and one.text.startswith(
        "The checkout"
    )
    assert one.resolution == "Resolution: Fixed\nRolled back deploy 1 of checkout-api; 502s stopped."
    assert "Rolled back" not in one.body and "investigating" in one.later_text  # hindsight kept out of triage
    assert one.labels == {
        "severity": ["sev2"],
        "root_cause": ["infrastructure"],
    }  # priority first, then the rest
    assert [(s.name, s.value, s.label) for s in one.severity] == [("priority", "High", "sev2")]
    assert one.service == "checkout-api" and one.link == f"{jira.url}/browse/INC-2"
    assert one.resolved_at == one.created_at + timedelta(minutes=45)
    assert store.get(["jira:INC-5"])[0].text.startswith("What we see\nErrors on gpt-4o (https://grafana")
    assert store.get(["jira:INC-6"])[0].created_at == datetime(2024, 1, 1, 5, tzinfo=UTC)
    assert not (settings.data_dir / "imports" / "jira.json").exists()


def test_jira_custom_field_maps_when_priority_does_not(
    settings: Settings, jira: JiraAPI, mapping: LabelMapping
) -> None:
    store = CountingStore(settings)
    run_import(IMPORTERS["jira"], options(jira_settings(settings, jira), mapping), store)
    medium = store.get(["jira:INC-3"])[0]  # priority Medium (unmapped), customfield_10010 "Sev 3" (unmapped)
    assert medium.labels == {"root_cause": ["infrastructure"]}
    assert store.get(["jira:INC-10"])[0].labels["severity"] == ["sev1"]  # priority Lowest, "Sev 1"
    assert "customfield_10010" in jira.requests[0][1]["fields"].split(",")  # the mapped field was asked for


def test_jira_resume_after_a_page_fails_writes_nothing_twice(settings: Settings, jira: JiraAPI) -> None:
    store, s = CountingStore(settings), jira_settings(settings, jira)
    jira.fail("/rest/api/3/search/jql", 500, times=99, skip=2)  # the third page keeps failing
    with pytest.raises(SourceError, match=r"^jira: the API failed \(500\) 3 times"):
        run_import(IMPORTERS["jira"], options(s), store)
    assert len(store.writes) == 79  # two pages of 40 written, one skipped (the unreadable time sorts last)...
    assert '"cursor"' in (settings.data_dir / "imports" / "jira.json").read_text()  # ...and kept
    jira.faults.clear()
    report = run_import(IMPORTERS["jira"], options(s), store)
    assert report.resumed_from and report.counts[Outcome.IMPORTED] == 118 - 79
    assert len(store.writes) == 118 and set(store.writes.values()) == {1}
    again = run_import(IMPORTERS["jira"], options(s), store)  # a new run from the start
    assert again.counts[Outcome.UNCHANGED] == 118 and set(store.writes.values()) == {1}


def test_jira_checkpoint_of_another_query_is_not_used(settings: Settings, jira: JiraAPI) -> None:
    store, s = CountingStore(settings), jira_settings(settings, jira)
    jira.fail("/rest/api/3/search/jql", 500, times=99, skip=1)
    with pytest.raises(SourceError):
        run_import(IMPORTERS["jira"], options(s), store)
    jira.faults.clear()
    jira.requests.clear()
    newest_first = s.model_copy(update={"jira_jql": "project = INC ORDER BY created DESC"})
    report = run_import(IMPORTERS["jira"], options(newest_first), store)
    assert "nextPageToken" not in jira.requests[0][1]  # started over: the saved token was another query's
    assert report.counts[Outcome.IMPORTED] + report.counts[Outcome.UNCHANGED] == 118
    assert set(store.writes.values()) == {1}


def test_jira_429_retry_after_and_5xx(settings: Settings, jira: JiraAPI) -> None:
    jira.fail("/rest/api/3/search/jql", 429, retry_after="1", skip=1)
    jira.fail("/rest/api/3/issue/INC-2/comment", 503)
    t = time.monotonic()
    report = run_import(IMPORTERS["jira"], options(jira_settings(settings, jira)), CountingStore(settings))
    assert time.monotonic() - t >= 1.0  # Retry-After honoured
    assert report.counts[Outcome.IMPORTED] == 118 and jira.count("/rest/api/3/issue/INC-2/comment") == 2


def test_jira_wrong_token_names_source_and_permission(settings: Settings, jira: JiraAPI) -> None:
    with pytest.raises(SourceError) as e:
        run_import(
            IMPORTERS["jira"], options(jira_settings(settings, jira, "expired")), CountingStore(settings)
        )
    assert str(e.value).startswith("jira: 401, refused the token; it needs a Jira Cloud API token")
    assert "Browse projects permission" in str(e.value) and "\n" not in str(e.value)
    assert len(jira.requests) == 1  # a refused token is not retried


def test_jira_missing_settings_is_one_line(settings: Settings) -> None:
    with pytest.raises(
        SourceError, match=r"^jira: set INCIBOT_JIRA_URL to your site and INCIBOT_JIRA_API_TOKEN"
    ):
        run_import(IMPORTERS["jira"], options(settings), CountingStore(settings))


def test_jira_data_center_pages_by_start_at_with_html_bodies(settings: Settings) -> None:
    issues, comments = jira_history(70, cloud=False)
    issues[1]["fields"]["description"] = "<p>Errors on <b>gpt-4o</b></p><p>since 14:05</p>"
    api = JiraAPI(issues, comments, "pat")
    try:
        store = CountingStore(settings)
        report = run_import(IMPORTERS["jira"], options(jira_settings(settings, api, "pat")), store)
        assert report.counts[Outcome.IMPORTED] == 70
        assert all(h["authorization"] == "Bearer pat" for _, _, h in api.requests)
        assert [q["startAt"] for p, q, _ in api.requests if p == "/rest/api/2/search"] == ["0", "40"]
        assert store.get(["jira:INC-2"])[0].text == "Errors on gpt-4o\nsince 14:05"
        assert "Rolled back deploy 1" in store.get(["jira:INC-2"])[0].resolution
    finally:
        api.close()


def test_jira_since_is_read_in_utc_whatever_the_users_time_zone(settings: Settings) -> None:
    issues, comments = jira_history(72)
    api = JiraAPI(issues, comments, TOKEN, email=EMAIL, user_tz=timezone(timedelta(hours=-5)))
    try:
        since = datetime(2024, 1, 2, tzinfo=UTC)  # INC-25 opened then; the JQL's day is read at -05:00
        report = run_import(
            IMPORTERS["jira"],
            options(jira_settings(settings, api), since=since),
            store := CountingStore(settings),
        )
        assert sorted(store.writes, key=lambda k: int(k.split("-")[1]))[0] == "jira:INC-25"
        assert report.counts[Outcome.IMPORTED] == 48 and report.reasons() == {"before --since": 19}
        assert '(project = INC) AND created >= "2024-01-01 00:00"' in api.requests[0][1]["jql"]
    finally:
        api.close()


# ---- incident.io ---------------------------------------------------------------------------------------------
def io_vary(i: int, inc: dict[str, Any]) -> None:
    if i == 2:  # declared by a person with no name: nothing known at triage time (the summary is later)
        inc["name"] = ""
    if i == 3:  # declared from an alert, no name yet
        inc["name"] = ""
        inc["creator"] = {
            "alert": {"id": "01GW2G3V0S59R238FAHPDS1R66", "title": "PG::Error failed to connect"}
        }
    if i == 5:
        inc["incident_timestamp_values"][0]["value"]["value"] = "2024-01-01T07:00:00+02:00"  # 05:00 UTC
    if i == 7:
        inc["mode"] = "test"  # not listed by default
    if i == 8:
        inc["created_at"], inc["incident_timestamp_values"] = "yesterday", []


@pytest.fixture
def io() -> Iterator[IncidentIoAPI]:
    incidents, updates = incidentio_history(120, io_vary)
    api = IncidentIoAPI("io-key", incidents, updates)
    yield api
    api.close()


def io_settings(settings: Settings, api: IncidentIoAPI, key: str = "io-key") -> Settings:
    return fast(settings, incidentio_api_url=api.url, incidentio_api_key=SecretStr(key), import_page_size=25)


def io_id(i: int) -> str:
    return f"incidentio:01HINC{i:020d}"


def test_incidentio_full_import(settings: Settings, io: IncidentIoAPI, mapping: LabelMapping) -> None:
    store = CountingStore(settings)
    report = run_import(IMPORTERS["incidentio"], options(io_settings(settings, io), mapping), store)
    assert report.counts[Outcome.IMPORTED] == 117  # 119 listed (the test incident is not), two skipped
    assert {s.id: s.reason for s in report.skipped} == {
        io_id(2): "no name or alert (the summary is written later: not triage-time text)",
        io_id(8): "no readable created_at",
    }
    assert all(h["authorization"] == "Bearer io-key" for _, _, h in io.requests)
    assert all(q["sort_by"] == "created_at_oldest_first" for p, q, _ in io.requests if p == "/v2/incidents")
    one = store.get([io_id(1)])[0]
    assert one.title == "Payments webhooks delayed by 10 minutes, queue 1" and one.text == ""
    assert "stuck consumer" not in one.body  # the summary is hindsight...
    assert one.resolution.startswith("A stuck consumer on queue 1")  # ...kept as what was learnt
    assert "Restarted consumer 1" in one.resolution and "investigating" not in one.resolution
    assert "Root cause: Consumer 1 deadlocked" in one.later_text and "We're investigating" in one.later_text
    assert one.labels == {"severity": ["sev2"], "root_cause": ["infrastructure"]}  # Major; Affected Team
    assert [(s.name, s.value, s.label) for s in one.severity] == [("severity", "Major", "sev2")]
    assert one.resolved_at == one.created_at + timedelta(minutes=50) and one.link
    alert = store.get([io_id(3)])[0]
    assert alert.title == "PG::Error failed to connect"  # the alert that declared it: known at triage time
    assert store.get([io_id(5)])[0].created_at == datetime(2024, 1, 1, 5, tzinfo=UTC)  # Reported at, +02:00
    assert not store.get([io_id(7)])


def test_incidentio_resume_after_a_page_fails_writes_nothing_twice(
    settings: Settings, io: IncidentIoAPI
) -> None:
    store, s = CountingStore(settings), io_settings(settings, io)
    io.fail("/v2/incidents", 502, times=99, skip=2)  # the third page keeps failing
    with pytest.raises(SourceError, match=r"^incidentio: the API failed \(502\) 3 times"):
        run_import(IMPORTERS["incidentio"], options(s), store)
    assert len(store.writes) == 49  # two pages of 25 written, one skipped (the unreadable time sorts last)
    io.faults.clear()
    io.fail("/v2/incident_updates", 429, retry_after="0")
    report = run_import(IMPORTERS["incidentio"], options(s), store)
    assert report.resumed_from and report.counts[Outcome.IMPORTED] == 117 - 49
    assert len(store.writes) == 117 and set(store.writes.values()) == {1}
    again = run_import(IMPORTERS["incidentio"], options(s), store)
    assert again.counts[Outcome.UNCHANGED] == 117 and set(store.writes.values()) == {1}


def test_incidentio_429_retry_after_and_5xx(settings: Settings, io: IncidentIoAPI) -> None:
    io.fail("/v2/incidents", 429, retry_after="1", skip=1)
    io.fail("/v2/incident_updates", 500, incident_id="01HINC00000000000000000004")
    t = time.monotonic()
    report = run_import(IMPORTERS["incidentio"], options(io_settings(settings, io)), CountingStore(settings))
    assert time.monotonic() - t >= 1.0
    assert report.counts[Outcome.IMPORTED] == 117


def test_incidentio_wrong_key_names_source_and_permission(settings: Settings, io: IncidentIoAPI) -> None:
    with pytest.raises(
        SourceError, match=r"^incidentio: 401, refused the token; it needs an API key that can view"
    ):
        run_import(
            IMPORTERS["incidentio"], options(io_settings(settings, io, "nope")), CountingStore(settings)
        )
    with pytest.raises(SourceError, match=r"^incidentio: set INCIBOT_INCIDENTIO_API_KEY"):
        run_import(IMPORTERS["incidentio"], options(settings), CountingStore(settings))


def test_incidentio_since(settings: Settings, io: IncidentIoAPI) -> None:
    since = datetime(2024, 1, 3, 1, tzinfo=timezone(timedelta(hours=1)))  # 2024-01-03 00:00 UTC
    report = run_import(
        IMPORTERS["incidentio"], options(io_settings(settings, io), since=since), CountingStore(settings)
    )
    asked = next(q for p, q, _ in io.requests if p == "/v2/incidents")
    assert asked["created_at[gte]"] == "2024-01-02"  # a day early: the API reads the date in its own zone
    assert report.counts[Outcome.IMPORTED] == 72
    assert report.reasons() == {"before --since": 24, "no readable created_at": 1}


def test_cli_incidentio_through_the_stand_in() -> None:
    incidents, updates = incidentio_history(12)
    api = IncidentIoAPI("k", incidents, updates)
    env = {
        "INCIBOT_INCIDENTIO_API_URL": api.url,
        "INCIBOT_INCIDENTIO_API_KEY": "k",
        "INCIBOT_IMPORT_PAGE_SIZE": "5",
    }
    try:
        code, output = cli("--from", "incidentio", "--collection", "ioc", env=env)
        assert code == 0 and "incidentio: imported 12, unchanged 0" in output, output
        code, output = cli(
            "--from", "incidentio", "--collection", "ioc", env={**env, "INCIBOT_INCIDENTIO_API_KEY": "x"}
        )
        lines = [ln for ln in output.splitlines() if ln.strip() and not ln.startswith("importing from")]
        assert code == 2 and len(lines) == 1 and "incidentio: 401" in lines[0], output
    finally:
        api.close()


def test_cli_lists_the_new_sources_in_its_errors() -> None:
    code, output = cli("--from", "servicenow")
    lines = [ln for ln in output.splitlines() if ln.strip()]
    want = "unknown source 'servicenow'; use one of: markdown, pagerduty, opsgenie, jira, incidentio"
    assert code == 2 and len(lines) == 1 and want in lines[0], output
    code, output = cli()
    assert code == 2 and "--from markdown|pagerduty|opsgenie|jira|incidentio" in output, output


def test_an_unreachable_jira_names_its_own_setting(settings: Settings) -> None:
    from bot.net import free_port

    s = settings.model_copy(update={"jira_url": f"http://127.0.0.1:{free_port()}", "import_retries": 1,
                                    "jira_api_token": SecretStr("t"), "jira_email": "a@b.c"})  # fmt: skip
    with pytest.raises(SourceError, match=r"^jira: cannot reach .*; check INCIBOT_JIRA_URL$"):
        run_import(IMPORTERS["jira"], options(s), CountingStore(settings))
