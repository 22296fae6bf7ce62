"""The metrics source against a real Prometheus (Debian's `prometheus`, backfilled with promtool) and against a
stand-in for the faults a real one rarely shows on demand: down, slow past the budget, 4xx/5xx, HTML, huge
answers, hostile service names, clock skew. Every fault is an error in the result; nothing raises."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from bot.clock import utcnow
from bot.config import Settings
from bot.net import free_port
from bot.telemetry import Catalogue, TelemetryRead, build_source, moved_signals
from bot.telemetry.prometheus import PrometheusSource
from testkit.prometheus import (
    MISSING,
    PROMETHEUS,
    PROMTOOL,
    Answer,
    Metric,
    PrometheusServer,
    StandIn,
    matrix,
)

STEP = timedelta(seconds=30)
WEIRD = 'we"ird\\name'  # a real label value with a quote and a backslash
HOSTILE = 'chat"} or vector(1) or {service="chat'
CATALOGUE = Catalogue.model_validate({"signals": [
    {"name": "kv_cache_usage", "title": "KV cache usage", "promql": "max(vllm:gpu_cache_usage_perc{selector})",
     "kind": "saturation", "bad": "up", "unit": "ratio"},
    {"name": "requests_waiting", "promql": "sum(vllm:num_requests_waiting{selector})", "kind": "saturation",
     "bad": "up"},
    {"name": "error_ratio", "promql": 'sum(rate(http_requests_total{code=~"5..", {matchers}}[5m])) / '
     "sum(rate(http_requests_total{selector}[5m]))", "kind": "errors", "bad": "up", "unit": "ratio"},
]})  # fmt: skip


def source(url: str, **kw: Any) -> PrometheusSource:
    s = build_source(Settings(prometheus_url=url, **kw))
    assert isinstance(s, PrometheusSource)
    return s


def read(
    src: PrometheusSource, service: str = "chat", cat: Catalogue = CATALOGUE, **kw: Any
) -> TelemetryRead:
    now = utcnow()
    start, end = kw.pop("start", now - timedelta(minutes=60)), kw.pop("end", now)
    return src.read(cat.signals, cat.selector(service), start, end, STEP)


# --- a real Prometheus ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusServer, datetime]]:
    if PROMETHEUS is None or PROMTOOL is None:
        pytest.skip(MISSING)
    now = utcnow().replace(microsecond=0)
    onset = now - timedelta(minutes=20)
    rng = np.random.default_rng(33)
    ts = [(now - timedelta(minutes=120)).timestamp() + 15 * i for i in range(120 * 4 + 1)]

    def kv(t: float) -> float:  # 0.55, then filling up over 3 minutes to 0.98
        return 0.55 if t < onset.timestamp() else min(0.98, 0.55 + 0.43 * (t - onset.timestamp()) / 180)

    ok, errors, total_ok, total_err = [], [], 0.0, 0.0
    for t in ts:  # 20 req/s, 0.1% errors, then 7% from two minutes after the cache filled
        bad = 0.07 if t >= onset.timestamp() + 300 else 0.001
        total_ok += 15 * 20 * (1 - bad)
        total_err += 15 * 20 * bad
        ok.append((t, round(total_ok)))
        errors.append((t, round(total_err)))
    metrics = [
        Metric("vllm:gpu_cache_usage_perc", {"service": "chat"},
               [(t, round(kv(t) + rng.normal(0, 0.01), 4)) for t in ts]),
        Metric("vllm:num_requests_waiting", {"service": "chat"},
               [(t, float(rng.poisson(1 if t < onset.timestamp() + 120 else 40))) for t in ts]),
        Metric("http_requests_total", {"service": "chat", "code": "200"}, ok, type="counter"),
        Metric("http_requests_total", {"service": "chat", "code": "500"}, errors, type="counter"),
        Metric("vllm:gpu_cache_usage_perc", {"service": WEIRD}, [(t, 0.25) for t in ts]),
    ]  # fmt: skip
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), metrics) as server:
        yield server, onset


def test_reads_a_backfilled_kv_cache_ramp_and_finds_what_moved_first(
    prom: tuple[PrometheusServer, datetime],
) -> None:
    server, onset = prom
    result = read(source(server.url))
    assert result.error is None and result.errors == {}
    assert result.elapsed_s < 1.5
    kv = result.signals[0]
    assert len(kv.series) == 1 and len(kv.series[0].points) >= 100
    moved = moved_signals(result, CATALOGUE)
    assert [m.signal for m in moved] == ["kv_cache_usage", "requests_waiting", "error_ratio"]
    assert abs((moved[0].onset - onset).total_seconds()) <= 2 * STEP.total_seconds()
    assert moved[0].before == pytest.approx(0.55, abs=0.02) and moved[0].after == pytest.approx(
        0.98, abs=0.02
    )
    assert moved[2].after == pytest.approx(0.07, abs=0.01) and all(m.bad for m in moved)


def test_every_default_catalogue_query_is_valid_promql(prom: tuple[PrometheusServer, datetime]) -> None:
    cat = Catalogue.load(Settings().signals_path)
    result = read(source(prom[0].url), cat=cat, service="chat-api")
    assert result.errors == {}
    assert [len(s.series) for s in result.signals if s.signal == "kv_cache_usage"] == [0]  # another service


def test_a_hostile_service_name_is_escaped_not_spliced(prom: tuple[PrometheusServer, datetime]) -> None:
    src = source(prom[0].url)
    weird = read(src, WEIRD)  # the escaped literal matches the real label value, quote and backslash included
    assert weird.errors == {} and weird.signals[0].series[0].points[0].value == 0.25
    hostile = read(src, HOSTILE)  # valid PromQL matching nothing: no chat series, no vector(1)
    assert hostile.errors == {} and all(s.series == [] for s in hostile.signals)


def test_a_query_the_server_rejects_is_reported_once_then_skipped(
    prom: tuple[PrometheusServer, datetime], caplog: pytest.LogCaptureFixture
) -> None:
    cat = Catalogue.model_validate({"signals": [
        {"name": "broken", "promql": "sum(rate(x{selector}[5m])", "kind": "errors", "bad": "up"},
        *[s.model_dump() for s in CATALOGUE.signals],
    ]})  # fmt: skip
    src = source(prom[0].url)
    with caplog.at_level(logging.WARNING, logger="bot.telemetry.prometheus"):
        first, second = read(src, cat=cat), read(src, cat=cat)
    assert "rejected by the server" in first.errors["broken"] and "parse error" in first.errors["broken"]
    assert second.errors["broken"].startswith("skipped: rejected earlier")
    assert len([r for r in caplog.records if "broken" in r.getMessage()]) == 1
    assert set(first.errors) == set(second.errors) == {"broken"}  # the others are read as usual
    assert src.breaker.current_state == "closed"


# --- faults, against a stand-in -------------------------------------------------------------------------------
@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    s = StandIn()
    yield s
    s.close()


def test_prometheus_down_is_an_error_then_an_open_circuit() -> None:
    src = source(f"http://127.0.0.1:{free_port()}", telemetry_breaker_failures=2)
    for _ in range(2):
        result = read(src)
        assert result.error is not None and result.error.startswith("Prometheus unavailable")
        assert all("cannot reach Prometheus: ConnectError" in e for e in result.errors.values())
    t0 = time.monotonic()
    result = read(src)
    assert result.error is not None and result.error.startswith("circuit open")
    assert time.monotonic() - t0 < 0.1


def test_slow_past_the_budget_returns_on_time(stand_in: StandIn) -> None:
    stand_in.answer = lambda form: Answer(body=matrix([]), delay_s=3)
    t0 = time.monotonic()
    result = read(source(stand_in.url, telemetry_budget_s=0.4))
    assert time.monotonic() - t0 < 1.0
    assert set(result.errors) == {s.name for s in CATALOGUE.signals}
    assert all("0.4 s budget" in e for e in result.errors.values())
    assert all(r[2]["timeout"] == "400ms" or int(r[2]["timeout"][:-2]) <= 400 for r in stand_in.requests)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(503, {"status": "error", "errorType": "unavailable", "error": "overloaded"}), "HTTP 503: overloaded"),
        (Answer(500, "<html><body>Internal error</body></html>", "text/html"), "HTTP 500, text/html, not Prometheus JSON"),
        (Answer(401, "unauthorized", "text/plain"), "rejected by the server: HTTP 401: not allowed; check prometheus_token"),
        (Answer(200, "<!doctype html><title>Grafana</title>", "text/html"), "HTTP 200, text/html, not Prometheus JSON"),
        (Answer(422, {"status": "error", "errorType": "execution", "error": "query processing would load too many samples"}),
         "rejected by the server: query processing would load too many samples"),
        (Answer(403, {"status": "error", "errorType": "forbidden", "error": "no tenant"}), "HTTP 403: not allowed; check prometheus_token, the basic auth or the headers (tenant): no tenant"),
        (Answer(200, {"status": "success", "data": {"resultType": "vector", "result": []}}), "expected a matrix"),
        (Answer(200, {"status": "success"}), "KeyError"),
        (Answer(200, matrix([{"metric": {}, "values": [[1, "x"]]}])), "ValueError"),
        (Answer(200, "[1, 2]"), "not Prometheus JSON"),
    ],
)  # fmt: skip
def test_bad_answers_are_errors_never_exceptions(stand_in: StandIn, answer: Answer, expected: str) -> None:
    stand_in.answer = lambda form: answer
    result = read(source(stand_in.url))
    assert set(result.errors) == {s.name for s in CATALOGUE.signals}
    assert all(expected in e for e in result.errors.values()), result.errors


def test_huge_answers_are_capped(stand_in: StandIn) -> None:
    t0 = utcnow().timestamp() - 3000
    many = [{"metric": {"pod": f"p{i}"}, "values": [[t0 + j, "1"] for j in range(1500)]} for i in range(30)]
    stand_in.answer = lambda form: Answer(body=matrix(many))
    capped = read(
        source(stand_in.url, telemetry_max_series=20, telemetry_max_points=1000, telemetry_budget_s=10)
    )
    kv = capped.signals[0]
    assert kv.error is None and len(kv.series) == 20 and {len(s.points) for s in kv.series} == {1000}
    assert kv.truncated == "30 series, the first 20 kept; 1500 points, the last 1000 kept"
    too_big = read(
        source(stand_in.url, telemetry_max_bytes=100_000, telemetry_budget_s=10)
    )  # caps, not speed
    assert all(e.startswith("answer larger than 0.1 MB: the query matches") for e in too_big.errors.values())
    assert too_big.error is None  # the server answered: not an outage, the circuit stays closed


def test_the_query_sent_escapes_the_service_and_uses_only_query_range(stand_in: StandIn) -> None:
    read(source(stand_in.url + "/prometheus/"), HOSTILE)
    assert {r[0] for r in stand_in.requests} == {"/prometheus/api/v1/query_range"}
    sent = sorted(r[2]["query"] for r in stand_in.requests)
    assert sent[-1] == r'sum(vllm:num_requests_waiting{service="chat\"} or vector(1) or {service=\"chat"})'


def test_auth_and_extra_headers_are_sent(stand_in: StandIn) -> None:
    read(source(stand_in.url, prometheus_token="t0ken", prometheus_headers={"X-Scope-OrgID": "team-a"}))
    headers = stand_in.requests[0][1]
    assert headers["Authorization"] == "Bearer t0ken" and headers["X-Scope-OrgID"] == "team-a"
    stand_in.requests.clear()
    read(source(stand_in.url, prometheus_basic_user="u", prometheus_basic_password="p"))
    assert stand_in.requests[0][1]["Authorization"] == "Basic dTpw"


def test_an_end_in_the_future_is_clamped_to_now(stand_in: StandIn) -> None:
    src = source(stand_in.url)
    now = utcnow()
    result = read(src, end=now + timedelta(hours=2))
    assert result.end <= utcnow()
    assert all(float(r[2]["end"]) <= utcnow().timestamp() for r in stand_in.requests)
    stand_in.requests.clear()
    future = read(src, start=now + timedelta(hours=1), end=now + timedelta(hours=2))
    assert future.error is not None and "clock skew" in future.error and stand_in.requests == []


def test_a_long_window_is_read_at_a_coarser_step(stand_in: StandIn) -> None:
    now = utcnow()
    result = read(source(stand_in.url, telemetry_max_points=100), start=now - timedelta(hours=24), end=now)
    assert result.step_s == 873 and float(stand_in.requests[0][2]["step"]) == 873


def test_no_url_no_telemetry() -> None:
    assert build_source(Settings()) is None


def test_naive_times_are_utc(stand_in: StandIn) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    result = read(source(stand_in.url), start=now - timedelta(minutes=10), end=now)
    assert result.start.tzinfo is not None and result.error is None


def test_only_the_servers_faults_open_the_circuit(stand_in: StandIn) -> None:
    stand_in.answer = lambda form: Answer(401, "unauthorized", "text/plain")
    src = source(stand_in.url, telemetry_breaker_failures=1)
    for _ in range(3):  # wrong credentials: every ticket says so, none opens the circuit
        assert read(src).error is None and src.breaker.current_state == "closed"
    stand_in.answer = lambda form: Answer(502, "<html>Bad gateway</html>", "text/html")
    assert read(src).error is not None and src.breaker.current_state == "open"


def test_a_tickets_read_spans_the_window_before_it_to_now(stand_in: StandIn) -> None:
    from bot.telemetry import read_around

    settings = Settings(prometheus_url=stand_in.url, telemetry_before_min=45, telemetry_step_s=15)
    src = build_source(settings)
    assert src is not None
    ticket_at = utcnow() - timedelta(minutes=5)
    result = read_around(src, CATALOGUE, "chat", ticket_at, settings)
    assert result.start == ticket_at - timedelta(minutes=45) and result.step_s == 15
    assert (utcnow() - result.end).total_seconds() < 5 and len(stand_in.requests) == len(CATALOGUE.signals)


def test_the_doctor_checks_the_catalogue_and_every_query_against_the_server(
    prom: tuple[PrometheusServer, datetime], tmp_path: Any
) -> None:
    import yaml

    from bot.doctor import metrics as doctor
    from bot.doctor.report import Status

    assert [(c.name, c.status) for c in doctor.checks(Settings())] == [
        ("metrics", Status.OK)
    ]  # off: one line
    good = list(doctor.checks(Settings(prometheus_url=prom[0].url)))
    assert [(c.name, c.status) for c in good] == [("signal catalogue", Status.OK), ("prometheus", Status.OK)]
    assert "all 14 catalogue queries accepted" in good[1].detail
    broken = tmp_path / "signals.yaml"
    entries = [*CATALOGUE.model_dump(mode="json")["signals"],
               {"name": "broken", "promql": "sum(rate(x{selector}[5m])", "kind": "errors", "bad": "up"}]  # fmt: skip
    broken.write_text(yaml.safe_dump({"signals": entries}))
    refused = list(doctor.checks(Settings(prometheus_url=prom[0].url, signals_path=broken)))[-1]
    assert refused.status is Status.WARN and refused.detail.startswith("1 of 4 queries refused: broken:")
    down = list(doctor.checks(Settings(prometheus_url=f"http://127.0.0.1:{free_port()}")))[-1]
    assert down.status is Status.FAIL and "INCIBOT_PROMETHEUS_URL" in down.fix
    bad = tmp_path / "bad.yaml"
    bad.write_text("signals: [{name: x}]")
    assert (
        list(doctor.checks(Settings(prometheus_url=prom[0].url, signals_path=bad)))[-1].status is Status.FAIL
    )
