"""What the metrics show, end to end: a real Prometheus (backfilled, nothing scraped) behind the default catalogue,
posts into the strict Slack emulator, and `incibot triage --json`.

The KV cache of chat-api fills up three minutes before its ticket opens: the first post goes out without the
metrics, then is redrawn with them. No `prometheus_url`: no section, `telemetry` null. Prometheus down: the
ticket is posted all the same and the section says what could not be read."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from bot.cli import app
from bot.clock import utcnow
from bot.delivery.context import metrics_lines
from bot.delivery.slack.blocks import metrics_section
from bot.delivery.terminal import sparkline
from bot.intake.senders import parse
from bot.models import MovedSignal, SignalKind, TelemetrySummary
from bot.net import free_port
from bot.service import TriageService
from testkit.emulators import SlackEmulator
from testkit.prometheus import MISSING, PROMETHEUS, PROMTOOL, Metric, PrometheusServer
from tests.helpers import last_edit, make_service, post_of

SECTION = "What the metrics show"


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusServer, datetime]]:
    """chat-api's KV cache at 0.55, filling to 0.98 over three minutes from `onset`; queues build after it."""
    if PROMETHEUS is None or PROMTOOL is None:
        pytest.skip(MISSING)
    now = utcnow().replace(microsecond=0)
    onset = now - timedelta(minutes=20)
    rng = np.random.default_rng(5)
    ts = [(now - timedelta(minutes=90)).timestamp() + 15 * i for i in range(90 * 4 + 1)]

    def kv(t: float) -> float:
        return 0.55 if t < onset.timestamp() else min(0.98, 0.55 + 0.43 * (t - onset.timestamp()) / 180)

    metrics = [
        Metric("vllm:gpu_cache_usage_perc", {"service": "chat-api"},
               [(t, round(kv(t) + rng.normal(0, 0.01), 4)) for t in ts]),
        Metric("vllm:num_requests_waiting", {"service": "chat-api"},
               [(t, float(rng.poisson(1 if t < onset.timestamp() + 120 else 40))) for t in ts]),
        Metric("vllm:gpu_cache_usage_perc", {"service": "embeddings"},
               [(t, round(0.3 + rng.normal(0, 0.01), 4)) for t in ts]),
    ]  # fmt: skip
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), metrics) as server:
        yield server, onset


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One data directory for the module's CLI runs: the demo history is seeded (embedded) once, not per run."""
    return {"INCIBOT_DATA_DIR": str(tmp_path_factory.mktemp("cli-data"))}


