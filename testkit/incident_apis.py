"""Stand-ins for the incident tools' REST APIs that `history import --from` reads, on 127.0.0.1, as strict as
the real ones where the importer could get it wrong: the auth header (401 otherwise), the page size limit,
PagerDuty's offset limit (offset + limit <= 10,000) and its 30-day default window, Opsgenie's absolute
`paging.next` URLs, Jira Cloud's opaque `nextPageToken` (tied to its query, `startAt` refused, fewer issues a page
than asked) and Data Center's `startAt`, incident.io's `after` cursor and page size. Faults are scripted per path
(`fail`): a 429 with Retry-After, a 5xx, one page that fails until the test lets it pass. Every request is
recorded (a POST's JSON body among its query items). Records are built from the payloads under
`tests/payloads/<name>-api/` (the vendors' documented shapes)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PAYLOADS = Path(__file__).resolve().parent.parent / "tests" / "payloads"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Fault:
    """Answer `status` (with Retry-After `retry_after`) to the next `times` requests whose path starts with `path`
    and whose query (or POSTed JSON body) has every item of `query`, after letting the first `skip` through."""

    path: str
    status: int
    times: int = 1
    retry_after: str | None = None
    query: dict[str, str] | None = None
    skip: int = 0


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

            def do_POST(self) -> None:
                owner._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(
        self,
        path: str,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        skip: int = 0,
        **query: str,
    ) -> Fault:
        f = Fault(path, status, times, retry_after, query or None, skip)
        self.faults.append(f)
        return f

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in h.headers.items()}
        posted: Any = None
        if h.command == "POST":
            raw = h.rfile.read(int(h.headers.get("content-length") or 0))
            try:
                posted = json.loads(raw or b"null")
            except ValueError:
                posted = raw
            if isinstance(posted, dict):
                flat = {
                    k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in posted.items()
                }
                query = {**query, **flat}
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
            if fault and fault.skip:
                fault.skip, fault = fault.skip - 1, None
            if fault:
                fault.times -= 1
        if fault:
            extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
            status, out_headers, body = fault.status, extra, {"error": "scripted fault"}
        elif h.command == "POST":
            status, out_headers, body = self.answer_post(parts.path, posted, headers)
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

    def answer_post(self, path: str, body: Any, headers: dict[str, str]) -> Answer:
        return 405, {}, {"error": "method not allowed"}

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


def _when(value: object) -> datetime:
    """A record's time for sorting and filtering; an unreadable one sorts last."""
    try:
        return _ts(str(value))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)


_JIRA_BAD_PAYLOAD = "Invalid request payload. Refer to the REST API documentation and try again."
_JQL = re.compile(
    r'\(?\s*project\s*=\s*"?(\w+)"?\s*\)?(?:\s+AND\s+created\s*>=\s*"([^"]+)")?\s+ORDER\s+BY\s+created\s+(ASC|DESC)',
    re.IGNORECASE,
)


