"""Reading the catalogue from any Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics,
Grafana Cloud): `POST <url>/api/v1/query_range`, nothing else, so a read-only token is enough.

Why plain httpx and not a client library (their wheels' metadata, read 2026-12): prometheus-api-client 0.7.2 is
`requests` + `dateparser` (pandas, matplotlib as extras); its timeout is requests' per-socket-operation one and it
reads the whole body into `response.json()`. prometrix 0.2.12 wraps prometheus-api-client and adds cloud
auth (AWS SigV4: it requires boto3 and botocore), dependencies for an auth we do not offer. Neither
has a deadline for the whole read or a cap on the bytes read, and those (plus typed results) are most of this
module. httpx is already a dependency, streams the body (so a huge answer is cut off at `telemetry_max_bytes`
instead of being parsed) and takes per-request timeouts that we shrink to what is left of the read's budget.

Every fault ends as an `error` on the read or on one signal; `read` never raises.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ALL_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timedelta

import httpx
import pybreaker

from bot.clock import aware, utcnow
from bot.config import Settings
from bot.telemetry.catalogue import Signal
from bot.telemetry.models import SignalRead, TelemetryRead
from bot.telemetry.promapi import Rejected, TooLarge, Unavailable, check, parse_matrix

log = logging.getLogger(__name__)
MAX_WORKERS = 8  # parallel queries per read: Prometheus answers each in milliseconds; 2 cores here


class _AllFailed(Exception):
    def __init__(self, read: TelemetryRead) -> None:
        super().__init__(read.error or "every query failed")
        self.read = read


class PrometheusSource:
    """A `MetricsSource` over one Prometheus-compatible endpoint; one per process (it remembers rejected entries)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.prometheus_url:
            raise ValueError("prometheus_url is not set")
        self.url = settings.prometheus_url.rstrip("/") + "/api/v1/query_range"
        self.budget_s = settings.telemetry_budget_s
        self.max_series = settings.telemetry_max_series
        self.max_points = settings.telemetry_max_points
        self.max_bytes = settings.telemetry_max_bytes
        headers = {"Accept": "application/json", **settings.prometheus_headers}
        if settings.prometheus_token is not None:
            headers["Authorization"] = f"Bearer {settings.prometheus_token.get_secret_value()}"
        auth = None
        if settings.prometheus_basic_user and settings.prometheus_basic_password is not None:
            auth = httpx.BasicAuth(
                settings.prometheus_basic_user, settings.prometheus_basic_password.get_secret_value()
            )
        self.client = httpx.Client(headers=headers, auth=auth, follow_redirects=False)
        # Reads (tickets) in a row in which every query failed open the circuit: later tickets skip telemetry at
        # once instead of each spending the whole budget on a server that is down.
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=settings.telemetry_breaker_failures,
            reset_timeout=settings.telemetry_breaker_reset_s,
            throw_new_error_on_trip=False,
        )
        self.rejected: dict[str, str] = {}  # name + template -> the server's reason, logged once
        self._lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="telemetry")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # --- the interface
    def read(
        self, signals: Sequence[Signal], selector: str, start: datetime, end: datetime, step: timedelta
    ) -> TelemetryRead:
        t0 = time.monotonic()
        deadline = t0 + self.budget_s
        # The bot's clock may run ahead of the ticket's sender or of Prometheus: never ask for the future.
        start, end = aware(start), min(aware(end), utcnow())
        step_s = max(step.total_seconds(), 1.0)
        span = (end - start).total_seconds()
        if span > 0 and span / step_s + 1 > self.max_points:  # coarser steps, not fewer minutes
            step_s = math.ceil(span / (self.max_points - 1))
        result = TelemetryRead(selector=selector, start=start, end=end, step_s=step_s)
        if span <= 0:
            result.error = "empty window: the start is not before now (clock skew?)"
            return result
        try:
            return self.breaker.call(self._read_all, signals, selector, result, deadline, t0)
        except pybreaker.CircuitBreakerError:
            result.error = (
                f"circuit open: Prometheus failed {self.breaker.fail_counter} reads in a row; "
                "telemetry is skipped for a while"
            )
            result.signals = [
                SignalRead(signal=s.name, query=s.render(selector), error="circuit open") for s in signals
            ]
        except _AllFailed as e:
            return e.read
        result.elapsed_s = time.monotonic() - t0
        return result

    def _read_all(
        self, signals: Sequence[Signal], selector: str, result: TelemetryRead, deadline: float, t0: float
    ) -> TelemetryRead:
        futures = {}
        reads: dict[str, SignalRead] = {}
        for s in signals:
            query = s.render(selector)
            if (why := self.rejected.get(self._key(s))) is not None:
                reads[s.name] = SignalRead(
                    signal=s.name, query=query, error=f"skipped: rejected earlier ({why})"
                )
                continue
            futures[self.pool.submit(self._one, s, query, result, deadline)] = s
        wait(futures, timeout=max(deadline - time.monotonic(), 0), return_when=ALL_COMPLETED)
        unavailable = 0
        for fut, s in futures.items():
            query = s.render(selector)
            if not fut.done():
                fut.cancel()
                reads[s.name] = SignalRead(
                    signal=s.name, query=query, error=f"no answer within the {self.budget_s:g} s budget"
                )
                unavailable += 1
                continue
            read, failed = fut.result()
            reads[s.name] = read
            unavailable += failed
        result.signals = [reads[s.name] for s in signals]
        result.elapsed_s = time.monotonic() - t0
        if futures and unavailable == len(futures):
            result.error = f"Prometheus unavailable: {result.signals[0].error if result.signals else ''}"
            raise _AllFailed(result)
        return result

    def _key(self, s: Signal) -> str:
        return f"{s.name}\0{s.promql}"

    def _one(self, s: Signal, query: str, window: TelemetryRead, deadline: float) -> tuple[SignalRead, bool]:
        """One signal's query: its read, and whether the server was at fault (for the circuit)."""
        read = SignalRead(signal=s.name, query=query)
        try:
            body = self._post(query, window, deadline)
            read.series, read.truncated = parse_matrix(body, self.max_series, self.max_points)
        except Rejected as e:
            read.error = f"rejected by the server: {e}"
            if e.permanent:
                with self._lock:
                    first = self._key(s) not in self.rejected
                    self.rejected[self._key(s)] = str(e)
                if first:
                    log.warning(
                        "signal %s: Prometheus rejected its query, skipped from now on: %s", s.name, e
                    )
            return read, False
        except TooLarge as e:
            read.error = str(e)
            return read, False
        except Unavailable as e:
            read.error = str(e)
            return read, True
        except Exception as e:  # a fault we did not foresee still must not reach the ticket
            read.error = f"{type(e).__name__}: {e}"[:300]
            return read, True
        return read, False

    def _post(self, query: str, window: TelemetryRead, deadline: float) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Unavailable(f"no answer within the {self.budget_s:g} s budget")
        form = {
            "query": query,
            "start": f"{window.start.timestamp():.3f}",
            "end": f"{window.end.timestamp():.3f}",
            "step": f"{window.step_s:g}",
            "timeout": f"{max(int(left * 1000), 100)}ms",  # the server gives up too, not computing for nobody
        }
        try:
            with self.client.stream("POST", self.url, data=form, timeout=httpx.Timeout(left)) as r:
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TooLarge(
                            f"answer larger than {self.max_bytes / 1e6:g} MB: the query matches too many "
                            "series; aggregate it or narrow the selector"
                        )
                    if time.monotonic() > deadline:
                        raise Unavailable(f"no answer within the {self.budget_s:g} s budget")
                    chunks.append(chunk)
                body = b"".join(chunks)
                status, ctype = r.status_code, r.headers.get("content-type", "")
        except httpx.TimeoutException as e:
            raise Unavailable(f"no answer within the {self.budget_s:g} s budget") from e
        except httpx.HTTPError as e:
            raise Unavailable(f"cannot reach Prometheus: {type(e).__name__}: {e}"[:300]) from e
        check(status, ctype, body)
        return body
