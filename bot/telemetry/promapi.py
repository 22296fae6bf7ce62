"""The Prometheus HTTP API's answers (https://prometheus.io/docs/prometheus/latest/querying/api/): a status and
body become typed series, or the fault they are, split by whose fault it is (the circuit counts only the server's).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.telemetry.models import Point, Series


class Unavailable(Exception):
    """The server did not answer usefully (down, slow, 5xx, not JSON): counts towards opening the circuit."""


class Rejected(Exception):
    """The server refused this query (4xx): the entry's or the credentials' fault, not the server's."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent  # bad PromQL: skip the entry for the rest of the process


class TooLarge(Exception):
    """More bytes than `telemetry_max_bytes`: the selector matches too much."""


def check(status: int, content_type: str, body: bytes) -> None:
    """Raise the fault a query_range answer is, if it is one."""
    data = _json(body)
    reason = str(data.get("error")) if data is not None else ""
    if status in (401, 403):
        raise Rejected(f"HTTP {status}: not allowed; check prometheus_token, the basic auth or the headers "
                       f"(tenant){': ' + reason if reason else ''}"[:300], permanent=False)  # fmt: skip
    if data is None:
        what = f"HTTP {status}, {content_type or 'no content type'}, not Prometheus JSON"
        raise Unavailable(f"{what}: is prometheus_url the API's base URL?")
    if status < 400 and data.get("status") == "success":
        return
    if status in (400, 422) and data.get("errorType") in ("bad_data", "execution"):
        # Only the query itself is the entry's fault for good; a parameter (ours) or a limit may pass.
        permanent = status == 400 and ('parameter "query"' in reason or "parse error" in reason)
        raise Rejected(reason[:300], permanent=permanent)
    if 400 <= status < 500 and status not in (408, 429):
        raise Rejected(f"HTTP {status}: {reason}"[:300], permanent=False)
    raise Unavailable(f"HTTP {status}: {reason}"[:300])


def parse_matrix(body: bytes, max_series: int, max_points: int) -> tuple[list[Series], str | None]:
    """The series of a successful answer, capped; the second value says what the caps cut."""
    data = json.loads(body)["data"]
    if data.get("resultType") != "matrix":
        raise Unavailable(f"expected a matrix, got {data.get('resultType')!r}")
    raw: list[dict[str, Any]] = data.get("result") or []
    notes = []
    if len(raw) > max_series:
        notes.append(f"{len(raw)} series, the first {max_series} kept")
        raw = raw[:max_series]
    series = []
    for item in raw:
        values = item.get("values") or []
        if len(values) > max_points:
            notes.append(f"{len(values)} points, the last {max_points} kept")
            values = values[-max_points:]
        points = [Point(at=datetime.fromtimestamp(float(t), UTC), value=float(v)) for t, v in values]
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        series.append(Series(labels=labels, points=points))
    return series, "; ".join(dict.fromkeys(notes)) or None


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