class JiraAPI(_StandIn):
    """Jira Cloud (`cloud=True`): Basic auth (email:API token), `POST /rest/api/3/search/jql` paged by an opaque
    `nextPageToken` tied to its query (no `startAt`; no token on the last page, `isLast`), `GET
    /rest/api/3/issue/{key}/comment` (startAt/maxResults/total), ADF bodies. Data Center: Bearer PAT, `POST
    /rest/api/2/search` (startAt/total) and `/rest/api/2/issue/{key}/comment`, string bodies. Either: only the
    fields asked for, at most `max_page` issues a page whatever was asked (the API "may return fewer"), a JQL
    with no project restriction refused (Cloud: unbounded), JQL dates read in the user's time zone `user_tz`."""

    def __init__(
        self,
        issues: list[dict[str, Any]],
        comments: dict[str, list[dict[str, Any]]],
        token: str,
        email: str | None = None,
        max_page: int = 40,
        user_tz: timezone = UTC,
    ) -> None:
        self.issues, self.comments, self.cloud = issues, comments, email is not None
        self.by_key = {i["key"]: i for i in issues}
        basic = base64.b64encode(f"{email}:{token}".encode()).decode()
        self.auth = f"Basic {basic}" if self.cloud else f"Bearer {token}"
        self.prefix = "/rest/api/3" if self.cloud else "/rest/api/2"
        self.max_page, self.user_tz = max_page, user_tz
        super().__init__()

    def _refused(self, headers: dict[str, str]) -> Answer | None:
        if headers.get("authorization") != self.auth:
            body = {"errorMessages": ["Client must be authenticated to access this resource."], "errors": {}}
            return 401, {}, body
        return None

    def answer_post(self, path: str, body: Any, headers: dict[str, str]) -> Answer:
        if refused := self._refused(headers):
            return refused
        if path != (f"{self.prefix}/search/jql" if self.cloud else f"{self.prefix}/search"):
            return 404, {}, {"errorMessages": [f"null for uri: {path}"]}
        bad = (400, {}, {"errorMessages": [_JIRA_BAD_PAYLOAD], "errors": {}})
        if not isinstance(body, dict) or not isinstance(body.get("jql"), str):
            return bad
        if self.cloud and "startAt" in body:  # the enhanced search pages by token only
            return bad
        jql: str = body["jql"]
        m = _JQL.fullmatch(jql.strip())
        if m is None:
            unbounded = (
                "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
            )
            msg = unbounded if "project" not in jql.lower() else f"stand-in: unsupported JQL {jql!r}"
            return 400, {}, {"errorMessages": [msg], "errors": {}}
        project, since, order = m.groups()
        rows = [i for i in self.issues if i["key"].startswith(f"{project}-")]
        if since:
            start = datetime.strptime(since, "%Y-%m-%d %H:%M").replace(tzinfo=self.user_tz)
            rows = [i for i in rows if _when(i["fields"].get("created")) >= start]
        rows = sorted(rows, key=lambda i: _when(i["fields"].get("created")), reverse=order.upper() == "DESC")
        limit = min(int(body.get("maxResults", 50)), self.max_page)
        asked = body.get("fields")
        keep = (lambda f: {k: v for k, v in f.items() if k in asked}) if isinstance(asked, list) else dict
        query_id = hashlib.sha256(jql.encode()).hexdigest()[:8]
        if self.cloud:
            offset = 0
            if token := body.get("nextPageToken"):
                try:
                    q, _, at = base64.urlsafe_b64decode(str(token).encode()).decode().partition(":")
                    offset = int(at)
                except ValueError:
                    q = ""
                if q != query_id:
                    return 400, {}, {"errorMessages": ["The provided next page token is invalid or expired."]}
        else:
            offset = int(body.get("startAt", 0))
        page = [{**i, "fields": keep(i["fields"])} for i in rows[offset : offset + limit]]
        if not self.cloud:
            out = {"expand": "names,schema", "startAt": offset, "maxResults": limit, "total": len(rows)}
            return 200, {}, {**out, "issues": page}
        if offset + limit >= len(rows):
            return 200, {}, {"issues": page, "isLast": True}
        nxt = base64.urlsafe_b64encode(f"{query_id}:{offset + limit}".encode()).decode()
        return 200, {}, {"issues": page, "nextPageToken": nxt, "isLast": False}

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        if refused := self._refused(headers):
            return refused
        m = re.fullmatch(rf"{self.prefix}/issue/([A-Z][A-Z0-9]*-\d+)/comment", path)
        if m is None or m[1] not in self.by_key:
            msg = "Issue does not exist or you do not have permission to see it."
            return 404, {}, {"errorMessages": [msg], "errors": {}}
        rows = sorted(self.comments.get(m[1], []), key=lambda c: _when(c.get("created")))
        if query.get("orderBy", "created").lstrip("+") not in {"created", "-created"}:
            return 400, {}, {"errorMessages": ["Invalid orderBy"], "errors": {}}
        if query.get("orderBy") == "-created":
            rows.reverse()
        start, limit = int(query.get("startAt", 0)), min(int(query.get("maxResults", 5000)), 5000)
        return (
            200,
            {},
            {
                "comments": rows[start : start + limit],
                "maxResults": limit,
                "startAt": start,
                "total": len(rows),
            },
        )


