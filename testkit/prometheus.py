"""A real Prometheus (Debian's `prometheus` package) on 127.0.0.1 for tests and benchmarks, its TSDB backfilled
from an OpenMetrics file with `promtool tsdb create-blocks-from openmetrics` (nothing is scraped), and a stand-in
Prometheus API whose answers a test scripts (slow, HTML, errors, huge)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from bot.net import LOOPBACK, free_port

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
MISSING = "prometheus/promtool not installed (scripts/system-deps.sh installs Debian's prometheus)"


@dataclass
class Metric:
    """One series to backfill: `name{labels}` with (unix seconds, value) samples."""

    name: str
    labels: Mapping[str, str]
    samples: Sequence[tuple[float, float]]
    type: str = "gauge"


def openmetrics(metrics: Iterable[Metric]) -> str:
    """OpenMetrics text (timestamps in seconds, ending `# EOF`); series of one name are written together."""
    by_name: dict[str, list[Metric]] = {}
    for m in metrics:
        by_name.setdefault(m.name, []).append(m)
    lines = []
    for name, ms in by_name.items():
        family = name.removesuffix("_total") if ms[0].type == "counter" else name
        lines.append(f"# TYPE {family} {ms[0].type}")
        for m in ms:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in m.labels.items())
            sel = f"{{{labels}}}" if labels else ""
            lines.extend(f"{name}{sel} {v!r} {t:.3f}" for t, v in m.samples)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class PrometheusServer:
    """`prometheus` serving a backfilled TSDB in `root`; `.url` is its base URL. Use as a context manager."""

    def __init__(self, root: Path, metrics: Iterable[Metric]) -> None:
        if PROMETHEUS is None or PROMTOOL is None:
            raise RuntimeError(MISSING)
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        data = root / "data"
        source = root / "backfill.om"
        source.write_text(openmetrics(metrics))
        subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        config = root / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\n")
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log = root / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address={LOOPBACK}:{self.port}", "--storage.tsdb.retention.time=30d"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._wait_ready(60)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready after {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | Any = b""  # bytes/str sent as is, anything else as JSON
    content_type: str = "application/json"
    delay_s: float = 0.0


@dataclass
class StandIn:
    """A Prometheus API stand-in: `answer(form)` scripts the reply to each query_range POST; `requests` records
    (path, headers, form) of each."""

    answer: Callable[[dict[str, str]], Answer] = field(default=lambda form: Answer(body=matrix([])))
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                stand_in.requests.append((self.path, dict(self.headers), form))
                a = stand_in.answer(form)
                if a.delay_s:
                    time.sleep(a.delay_s)
                body = a.body if isinstance(a.body, bytes | str) else json.dumps(a.body)
                data = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(a.status)
                    self.send_header("Content-Type", a.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its budget)
                    pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def matrix(result: list[dict[str, Any]]) -> dict[str, Any]:
    """A successful query_range answer."""
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}
