"""Stand-ins for the incident tools' REST APIs that `history import --from` reads, on 127.0.0.1, as strict as
the real ones where the importer could get it wrong: the auth header (401 otherwise), the page size limit,
PagerDuty's offset limit (offset + limit <= 10,000) and its 30-day default window, Opsgenie's absolute
`paging.next` URLs. Faults are scripted per path (`fail`): a 429 with Retry-After, a 5xx, one page that fails
until the test lets it pass. Every request is recorded. Records are built from the payloads under
`tests/payloads/pagerduty-api/` and `tests/payloads/opsgenie-api/` (the vendors' documented shapes)."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PAYLOADS = Path(__file__).resolve().parent.parent / "tests" / "payloads"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Fault:
    """Answer `status` (with Retry-After `retry_after`) to the next `times` GETs whose path starts with `path`
    and whose query has every item of `query`."""

    path: str
    status: int
    times: int = 1
    retry_after: str | None = None
    query: dict[str, str] | None = None


Answer = tuple[int, dict[str, str], Any]


class _StandIn:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []  # path, query, headers
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(
        self, path: str, status: int, times: int = 1, retry_after: str | None = None, **query: str
    ) -> Fault:
        f = Fault(path, status, times, retry_after, query or None)
        self.faults.append(f)
        return f

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self.requests.append((parts.path, query, headers))
            fault = next(
                (
                    f for f in self.faults
                    if f.times > 0 and parts.path.startswith(f.path)
                    and all(query.get(k) == v for k, v in (f.query or {}).items())
                ),
                None,
            )  # fmt: skip
            if fault:
                fault.times -= 1
        if fault:
            extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
            status, out_headers, body = fault.status, extra, {"error": "scripted fault"}
        else:
            status, out_headers, body = self.answer(parts.path, query, headers)
        data = json.dumps(body).encode()
        h.send_response(status)
        for k, v in {**out_headers, "content-type": "application/json"}.items():
            h.send_header(k, v)
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        raise NotImplementedError

    def count(self, path_prefix: str) -> int:
        return sum(1 for p, _, _ in self.requests if p.startswith(path_prefix))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class PagerDutyAPI(_StandIn):
    """REST API v2: GET /incidents, /incidents/{id}/notes, /incidents/{id}/log_entries."""

    def __init__(
        self,
        token: str,
        incidents: list[dict[str, Any]],
        notes: dict[str, list[dict[str, Any]]],
        log_entries: dict[str, list[dict[str, Any]]],
    ) -> None:
        self.token, self.incidents, self.notes, self.log_entries = token, incidents, notes, log_entries
        self.max_offset = 10_000  # classic pagination's limit on offset + limit
        super().__init__()

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        if headers.get("authorization") != f"Token token={self.token}":
            return 401, {}, {"error": {"message": "Authentication failed", "code": 2006}}
        if headers.get("accept") != "application/vnd.pagerduty+json;version=2":
            return 406, {}, {"error": {"message": "Not Acceptable", "code": 2001}}
        limit, offset = int(query.get("limit", 25)), int(query.get("offset", 0))
        parts = path.strip("/").split("/")
        if limit > 100 or (parts == ["incidents"] and offset + limit > self.max_offset):
            errors = [f"Offset must be less than or equal to {self.max_offset}"]
            return 400, {}, {"error": {"message": "Invalid Input Provided", "code": 2001, "errors": errors}}
        if parts == ["incidents"]:
            if "since" in query:
                since = _ts(query["since"])
                rows = [i for i in self.incidents if _ts(i["created_at"]) >= since]
            elif query.get("date_range") == "all":
                rows = self.incidents
            else:  # the API's default: the last 30 days, as of now (no history at all for old incidents)
                rows = [
                    i for i in self.incidents if _ts(i["created_at"]) >= datetime.now(UTC) - timedelta(30)
                ]
            if query.get("sort_by") == "created_at:asc":
                rows = sorted(rows, key=lambda i: _ts(i["created_at"]))
            page = rows[offset : offset + limit]
            more = offset + limit < len(rows)
            return 200, {}, {"incidents": page, "limit": limit, "offset": offset, "total": None, "more": more}
        if len(parts) == 3 and parts[0] == "incidents" and parts[1] in {i["id"] for i in self.incidents}:
            if parts[2] == "notes":
                return 200, {}, {"notes": self.notes.get(parts[1], [])}
            if parts[2] == "log_entries":
                rows = self.log_entries.get(parts[1], [])
                body = {"log_entries": rows[offset : offset + limit], "limit": limit, "offset": offset}
                return 200, {}, {**body, "more": offset + limit < len(rows), "total": None}
        return 404, {}, {"error": {"message": "Not Found", "code": 2100}}


class OpsgenieAPI(_StandIn):
    """Alert API v2: GET /v2/alerts (paging.next), /v2/alerts/{id}, /v2/alerts/{id}/notes."""

    HOST = "https://api.opsgenie.com"  # the real API's paging links name its own host

    def __init__(
        self, key: str, alerts: list[dict[str, Any]], notes: dict[str, list[dict[str, Any]]]
    ) -> None:
        self.key, self.alerts, self.notes = key, alerts, notes
        self.by_id = {a["id"]: a for a in alerts}
        super().__init__()

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        meta = {"took": 0.01, "requestId": "00000000-0000-0000-0000-000000000000"}
        if headers.get("authorization") != f"GenieKey {self.key}":
            return 401, {}, {"message": "Could not authenticate", **meta}
        limit, offset = int(query.get("limit", 20)), int(query.get("offset", 0) or 0)
        if limit > 100:
            return 422, {}, {"message": "Limit should be between 1 and 100", **meta}
        parts = path.strip("/").split("/")
        if parts == ["v2", "alerts"]:
            rows = self.alerts
            if q := query.get("query", ""):
                if not q.startswith("createdAt>="):
                    return 422, {}, {"message": f"stand-in: unsupported query {q!r}", **meta}
                ms = int(q.removeprefix("createdAt>="))
                rows = [a for a in rows if _ts(a["createdAt"]).timestamp() * 1000 >= ms]
            if query.get("sort") == "createdAt":
                rows = sorted(rows, key=lambda a: a["createdAt"], reverse=query.get("order") == "desc")
            summary = [{k: v for k, v in a.items() if k not in SUMMARY_LEAVES_OUT} for a in rows]
            paging = {"first": self._link(path, query, 0, limit)}
            if offset + limit < len(rows):
                paging["next"] = self._link(path, query, offset + limit, limit)
            return 200, {}, {"data": summary[offset : offset + limit], "paging": paging, **meta}
        if len(parts) >= 3 and parts[:2] == ["v2", "alerts"] and parts[2] in self.by_id:
            if query.get("identifierType") != "id":  # without it the id is read as a tiny id or alias
                return 404, {}, {"message": "Alert does not exist", **meta}
            if len(parts) == 3:
                return 200, {}, {"data": self.by_id[parts[2]], **meta}
            if parts[3:] == ["notes"]:
                rows = self.notes.get(parts[2], [])
                body: dict[str, Any] = {"data": rows[offset : offset + limit], **meta}
                if offset + limit < len(rows):
                    body["paging"] = {"next": self._link(path, query, offset + limit, limit)}
                return 200, {}, body
        return 404, {}, {"message": "Alert does not exist", **meta}

    def _link(self, path: str, query: dict[str, str], offset: int, limit: int) -> str:
        return f"{self.HOST}{path}?{urlencode({**query, 'offset': offset, 'limit': limit})}"


SUMMARY_LEAVES_OUT = ("description", "details", "entity", "actions")  # only GET /v2/alerts/{id} has them


def _load(path: str) -> Any:
    return json.loads((PAYLOADS / path).read_text())


def pagerduty_history(
    n: int, vary: Callable[[int, dict[str, Any]], None] | None = None
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """`n` incidents shaped as the documented ones, an hour apart from 2024-01-01, each with a note and its
    trigger and resolve log entries; `vary(i, incident)` edits one in place (and may drop its note)."""
    inc0 = _load("pagerduty-api/incidents.json")["incidents"][0]
    note0 = _load("pagerduty-api/notes.json")["notes"][0]
    log0 = _load("pagerduty-api/log_entries.json")["log_entries"]
    incidents, notes, logs = [], {}, {}
    for i in range(n):
        inc, iid = copy.deepcopy(inc0), f"PI{i:05d}"
        at = T0 + timedelta(hours=i)
        inc.update(id=iid, incident_number=i + 1, created_at=at.isoformat().replace("+00:00", "Z"))
        inc.update(title=f"Elevated 5xx on chat completions, shard {i}", description="")
        inc["summary"] = f"[#{i + 1}] {inc['title']}"
        inc["priority"]["summary"] = f"P{i % 5 + 1}"
        inc["urgency"] = "high" if i % 2 else "low"
        note = {**note0, "id": f"N{i}", "content": f"Rolled back router deploy {i}; errors recovered."}
        trigger, resolve = copy.deepcopy(log0)
        trigger["created_at"] = inc["created_at"]
        trigger["channel"]["details"] = {"error_rate": "7%", "region": "eastus", "model": "gpt-4o"}
        resolve["created_at"] = (at + timedelta(minutes=40)).isoformat()
        notes[iid], logs[iid] = [note], [trigger, resolve]
        if vary:
            vary(i, inc)
        incidents.append(inc)
    return incidents, notes, logs


def opsgenie_history(
    n: int, vary: Callable[[int, dict[str, Any]], None] | None = None
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """`n` alerts shaped as the documented one, an hour apart from 2024-01-01, each with two notes."""
    alert0 = _load("opsgenie-api/alert.json")["data"]
    notes0 = _load("opsgenie-api/notes.json")["data"]
    alerts, notes = [], {}
    for i in range(n):
        a = copy.deepcopy(alert0)
        aid = f"70413a06-38d6-4c85-92b8-{i:012d}"
        at = T0 + timedelta(hours=i)
        a.update(
            id=aid, tinyId=str(i + 1), alias=f"event_{i}", createdAt=at.isoformat().replace("+00:00", "Z")
        )
        a.update(message=f"GPU capacity exhausted in westeurope, pool {i}", priority=f"P{i % 5 + 1}")
        a["description"] = "Requests queue for more than 30 s; <b>429</b> rate from 0.1% to 12%."
        a["tags"] = ["gpu", "capacity"] if i % 2 else ["Critical"]
        n0, n1 = (dict(x) for x in notes0)
        n0["note"] = "Investigating the queue depth per pool."
        n1["note"] = f"Scaled out pool {i} by 40 nodes; the queue drained and 429s stopped."
        notes[aid] = [n0, n1]
        if vary:
            vary(i, a)
        alerts.append(a)
    return alerts, notes