def blocks_text(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"])


def ticket(service: TriageService, id: str, svc: str, at: datetime) -> str:
    payload = {
        "id": id,
        "title": "Elevated latency on chat completions",
        "service": svc,
        "created_at": at.isoformat(),
    }
    return service.receive(parse("generic", payload)).key


def redrawn_with(slack: SlackEmulator, service: TriageService, key: str, needle: str) -> str:
    """The post's edit showing `needle`, once the post's ts is stored (post_of sees the post before that)."""
    slack.wait_for(lambda: (row := service.store.get(key)) is not None and row.message_ts, timeout=30)
    return last_edit(slack, service, key, needle)


def settle(service: TriageService) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(f.done() for f in service.poster.telemetry_reads):
        time.sleep(0.05)


def test_the_post_goes_out_first_then_is_redrawn_with_what_moved(
    tmp_path: Path, slack: SlackEmulator, prom: tuple[PrometheusServer, datetime]
) -> None:
    server, onset = prom
    service = make_service(tmp_path, slack, prometheus_url=server.url, storm_similarity=1.01)
    service.start()
    try:
        key = ticket(service, "kv-1", "chat-api", onset + timedelta(minutes=3))
        first = blocks_text(post_of(slack, key))
        assert SECTION not in first and "Triage" in first  # the first post never waits for Prometheus
        redrawn = redrawn_with(slack, service, key, SECTION)
        # the detector places the onset within a step or two of where the ramp began
        assert re.search(
            r"KV cache usage 0.55 -&gt; 0.98 from \d\d:\d\d, [1-3] min before the ticket", redrawn
        )
        assert "Requests waiting" in redrawn
        row = service.store.get(key)
        assert row is not None and row.draft is not None and row.draft.context is not None
        t = row.draft.context.telemetry
        assert t is not None and t.errors == [] and t.read == 14
        assert [m.signal for m in t.moved][:2] == ["kv_cache_usage", "requests_waiting"]
        assert abs((t.moved[0].onset - onset).total_seconds()) <= 60 and 10 <= len(t.moved[0].trace) <= 60
        assert row.draft.context.service == "chat-api"  # the changes lookup is still there
        # ... and what moved is evidence in the decision: the draft was decided again with it
        assert "signal:saturation:up" in row.draft.evidence
        assert row.draft.mitigation is not None and row.draft.mitigation.calibrated
        # ... and a chart of what moved in the thread, by Slack's upload flow (the bot joins to share it).
        shared = slack.wait_for(lambda: [f for f in list(slack.files.values()) if f["shared"]], timeout=30)
        assert len(shared) == 1 and shared[0]["thread_ts"] == row.message_ts
        assert shared[0]["content"].startswith(b"\x89PNG") and shared[0]["name"] == "generic-kv-1-metrics.png"
        assert "KV cache usage" in shared[0]["alt_txt"] and slack.refused() == [
            "files.completeUploadExternal!not_in_channel"
        ]
        # A quiet service: the section says how many signals were read and that none moved.
        quiet = ticket(service, "emb-1", "embeddings", utcnow())
        assert "nothing moved in 14 signals" in redrawn_with(slack, service, quiet, SECTION)
    finally:
        service.stop()


def test_cli_json_has_telemetry_moved(
    tmp_path: Path, prom: tuple[PrometheusServer, datetime], data: dict[str, str]
) -> None:
    server, onset = prom
    file = tmp_path / "t.json"
    at = onset + timedelta(minutes=3)
    file.write_text(
        json.dumps(
            {"id": "t1", "title": "Latency on chat", "service": "chat-api", "created_at": at.isoformat()}
        )
    )
    env = data | {"INCIBOT_PROMETHEUS_URL": server.url}
    result = CliRunner().invoke(app, ["triage", "--ticket", str(file), "--no-llm", "--json"], env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    moved = out["telemetry"]["moved"]
    assert moved[0]["signal"] == "kv_cache_usage" and moved[0]["kind"] == "saturation"
    assert abs((datetime.fromisoformat(moved[0]["onset"]) - onset).total_seconds()) <= 60
    assert moved[0]["before"] == pytest.approx(0.55, abs=0.02) and moved[0]["after"] == pytest.approx(
        0.98, abs=0.02
    )
    assert out["context"]["telemetry"] == out["telemetry"]
    shown = CliRunner().invoke(
        app, ["triage", "--ticket", str(file), "--no-llm"], env=env | {"COLUMNS": "200"}
    )
    assert shown.exit_code == 0 and SECTION in shown.output and "▁" in shown.output and "█" in shown.output


def test_no_url_no_section_and_telemetry_null(
    tmp_path: Path, slack: SlackEmulator, data: dict[str, str]
) -> None:
    file = tmp_path / "t.json"
    file.write_text(json.dumps({"id": "t1", "title": "Latency on chat", "service": "chat-api"}))
    result = CliRunner().invoke(app, ["triage", "--ticket", str(file), "--no-llm", "--json"], env=data)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["telemetry"] is None and (out["context"] is None or out["context"]["telemetry"] is None)
    service = make_service(tmp_path / "bot", slack, storm_similarity=1.01)
    service.start()
    try:
        key = ticket(service, "plain-1", "chat-api", utcnow())
        assert SECTION not in blocks_text(post_of(slack, key)) and service.poster.telemetry_reads == []
        assert slack.files == {}
        row = service.store.get(key)
        assert row is not None and row.draft is not None and row.draft.context is not None
        assert row.draft.context.telemetry is None
    finally:
        service.stop()


def test_prometheus_down_still_posts_and_says_what_could_not_be_read(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    service = make_service(tmp_path, slack, prometheus_url=down, storm_similarity=1.01)
    service.start()
    try:
        key = ticket(service, "down-1", "chat-api", utcnow())
        assert "Triage" in blocks_text(post_of(slack, key))
        redrawn = redrawn_with(slack, service, key, SECTION)
        assert "could not read the metrics: Prometheus unavailable: " in redrawn and "ConnectError" in redrawn
        settle(service)
        row = service.store.get(key)
        assert row is not None and row.status.value in ("drafted", "posted")
    finally:
        service.stop()


def test_a_catalogue_that_cannot_be_loaded_is_a_line_not_a_failure(
    tmp_path: Path, data: dict[str, str]
) -> None:
    file = tmp_path / "t.json"
    file.write_text(json.dumps({"id": "t1", "title": "Latency on chat", "service": "chat-api"}))
    env = data | {
        "INCIBOT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "INCIBOT_SIGNALS_PATH": str(tmp_path / "nope.yaml"),
    }
    result = CliRunner().invoke(app, ["triage", "--ticket", str(file), "--no-llm", "--json"], env=env)
    assert result.exit_code == 0, result.output
    errors = json.loads(result.stdout)["telemetry"]["errors"]
    assert errors and "signal catalogue not found" in errors[0]


# --- the section's text --------------------------------------------------------------------------------------
def moved(**kw: Any) -> MovedSignal:
    at = datetime.fromisoformat("2026-12-06T14:02:00+00:00")
    base = {"signal": "kv_cache_usage", "title": "KV cache usage", "kind": SignalKind.SATURATION, "unit": "ratio",
            "onset": at, "before": 0.55, "after": 0.98, "bad": True, "score": 12.0,
            "trace": [(at + timedelta(minutes=i), 0.55 if i < 5 else 0.98) for i in range(10)]}  # fmt: skip
    return MovedSignal(**(base | kw))


def test_section_lines_and_sparkline() -> None:
    at = datetime.fromisoformat("2026-12-06T14:05:00+00:00")
    summary = TelemetrySummary(
        moved=[moved()], read=14, errors=["error_ratio: HTTP 503: overloaded"], ticket_at=at
    )
    assert metrics_lines(summary) == [
        "KV cache usage 0.55 -> 0.98 from 14:02, 3 min before the ticket",
        "could not read error_ratio: HTTP 503: overloaded",
    ]
    text = metrics_section(summary)["text"]["text"]
    assert text.startswith(f"*{SECTION}*\n:small_red_triangle: KV cache usage 0.55 -&gt; 0.98 from 14:02")
    assert metrics_lines(TelemetrySummary(read=1, ticket_at=at)) == ["nothing moved in 1 signal"]
    # placed against the recent changes, when they were looked up: after the last one before it moved
    from bot.models import ChangeEvent, ChangeKind, RecentChange

    def change(summary: str, minutes: int) -> RecentChange:
        c = ChangeEvent(id=summary, service="chat-api", kind=ChangeKind.DEPLOY, summary=summary,
                        at=at - timedelta(minutes=minutes))  # fmt: skip
        return RecentChange(change=c, minutes_before=minutes)

    assert metrics_lines(summary, [change("web-ui v2", 1), change("router v2.3.1", 7)])[0].endswith(
        "3 min before the ticket; 4 min after deploy 'router v2.3.1'"
    )
    assert metrics_lines(summary, [])[0].endswith("; no change recorded before it")
    assert metrics_lines(summary, [change("web-ui v2", 1)])[0].endswith("; no change recorded before it")
    assert sparkline([0, 0, 1, 2, 7]) == "▁▁▂▃█" and sparkline([3, 3]) == "▁▁" and sparkline([]) == ""
    feature = moved(after=0.1).feature
    assert feature == "signal:saturation:down"
    Console(record=True).print(text)  # renders


def test_an_llm_draft_made_while_the_metrics_were_read_keeps_them() -> None:
    from types import SimpleNamespace

    from bot.delivery.llm_edit import Refiner
    from bot.models import Context, TriageDraft

    summary = TelemetrySummary(moved=[moved()], read=14)
    stored = SimpleNamespace(draft=SimpleNamespace(context=Context(window_min=120, telemetry=summary)))
    refiner = Refiner.__new__(Refiner)
    refiner.store = SimpleNamespace(get=lambda key: stored)  # type: ignore[assignment]
    llm = TriageDraft.model_construct(
        context=Context(window_min=120)
    )  # drafted from the context before the read
    assert refiner._keep_telemetry("k", llm).context.telemetry == summary  # type: ignore[union-attr]
    newer = TelemetrySummary(read=3)
    own = TriageDraft.model_construct(context=Context(window_min=120, telemetry=newer))
    assert refiner._keep_telemetry("k", own).context.telemetry == newer  # type: ignore[union-attr]


def test_an_llm_edit_waits_while_the_tickets_metrics_are_read() -> None:
    """The LLM decides with the metrics as evidence: its edit is put back for a moment while they are read."""
    from types import SimpleNamespace

    from bot.delivery.llm_edit import READ_WAIT_S, Refiner
    from bot.models import TriageDraft
    from bot.store.tickets import TicketState

    later: list[tuple[str, float]] = []
    row = SimpleNamespace(status=TicketState.POSTED, draft=TriageDraft.model_construct())
    refiner = Refiner.__new__(Refiner)
    refiner.store = SimpleNamespace(get=lambda key: row)  # type: ignore[assignment]
    refiner.queue = SimpleNamespace(later=lambda key, s: later.append((key, s)))  # type: ignore[assignment]
    refiner.poster = SimpleNamespace(reading=lambda key: True)  # type: ignore[assignment]
    refiner.triager = None  # type: ignore[assignment]  # never reached: no draft is made while it waits
    refiner.refine("k")
    assert later == [("k", READ_WAIT_S)]
