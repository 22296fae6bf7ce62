"""The telemetry stage's latency: reading 20 signals around one ticket from a local Prometheus (Debian's, its TSDB
backfilled with promtool) and finding what moved (target: p95 < 1.5 s on 2 cores, the default budget).

The TSDB holds 20 services x (2 vLLM pods, 4 GPUs, 3 status codes, 8-bucket histograms), 2 hours at 15 s:
1,600 series and 770,000 samples, so each query selects among many services' series.

    .venv/bin/python -m benchmarks.telemetry [--reads 50]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.core import lat
from bot.clock import utcnow
from bot.config import Settings
from bot.telemetry import Catalogue, build_source, moved_signals
from testkit.prometheus import MISSING, PROMETHEUS, PROMTOOL, Metric, PrometheusServer

SERVICES = 20
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, "+Inf")
EXTRA = [  # with the 14 default signals: 20
    ("requests_running", "sum(vllm:num_requests_running{selector})", "saturation", "up", "requests"),
    ("prompt_tokens", "sum(rate(vllm:prompt_tokens_total{selector}[5m]))", "cost", "up", "/s"),
    ("e2e_latency_p95", "histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{selector}[5m])))",
     "latency", "up", "seconds"),
    ("ttft_p50", "histogram_quantile(0.5, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{selector}[5m])))",
     "latency", "up", "seconds"),
    ("gpu_utilization_max", "max(DCGM_FI_DEV_GPU_UTIL{selector})", "saturation", "up", "percent"),
    ("latency_p50", "histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{selector}[5m])))",
     "latency", "up", "seconds"),
]  # fmt: skip


def catalogue() -> Catalogue:
    base = Catalogue.load(Settings().signals_path)
    extra = [{"name": n, "promql": q, "kind": k, "bad": b, "unit": u} for n, q, k, b, u in EXTRA]
    return Catalogue.model_validate({"signals": [*(s.model_dump() for s in base.signals), *extra]})


def _metrics(ts: np.ndarray, rng: np.random.Generator) -> list[Metric]:
    n = len(ts)
    out: list[Metric] = []

    def gauge(name: str, labels: dict[str, str], values: np.ndarray) -> None:
        out.append(Metric(name, labels, list(zip(ts.tolist(), np.round(values, 4).tolist(), strict=True))))

    def counter(name: str, labels: dict[str, str], per_s: np.ndarray) -> None:
        out.append(Metric(name, labels, list(zip(ts.tolist(), np.round(np.cumsum(per_s * 15)).tolist(), strict=True)),
                          type="counter"))  # fmt: skip

    def histogram(name: str, labels: dict[str, str], per_s: float, scale: float) -> None:
        for le in BUCKETS:
            share = 1.0 if le == "+Inf" else 1 - np.exp(-float(le) / scale)
            counter(name, {**labels, "le": str(le)}, np.full(n, per_s * share))

    for s in range(SERVICES):
        svc = {"service": f"svc-{s}"}
        for pod in range(2):
            p = {**svc, "pod": f"svc-{s}-{pod}"}
            gauge("vllm:gpu_cache_usage_perc", p, 0.5 + rng.normal(0, 0.02, n))
            gauge("vllm:num_requests_waiting", p, rng.poisson(2, n).astype(float))
            gauge("vllm:num_requests_running", p, rng.poisson(20, n).astype(float))
            counter("vllm:num_preemptions_total", p, np.full(n, 0.01))
            counter("vllm:generation_tokens_total", p, np.full(n, 900.0))
            counter("vllm:prompt_tokens_total", p, np.full(n, 2500.0))
            histogram("vllm:time_to_first_token_seconds_bucket", p, 10, 0.3)
            histogram("vllm:e2e_request_latency_seconds_bucket", p, 10, 2.0)
            for code, share in (("200", 0.98), ("429", 0.015), ("500", 0.005)):
                counter("http_requests_total", {**p, "code": code}, np.full(n, 10 * share))
            histogram("http_request_duration_seconds_bucket", p, 10, 0.5)
        for gpu in range(4):
            g = {**svc, "gpu": str(gpu), "Hostname": f"node-{s}"}
            gauge("DCGM_FI_DEV_GPU_UTIL", g, 70 + rng.normal(0, 5, n))
            gauge("DCGM_FI_DEV_FB_USED", g, 60000 + rng.normal(0, 500, n))
            gauge("DCGM_FI_DEV_XID_ERRORS", g, np.zeros(n))
        gauge("genai_quality_eval_pass_ratio", svc, 0.9 + rng.normal(0, 0.01, n))
        gauge("genai_feedback_thumbs_down_ratio", svc, 0.05 + rng.normal(0, 0.005, n))
    return out


def bench_telemetry(reads: int = 50) -> dict[str, Any]:
    if PROMETHEUS is None or PROMTOOL is None:
        raise SystemExit(MISSING)
    now = utcnow().replace(microsecond=0)
    ts = (now - timedelta(hours=2)).timestamp() + 15 * np.arange(2 * 3600 // 15 + 1)
    metrics = _metrics(ts, np.random.default_rng(0))
    cat = catalogue()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with PrometheusServer(Path(tmp), metrics) as server:
            setup_s = time.perf_counter() - t0
            settings = Settings(prometheus_url=server.url)
            source = build_source(settings)
            assert source is not None
            rng = random.Random(0)
            read_ms, detect_ms, errors, points = [], [], 0, 0
            for i in range(reads + 3):  # three warm-up reads
                ticket_at = utcnow() - timedelta(minutes=10)
                selector = cat.selector(f"svc-{rng.randrange(SERVICES)}")
                t = time.perf_counter()
                result = source.read(cat.signals, selector, ticket_at - timedelta(minutes=60), utcnow(),
                                     timedelta(seconds=settings.telemetry_step_s))  # fmt: skip
                t1 = time.perf_counter()
                moved_signals(result, cat)
                t2 = time.perf_counter()
                if i >= 3:
                    read_ms.append((t1 - t) * 1000)
                    detect_ms.append((t2 - t1) * 1000)
                    errors += len(result.errors)
                    points += sum(len(s.points) for r in result.signals for s in r.series)
    return {"signals": len(cat.signals), "series": len(metrics), "samples": len(metrics) * len(ts), "reads": reads,
            "setup_s": setup_s, "read_ms": lat(read_ms), "detect_ms": lat(detect_ms),
            "total_ms": lat([a + b for a, b in zip(read_ms, detect_ms, strict=True)]),
            "errors_per_read": errors / reads, "points_per_read": points / reads}  # fmt: skip


def table(r: dict[str, Any]) -> Table:
    t = Table(title=f"Telemetry: {r['signals']} signals per ticket, local Prometheus ({r['series']:,} series, "
                    f"{r['samples']:,} samples), {r['reads']} reads")  # fmt: skip
    for col in ("", "p50", "p95", "p99"):
        t.add_column(col, justify="left" if not col else "right")
    for name, key in (("read (20 query_range, parallel)", "read_ms"), ("detect what moved", "detect_ms"),
                      ("telemetry stage (read + detect)", "total_ms")):  # fmt: skip
        t.add_row(name, *(f"{r[key][p]:.0f} ms" for p in ("p50", "p95", "p99")))
    t.caption = (f"target p95 < 1500 ms; {r['points_per_read']:.0f} points and {r['errors_per_read']:.1f} errors "
                 f"per read; backfill + start {r['setup_s']:.1f} s")  # fmt: skip
    return t


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=50)
    Console().print(table(bench_telemetry(parser.parse_args().reads)))