class IncidentIoAPI(_StandIn):
    """API v2: `GET /v2/incidents` (Bearer key; page_size at most 250; sort_by; `after` an incident id of the same
    order, else 422; `created_at[gte]` a date; test and tutorial incidents left out by default) and `GET
    /v2/incident_updates?incident_id=` (newest first, as the product shows them)."""

    def __init__(
        self, key: str, incidents: list[dict[str, Any]], updates: dict[str, list[dict[str, Any]]]
    ) -> None:
        self.key, self.incidents, self.updates = key, incidents, updates
        super().__init__()

    @staticmethod
    def _error(status: int, kind: str, code: str, message: str) -> Answer:
        errors = [{"code": code, "message": message}]
        return status, {}, {"type": kind, "status": status, "request_id": "stand-in", "errors": errors}

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        if headers.get("authorization") != f"Bearer {self.key}":
            return self._error(401, "authentication_error", "unauthenticated", "Invalid API key provided")
        size = int(query.get("page_size", 25))
        if not 1 <= size <= 250:
            return self._error(
                422, "validation_error", "invalid_value", "page_size must be between 1 and 250"
            )
        if path == "/v2/incidents":
            order = query.get("sort_by", "created_at_newest_first")
            if order not in {"created_at_newest_first", "created_at_oldest_first"}:
                return self._error(422, "validation_error", "invalid_value", f"sort_by {order!r}")
            rows = [i for i in self.incidents if i.get("mode") in {"standard", "retrospective"}]
            if gte := query.get("created_at[gte]"):
                day = datetime.fromisoformat(gte).replace(tzinfo=UTC)
                rows = [i for i in rows if _when(i.get("created_at")) >= day]
            rows = sorted(
                rows, key=lambda i: _when(i.get("created_at")), reverse=order == "created_at_newest_first"
            )
            return self._page(rows, "incidents", query, size, total=True)
        if path == "/v2/incident_updates":
            if not query.get("incident_id"):
                return self._error(422, "validation_error", "missing", "incident_id is required")
            rows = sorted(
                self.updates.get(query["incident_id"], []),
                key=lambda u: _when(u.get("created_at")),
                reverse=True,
            )
            return self._page(rows, "incident_updates", query, size, total=False)
        return self._error(404, "not_found", "not_found", "Route not found")

    def _page(
        self, rows: list[dict[str, Any]], name: str, query: dict[str, str], size: int, total: bool
    ) -> Answer:
        start = 0
        if after := query.get("after"):
            ids = [r["id"] for r in rows]
            if after not in ids:
                return self._error(
                    422, "validation_error", "invalid_cursor", "after must be an id in this list"
                )
            start = ids.index(after) + 1
        page = rows[start : start + size]
        meta: dict[str, Any] = {"page_size": size, **({"total_record_count": len(rows)} if total else {})}
        if start + size < len(rows):
            meta["after"] = page[-1]["id"]
        return 200, {}, {name: page, "pagination_meta": meta}


def _adf(*paragraphs: str) -> dict[str, Any]:
    content = [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in paragraphs]
    return {"type": "doc", "version": 1, "content": content}


