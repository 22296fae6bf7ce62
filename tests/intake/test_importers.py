"""History importers against the API stand-ins (testkit/incident_apis.py): a full import, resume after a page
that fails mid-way (nothing written twice), 429 with Retry-After and 5xx, a refused token, the offset limit,
triage-time text kept apart from what was learnt later, HTML, no text and time zones."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.intake.importers import IMPORTERS, ImportOptions, SourceError, pagerduty
from bot.intake.importers.mapping import LabelMapping
from bot.intake.importers.run import Outcome, run_import
from bot.models import HistoricalIncident
from bot.taxonomy import Taxonomy
from testkit.incident_apis import OpsgenieAPI, PagerDutyAPI, opsgenie_history, pagerduty_history
from testkit.memory_history import MemoryHistory

MAPPING = Path(__file__).resolve().parents[2] / "taxonomies" / "import-mapping.example.yaml"


class CountingStore(MemoryHistory):
    """The in-memory history, counting how often each id is written. Vectors are a constant: what is tested is
    which records are written, not how they are embedded."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.writes: Counter[str] = Counter()

    def upsert(
        self,
        incidents: Sequence[HistoricalIncident],
        progress: Callable[[int], None] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> int:
        self.writes.update(i.id for i in incidents)
        return super().upsert(incidents, progress, np.ones((len(incidents), 384), dtype=np.float32))


def options(settings: Settings, **kw: Any) -> ImportOptions:
    mapping = LabelMapping.load(MAPPING, Taxonomy.load(settings.taxonomy_path))
    return ImportOptions(settings=settings, mapping=mapping, **kw)


def fast(settings: Settings, **kw: Any) -> Settings:
    return settings.model_copy(update={"import_backoff_s": 0.0, "import_retries": 3, **kw})


# ---- PagerDuty ------------------------------------------------------------------------------------------------
def pd_vary(i: int, inc: dict[str, Any]) -> None:
    if (
        i == 3
    ):  # nothing to read at triage time: no title, no description (the trigger's details dropped below)
        inc["title"], inc["summary"] = "", ""
    if i == 4:
        inc["description"] = "<p>Errors on <b>gpt-4o</b></p><p>since 14:05</p>"
    if i == 5:
        inc["created_at"] = "2024-01-01T07:00:00+02:00"  # 05:00 UTC


@pytest.fixture
def pd() -> Iterator[PagerDutyAPI]:
    incidents, notes, logs = pagerduty_history(120, pd_vary)
    logs["PI00003"][0]["channel"] = {"type": "api"}
    api = PagerDutyAPI("pd-token", incidents, notes, logs)
    yield api
    api.close()


def pd_settings(settings: Settings, api: PagerDutyAPI, token: str = "pd-token") -> Settings:
    return fast(
        settings, pagerduty_api_url=api.url, pagerduty_api_token=SecretStr(token), import_page_size=50
    )


def test_pagerduty_full_import(settings: Settings, pd: PagerDutyAPI) -> None:
    store = CountingStore(settings)
    report = run_import(IMPORTERS["pagerduty"], options(pd_settings(settings, pd)), store)
    assert report.counts[Outcome.IMPORTED] == 119 and report.counts[Outcome.SKIPPED] == 1
    assert [(s.id, s.reason) for s in report.skipped] == [("pagerduty:PI00003", "no title or description")]
    assert pd.count("/incidents") == 3 + 2 * 120  # 3 pages, then each incident's notes and log entries
    assert all(h["accept"] == "application/vnd.pagerduty+json;version=2" for _, _, h in pd.requests)
    one = store.get(["pagerduty:PI00001"])[0]
    assert one.title == "Elevated 5xx on chat completions, shard 1" and "error_rate: 7%" in one.text
    assert "Rolled back" in one.resolution and "Rolled back" not in one.body  # hindsight kept out of triage
    assert one.labels == {"severity": ["sev2"]} and one.sender_label == "sev2"  # P2, mapped by the file
    assert [(s.name, s.value) for s in one.severity] == [("priority", "P2"), ("urgency", "high")]
    assert one.service == "My Mail Service" and one.link and one.resolved_at is not None
    assert store.get(["pagerduty:PI00004"])[0].text == "Errors on gpt-4o\nsince 14:05"  # HTML read as text
    assert store.get(["pagerduty:PI00005"])[0].created_at == datetime(2024, 1, 1, 5, tzinfo=UTC)
    assert not (settings.data_dir / "imports" / "pagerduty.json").exists()  # done: no checkpoint left


def test_pagerduty_resume_after_a_page_fails_writes_nothing_twice(
    settings: Settings, pd: PagerDutyAPI
) -> None:
    store, s = CountingStore(settings), pd_settings(settings, pd)
    pd.fail("/incidents", 500, times=99, offset="100")  # the third page keeps failing
    with pytest.raises(SourceError, match=r"pagerduty: the API failed \(500\) 3 times"):
        run_import(IMPORTERS["pagerduty"], options(s), store)
    assert len(store.writes) == 99  # two pages written (one record skipped)...
    assert '"cursor":"100"' in (settings.data_dir / "imports" / "pagerduty.json").read_text()  # ...kept
    pd.faults.clear()
    report = run_import(IMPORTERS["pagerduty"], options(s), store)
    assert report.resumed_from == "100" and report.counts[Outcome.IMPORTED] == 20
    assert len(store.writes) == 119 and set(store.writes.values()) == {1}
    again = run_import(IMPORTERS["pagerduty"], options(s), store)  # a new run from the start
    assert again.counts[Outcome.UNCHANGED] == 119 and set(store.writes.values()) == {1}


def test_pagerduty_429_retry_after_and_5xx(settings: Settings, pd: PagerDutyAPI) -> None:
    pd.fail("/incidents", 429, retry_after="1", offset="50")
    pd.fail("/incidents/PI00002/notes", 503)
    t = time.monotonic()
    report = run_import(IMPORTERS["pagerduty"], options(pd_settings(settings, pd)), CountingStore(settings))
    assert time.monotonic() - t >= 1.0  # Retry-After honoured
    assert report.counts[Outcome.IMPORTED] == 119
    assert pd.count("/incidents/PI00002/notes") == 2


def test_pagerduty_rate_limited_for_good_is_one_clear_error(settings: Settings, pd: PagerDutyAPI) -> None:
    pd.fail("/incidents", 429, times=99, retry_after="0")
    with pytest.raises(SourceError, match=r"pagerduty: still rate limited \(429\) after 3 tries.*resumes"):
        run_import(IMPORTERS["pagerduty"], options(pd_settings(settings, pd)), CountingStore(settings))


def test_pagerduty_wrong_token_names_source_and_scope(settings: Settings, pd: PagerDutyAPI) -> None:
    with pytest.raises(SourceError) as e:
        run_import(
            IMPORTERS["pagerduty"], options(pd_settings(settings, pd, "expired")), CountingStore(settings)
        )
    assert str(e.value).startswith("pagerduty: 401, refused the token; it needs a read-only REST API key")
    assert pd.count("/incidents") == 1  # a refused token is not retried


def test_pagerduty_past_the_offset_limit_reads_in_windows(
    settings: Settings, pd: PagerDutyAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    pd.max_offset = 60
    monkeypatch.setattr(pagerduty, "MAX_OFFSET", 60)
    s = pd_settings(settings, pd).model_copy(update={"import_page_size": 20})
    report = run_import(IMPORTERS["pagerduty"], options(s), store := CountingStore(settings))
    assert report.counts[Outcome.IMPORTED] == 119 and set(store.writes.values()) == {1}
    assert report.counts[Outcome.DUPLICATE] >= 1  # the window's first incident, read twice, written once


# ---- Opsgenie -------------------------------------------------------------------------------------------------
def og_vary(i: int, alert: dict[str, Any]) -> None:
    if i == 2:
        alert["message"], alert["description"] = "", ""
    if i == 3:
        alert["createdAt"] = "not a time"


@pytest.fixture
def og() -> Iterator[OpsgenieAPI]:
    alerts, notes = opsgenie_history(60, og_vary)
    api = OpsgenieAPI("og-key", alerts, notes)
    yield api
    api.close()


def og_settings(settings: Settings, api: OpsgenieAPI, key: str = "og-key") -> Settings:
    return fast(settings, opsgenie_api_url=api.url, opsgenie_api_key=SecretStr(key), import_page_size=25)


def test_opsgenie_full_import(settings: Settings, og: OpsgenieAPI) -> None:
    store = CountingStore(settings)
    report = run_import(IMPORTERS["opsgenie"], options(og_settings(settings, og)), store)
    assert report.counts[Outcome.IMPORTED] == 58
    assert sorted(s.reason for s in report.skipped) == ["no message or description", "no readable createdAt"]
    one = store.get(["opsgenie:70413a06-38d6-4c85-92b8-000000000001"])[0]
    assert one.title.startswith("GPU capacity exhausted") and one.text.startswith("Requests queue")
    assert "<b>" not in one.text and "Scaled out" in one.resolution and "Scaled out" not in one.body
    assert "Investigating" not in one.body and "Investigating" in one.later_text
    assert one.labels == {"severity": ["sev2"], "root_cause": ["infrastructure"]}  # P2 and the `gpu` tag
    assert one.service == "EC2" and one.resolved_at is not None and one.resolved_at > one.created_at


def test_opsgenie_resume_after_a_page_fails(settings: Settings, og: OpsgenieAPI) -> None:
    store, s = CountingStore(settings), og_settings(settings, og)
    og.fail("/v2/alerts", 502, times=99, offset="50")  # the third page; the alert with no time sorts last
    with pytest.raises(SourceError, match=r"opsgenie: the API failed \(502\)"):
        run_import(IMPORTERS["opsgenie"], options(s), store)
    written = len(store.writes)
    og.faults.clear()
    og.fail("/v2/alerts", 429, retry_after="0")
    report = run_import(IMPORTERS["opsgenie"], options(s), store)
    assert report.resumed_from and "offset=50" in report.resumed_from
    assert written == 49 and len(store.writes) == 58 and set(store.writes.values()) == {1}


def test_opsgenie_wrong_key_names_source_and_scope(settings: Settings, og: OpsgenieAPI) -> None:
    with pytest.raises(
        SourceError, match=r"^opsgenie: 401, refused the token; it needs an API key with the Read"
    ):
        run_import(
            IMPORTERS["opsgenie"], options(og_settings(settings, og, "wrong")), CountingStore(settings)
        )


def test_missing_credential_is_one_line(settings: Settings) -> None:
    with pytest.raises(SourceError, match=r"^pagerduty: set INCIBOT_PAGERDUTY_API_TOKEN"):
        run_import(IMPORTERS["pagerduty"], options(settings), CountingStore(settings))


# ---- Markdown -------------------------------------------------------------------------------------------------
TEMPLATE = """---
title: Chat completions returned 500s in East US
date: 2024-03-01T14:05:00-05:00
service: chat-api
severity: SEV2
---
# Post-mortem: chat completions 500s

## Summary
Chat completions for <b>gpt-4o</b> failed with HTTP 500 for 40 minutes.

## Impact
7% of requests in East US failed.

## Timeline
- 2024-03-01 14:05 EST: alert fired
- 14:20: rollback started

## Root cause
A router config change dropped the model's route.

## Resolution
Rolled back the router config; errors recovered at 14:45.

## Action items
- Validate routes before deploy
"""
NO_FRONT_MATTER = """# GPU pool drained in westeurope

## Overview
Requests queued for minutes; 429s rose to 12%.

## Timeline
* 2024-05-02 09:12 +02:00 queue alert
* 2024-05-02 09:30 +02:00 scaled out

## Mitigation
Scaled out the pool by 40 nodes.
"""


def md_folder(tmp_path: Path) -> Path:
    root = tmp_path / "postmortems"
    (root / "2024").mkdir(parents=True)
    (root / "2024" / "chat-500s.md").write_text(TEMPLATE)
    (root / "gpu-drain.md").write_text(NO_FRONT_MATTER)
    (root / "empty.md").write_text("---\ntitle: To be written\ndate: 2024-01-01\n---\n## Summary\n\n")
    (root / "undated.md").write_text("# Login failures\n\n## Summary\nUsers could not log in.\n")
    (root / "notes.txt").write_text("not a post-mortem")
    return root


def test_markdown_folder(settings: Settings, tmp_path: Path) -> None:
    store = CountingStore(settings)
    report = run_import(IMPORTERS["markdown"], options(settings, path=md_folder(tmp_path)), store)
    assert report.counts[Outcome.IMPORTED] == 2
    assert {s.id: s.reason for s in report.skipped} == {
        "markdown:empty.md": "no Summary or Impact text (nothing known at triage time)",
        "markdown:undated.md": "no date (front matter `date` or a dated timeline entry)",
    }
    a = store.get(["markdown:2024/chat-500s.md"])[0]
    assert a.title == "Chat completions returned 500s in East US" and a.service == "chat-api"
    assert (
        a.text
        == "Chat completions for gpt-4o failed with HTTP 500 for 40 minutes.\n7% of requests in East US failed."
    )
    assert a.resolution.startswith("Rolled back the router config") and "router config change" in a.resolution
    assert "Validate routes" in a.later_text and "Rolled back" not in a.body
    assert a.created_at == datetime(2024, 3, 1, 19, 5, tzinfo=UTC) and a.labels == {"severity": ["sev2"]}
    b = store.get(["markdown:gpu-drain.md"])[0]
    assert b.title == "GPU pool drained in westeurope" and b.text.startswith("Requests queued")
    assert b.created_at == datetime(2024, 5, 2, 7, 12, tzinfo=UTC)  # the first dated timeline entry, +02:00
    assert b.resolution == "Scaled out the pool by 40 nodes."


def test_markdown_resume_and_since(settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(7):
        (root / f"pm-{i}.md").write_text(TEMPLATE.replace("2024-03-01", f"2024-03-0{i + 1}"))
    s = settings.model_copy(update={"import_page_size": 3})
    store = CountingStore(settings)
    pages = IMPORTERS["markdown"].pages(options(s, path=root), None)
    (settings.data_dir / "imports").mkdir(parents=True)
    first = next(pages)
    assert first.next_cursor == "pm-2.md"
    from bot.intake.importers.checkpoint import Checkpoints  # as run_import leaves it after one page

    Checkpoints(settings.data_dir, "markdown", f"{store.name}||{root}").save(first.next_cursor)
    report = run_import(IMPORTERS["markdown"], options(s, path=root), store)
    assert report.resumed_from == "pm-2.md" and sorted(store.writes) == [
        f"markdown:pm-{i}.md" for i in range(3, 7)
    ]
    since = run_import(
        IMPORTERS["markdown"], options(s, path=root, since=datetime(2024, 3, 6, tzinfo=UTC)), CountingStore(s)
    )
    assert since.counts[Outcome.IMPORTED] == 2 and since.reasons() == {"before --since": 5}


def test_a_reimport_keeps_what_engineers_and_the_llm_added(settings: Settings, tmp_path: Path) -> None:
    from bot.models import PreLabels

    folder, store = md_folder(tmp_path), CountingStore(settings)
    run_import(IMPORTERS["markdown"], options(settings, path=folder), store)
    a = store.get(["markdown:2024/chat-500s.md"])[0]
    assert a.labels == {"severity": ["sev2"]}  # from the post-mortem's front matter
    said = PreLabels(model="m", labels={"symptom": ["errors"]})
    store.upsert([a.model_copy(update={"labels": {"severity": ["sev1"], "root_cause": ["configuration"]},
                                       "labelled_by": "slack:U1", "llm_labels": said})])  # fmt: skip
    store.writes.clear()
    # the source changed the document since: its record is written again, with what was added kept
    doc = folder / "2024" / "chat-500s.md"
    doc.write_text(doc.read_text().replace("for 40 minutes", "for 45 minutes"))
    for f in (settings.data_dir / "imports").glob("*"):
        f.unlink()  # a fresh import of the folder, not a resume
    report = run_import(IMPORTERS["markdown"], options(settings, path=folder), store)
    assert report.counts[Outcome.IMPORTED] == 1 and store.writes["markdown:2024/chat-500s.md"] == 1
    again = store.get(["markdown:2024/chat-500s.md"])[0]
    assert "45 minutes" in again.text
    assert again.labels == {"severity": ["sev1"], "root_cause": ["configuration"]}  # the engineer's win
    assert again.labelled_by == "slack:U1" and again.llm_labels == said
    # unchanged at the source: nothing written, nothing lost
    for f in (settings.data_dir / "imports").glob("*"):
        f.unlink()
    store.writes.clear()
    run_import(IMPORTERS["markdown"], options(settings, path=folder), store)
    assert not store.writes and store.get(["markdown:2024/chat-500s.md"])[0].llm_labels == said


# ---- the mapping ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("pagerduty:\n  priority:\n    P1: {severity: sev9}\n", "no label 'sev9' in field 'severity'"),
        ("opsgenie:\n  tags:\n    gpu: {cause: infrastructure}\n", "no field 'cause'"),
        ("pagerduty: [P1]\n", "expected source -> key -> value"),
        ("pagerduty: {priority: {P1: {severity: sev1}}\n", "not valid YAML"),
    ],
)
def test_mapping_refused(settings: Settings, tmp_path: Path, yaml_text: str, needle: str) -> None:
    from bot.intake.files import InputError

    p = tmp_path / "m.yaml"
    p.write_text(yaml_text)
    with pytest.raises(InputError, match="nothing was imported" if "no " in needle[:3] else ".") as e:
        LabelMapping.load(p, Taxonomy.load(settings.taxonomy_path))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_mapping_left_unset_maps_nothing(settings: Settings) -> None:
    assert LabelMapping().labels("pagerduty", [("priority", "P1")]) == {}


# ---- the command line -----------------------------------------------------------------------------------------
def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    from typer.testing import CliRunner

    from bot.cli import app

    result = CliRunner().invoke(
        app, ["history", "import", *args], env={"INCIBOT_LLM_BACKEND": "none", **(env or {})}
    )
    return result.exit_code, result.output


def test_cli_markdown_counts_and_skips_then_unchanged(tmp_path: Path) -> None:
    root = md_folder(tmp_path)
    code, output = cli("--from", "markdown", str(root), "--mapping", str(MAPPING), "--collection", "mdc")
    assert code == 0, output
    assert "markdown: imported 2, unchanged 0, duplicate 0, skipped 2; 'mdc' holds 2 incidents" in output
    assert "markdown:undated.md: no date" in output and "skipped 1: no Summary or Impact text" in output
    code, output = cli("--from", "markdown", str(root), "--mapping", str(MAPPING), "--collection", "mdc")
    assert code == 0 and "imported 0, unchanged 2" in output, output


def test_cli_pagerduty_through_the_stand_in(tmp_path: Path) -> None:
    incidents, notes, logs = pagerduty_history(12)
    api = PagerDutyAPI("tok", incidents, notes, logs)
    env = {
        "INCIBOT_PAGERDUTY_API_URL": api.url,
        "INCIBOT_PAGERDUTY_API_TOKEN": "tok",
        "INCIBOT_IMPORT_PAGE_SIZE": "5",
    }
    try:
        code, output = cli("--from", "pagerduty", "--collection", "pdc", env=env)
        assert code == 0 and "pagerduty: imported 12, unchanged 0" in output, output
        code, output = cli(
            "--from", "pagerduty", "--collection", "pdc", env={**env, "INCIBOT_PAGERDUTY_API_TOKEN": "x"}
        )
        lines = [ln for ln in output.splitlines() if ln.strip() and not ln.startswith("importing from")]
        assert code == 2 and len(lines) == 1 and "pagerduty: 401" in lines[0] and "REST API key" in lines[0]
    finally:
        api.close()


def test_cli_mapping_with_an_unknown_label_writes_nothing(tmp_path: Path) -> None:
    from bot.store.factory import open_history

    bad = tmp_path / "m.yaml"
    bad.write_text("markdown:\n  severity:\n    SEV2: {severity: critical}\n")
    code, output = cli(
        "--from", "markdown", str(md_folder(tmp_path)), "--mapping", str(bad), "--collection", "mb"
    )
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "no label 'critical' in field 'severity'" in lines[0], output
    assert open_history(Settings(), "mbc").count() == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ("--from", "servicenow"),
            "unknown source 'servicenow'; use one of: markdown, pagerduty, opsgenie, jira, incidentio",
        ),
        (("--from", "markdown"), "--from markdown needs the PATH"),
        (("--from", "markdown", ".", "--since", "last week"), "--since takes a date"),
        ((), "needs a FILE"),
    ],
)
def test_cli_usage_errors_are_one_line(args: tuple[str, ...], needle: str) -> None:
    code, output = cli(*args)
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], output


def test_help_names_every_source() -> None:
    code, output = cli("--help")  # written out there: the help loads no bot module
    assert code == 0 and all(name in output for name in IMPORTERS), output