def _thread(
    template: dict[str, Any],
    texts: list[str],
    at: datetime,
    fill: Callable[[int, str, datetime], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Copies of `template` (a comment, an update), one per text, 20 minutes apart from 10 minutes after `at`;
    `fill(j, text, when)` gives each its own fields."""
    return [
        {**copy.deepcopy(template), **fill(j, text, at + timedelta(minutes=10 + 20 * j))}
        for j, text in enumerate(texts)
    ]


def jira_history(
    n: int, cloud: bool = True, vary: Callable[[int, dict[str, Any]], None] | None = None
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """`n` issues `INC-1`... shaped as the documented ones (API v3 with ADF bodies, or v2 with strings), an hour
    apart from 2024-01-01, each with two comments; `vary(i, issue)` edits one in place."""
    v = "" if cloud else "-v2"
    issue0 = _load(f"jira-api/search{'-jql' if cloud else '-v2'}.json")["issues"][0]
    comment0 = _load(f"jira-api/comments{v}.json")["comments"][0]
    issues, comments = [], {}
    for i in range(n):
        issue, key = copy.deepcopy(issue0), f"INC-{i + 1}"
        at = T0 + timedelta(hours=i)
        f = issue["fields"]
        issue.update(id=str(10000 + i), key=key, self=issue["self"].rsplit("/", 1)[0] + f"/{10000 + i}")
        f["summary"] = f"Checkout API returns 502s in eu-west, shard {i}"
        description = "The checkout service answers 502 for 30% of requests since the 14:02 deploy."
        f["description"] = _adf(description) if cloud else f"<p>{description}</p>"
        f["created"] = at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        f["resolutiondate"] = (at + timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        f["resolution"] = {
            "id": "10000",
            "name": "Fixed",
            "description": "A fix for this issue is checked in.",
        }
        f["priority"] = {"id": str(i % 5 + 1), "name": ["Highest", "High", "Medium", "Low", "Lowest"][i % 5]}
        f["components"] = [{"id": "10000", "name": "checkout-api"}]
        f["customfield_10010"] = {"id": "10001", "value": f"Sev {i % 3 + 1}"}
        texts = ["We are investigating the 502s.", f"Rolled back deploy {i} of checkout-api; 502s stopped."]
        comments[key] = _thread(
            comment0,
            texts,
            at,
            lambda j, text, when, i=i: {
                "id": f"{i}{j}",
                "body": _adf(text) if cloud else text,
                "created": when.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            },
        )
        if vary:
            vary(i, issue)
        issues.append(issue)
    return issues, comments


def incidentio_history(
    n: int, vary: Callable[[int, dict[str, Any]], None] | None = None
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """`n` incidents shaped as the documented one, an hour apart from 2024-01-01, each with two updates (one stock,
    one that says what was done); `vary(i, incident)` edits one in place."""
    inc0 = _load("incidentio-api/incidents.json")["incidents"][0]
    update0 = _load("incidentio-api/incident_updates.json")["incident_updates"][0]
    incidents, updates = [], {}
    for i in range(n):
        inc, iid = copy.deepcopy(inc0), f"01HINC{i:020d}"
        at = T0 + timedelta(hours=i)
        stamp = at.isoformat().replace("+00:00", "Z")
        inc.update(id=iid, reference=f"INC-{i + 1}", created_at=stamp, updated_at=stamp, mode="standard")
        inc["name"] = f"Payments webhooks delayed by 10 minutes, queue {i}"
        inc["summary"] = f"A stuck consumer on queue {i}; restarted it and the backlog drained in 12 minutes."
        inc["permalink"] = f"https://app.incident.io/incidents/{i + 1}"
        inc["creator"] = {"user": inc["creator"]["user"]}  # declared by a person: no alert
        inc["severity"]["name"] = ["Critical", "Major", "Minor"][i % 3]
        resolved = (at + timedelta(minutes=50)).isoformat().replace("+00:00", "Z")
        inc["incident_timestamp_values"] = [
            {"incident_timestamp": {"id": "01TSREPORTED", "name": "Reported at", "rank": 1}, "value": {"value": stamp}},
            {"incident_timestamp": {"id": "01TSRESOLVED", "name": "Resolved at", "rank": 3}, "value": {"value": resolved}},
        ]  # fmt: skip
        team = inc["custom_field_entries"][0]
        team["values"] = [{"value_option": {**team["custom_field"]["options"][0], "value": "Payments"}}]
        cause = {
            "description": "What caused it",
            "field_type": "text",
            "id": "01CFROOTCAUSE",
            "name": "Root cause",
        }
        inc["custom_field_entries"].append(
            {
                "custom_field": cause,
                "values": [{"value_text": f"Consumer {i} deadlocked on a poison message."}],
            }
        )
        texts = ["We're investigating", f"Restarted consumer {i}; the backlog is draining."]
        updates[iid] = _thread(
            update0,
            texts,
            at,
            lambda j, text, when, i=i, iid=iid: {
                "id": f"01HUPD{i:016d}{j:04d}",
                "incident_id": iid,
                "message": text,
                "created_at": when.isoformat().replace("+00:00", "Z"),
            },
        )
        if vary:
            vary(i, inc)
        incidents.append(inc)
    return incidents, updates
