"""Jira Service Management issues from a JQL query (`jira_jql`), each with its comments and resolution.

Jira Cloud (`jira_email` set: Basic auth with an API token): `POST /rest/api/3/search/jql`, paged by the opaque
`nextPageToken` (the current search; the old `/search` with `startAt` is gone from Cloud), then each issue's
`GET /rest/api/3/issue/{key}/comment` (startAt/maxResults). Bodies are ADF (`adf.py`). Jira Data Center
(`jira_email` unset: the token is a personal access token, Bearer): `POST /rest/api/2/search` with startAt, and
`/rest/api/2/issue/{key}/comment`; bodies are wiki text or HTML strings, read as text.

Client: the shared httpx client (`http.py`), not `jira` (pycontribs) nor `atlassian-python-api`. Both are kept up,
but each retries on its own terms (or not: `jira` sleeps on 429 in its own loop, atlassian-python-api has its own
backoff flag), raises its own errors rather than one line naming the source and the permission, and pages inside
helpers that hide the `nextPageToken`/`startAt` the checkpoint keeps to resume. What is read here is two
endpoints; the shared client already honours Retry-After, backs off and is tested against the stand-ins.

Triage time: the summary and the description. Later: the comments, oldest first. The resolution: the resolution's
name and the last comment that says something (Jira keeps no "how it was fixed" field of its own). Labels through
the mapping file from `priority`, `components`, `labels`, `issuetype` or any field by id (`customfield_10010`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx

from bot.config import Settings
from bot.intake.importers.adf import body_text
from bot.intake.importers.base import ImportOptions, Page, Skipped, SourceError, parse_time
from bot.intake.importers.http import ApiClient
from bot.models import HistoricalIncident, SenderSeverity
from bot.text import informative, squash

NAME = "jira"
CREDENTIAL = (
    "a Jira Cloud API token (id.atlassian.com > Security > API tokens; with INCIBOT_JIRA_EMAIL) or a Data Center "
    "personal access token, of a user with the Browse projects permission on the incident project "
    "(INCIBOT_JIRA_API_TOKEN)"
)
FIELDS = [
    "summary", "description", "created", "resolutiondate", "resolution", "priority", "components", "labels",
    "issuetype", "status",
]  # fmt: skip
MAX_COMMENT_PAGES = 20  # 100 comments a page: an issue with more is a chat log, not a resolution
_ORDER_BY = re.compile(r"\s+order\s+by\s+.*$", re.IGNORECASE | re.DOTALL)


class _Body(dict[str, Any]):
    """A JSON body to POST (the search), passed where the shared client takes query parameters."""


class JiraApi(ApiClient):
    """The shared client, with the search POSTed: a JQL query and Cloud's page tokens can outgrow a URL. The POST
    goes through the same retries and the same one-line errors as every GET."""

    def search(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.get(path, _Body(body))

    def _get(self, path: str, params: Any) -> httpx.Response:
        if not isinstance(params, _Body):
            return super()._get(path, params)
        response = self.http.post(path, json=dict(params))
        response.raise_for_status()
        return response


def _values(value: object) -> list[str]:
    """A Jira field's value as the strings a mapping matches: an option's `value`, a user's or component's name,
    each of a list's, a cascading select's parent."""
    if isinstance(value, list):
        return [v for item in value for v in _values(item)]
    if isinstance(value, dict):
        v = value.get("value") or value.get("name") or value.get("displayName")
        return [str(v)] if v else []
    if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
        return [str(value)]
    return []


def _mapped_fields(options: ImportOptions) -> list[str]:
    """The fields the mapping file names beyond the standard ones (custom fields by id), asked for too."""
    return [k for k in options.mapping.sources.get(NAME, {}) if k not in FIELDS]


def incident_from_jira(
    issue: dict[str, Any], comments: list[dict[str, Any]], options: ImportOptions
) -> HistoricalIncident | Skipped:
    key = issue.get("key")
    rid = f"{NAME}:{key}"
    f = issue.get("fields") if isinstance(issue.get("fields"), dict) else {}
    created = parse_time(f.get("created"))
    if created is None:
        return Skipped(id=rid, reason="no readable created")
    if options.since and created < options.since:
        return Skipped(id=rid, reason="before --since")  # the JQL asked from a day early (time zones)
    title = squash(str(f.get("summary") or ""))
    text = body_text(f.get("description"))
    if not title and not text:
        return Skipped(id=rid, reason="no summary or description")
    bodies = [body_text(c.get("body")) for c in sorted(comments, key=lambda c: str(c.get("created") or ""))]
    said = informative(bodies)
    resolution_name = (
        (f.get("resolution") or {}).get("name") if isinstance(f.get("resolution"), dict) else None
    )
    resolution = [f"Resolution: {resolution_name}"] if resolution_name else []
    priority = (f.get("priority") or {}).get("name") if isinstance(f.get("priority"), dict) else None
    pairs = [("priority", str(priority))] if priority else []
    for name in ("components", "labels", "issuetype", *_mapped_fields(options)):
        pairs += [(name, v) for v in _values(f.get(name))]
    components = _values(f.get("components"))
    severity = (
        [
            SenderSeverity(
                name="priority", value=priority, label=options.mapping.label(NAME, "priority", priority)
            )
        ]
        if priority
        else []
    )
    base = options.settings.jira_url or ""
    return HistoricalIncident(
        id=rid,
        title=title or text.split("\n", 1)[0][:200],
        text=text if title else "",
        service=components[0] if components else None,
        source=NAME,
        created_at=created,
        resolved_at=parse_time(f.get("resolutiondate")),
        link=f"{base.rstrip('/')}/browse/{key}" if base else None,
        severity=severity,
        labels=options.mapping.labels(NAME, pairs),
        resolution="\n".join([*resolution, *said[-1:]]),
        later_text="\n".join(b for b in bodies if b),
    )


def _jql(settings: Settings, options: ImportOptions) -> str:
    """The configured query, oldest first where it says no order, and from a day before --since: JQL reads a
    date in the searching user's time zone, which the API does not say; what is earlier is skipped here."""
    jql = settings.jira_jql.strip()
    m = _ORDER_BY.search(" " + jql)
    where, order = (jql[: m.start()].strip(), m.group().strip()) if m else (jql, "ORDER BY created ASC")
    if options.since:
        day = (options.since - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
        where = f'({where}) AND created >= "{day}"' if where else f'created >= "{day}"'
    return f"{where} {order}".strip()


def _auth(settings: Settings) -> tuple[bool, str]:
    """(Cloud?, the Authorization header): Basic email:token for Cloud, Bearer PAT for Data Center."""
    assert settings.jira_api_token is not None
    token = settings.jira_api_token.get_secret_value()
    if settings.jira_email:
        pair = base64.b64encode(f"{settings.jira_email}:{token}".encode()).decode()
        return True, f"Basic {pair}"
    return False, f"Bearer {token}"


class JiraImporter:
    name = NAME
    needs_path = False
    credential = CREDENTIAL

    def pages(self, options: ImportOptions, cursor: str | None) -> Iterator[Page]:
        s = options.settings
        if not s.jira_url or s.jira_api_token is None:
            raise SourceError(
                f"{NAME}: set INCIBOT_JIRA_URL to your site and INCIBOT_JIRA_API_TOKEN to {CREDENTIAL}"
            )
        cloud, auth = _auth(s)
        api = JiraApi(NAME, s.jira_url, {"Authorization": auth, "Accept": "application/json"}, CREDENTIAL, s,
                      url_setting="jira_url")  # fmt: skip
        prefix = "/rest/api/3" if cloud else "/rest/api/2"
        jql = _jql(s, options)
        # The cursor names its query: a checkpoint of another JQL (the setting changed) starts over.
        query_id = hashlib.sha256(jql.encode()).hexdigest()[:12]
        mark, _, at = (cursor or "").partition(":")
        at = at if mark == query_id else ""
        fields = FIELDS + _mapped_fields(options)
        try:
            while True:
                body: dict[str, Any] = {"jql": jql, "maxResults": s.import_page_size, "fields": fields}
                if cloud:
                    page = api.search(
                        f"{prefix}/search/jql", {**body, **({"nextPageToken": at} if at else {})}
                    )
                else:
                    page = api.search(f"{prefix}/search", {**body, "startAt": int(at or 0)})
                issues = page.get("issues")
                if not isinstance(issues, list):
                    raise SourceError(f"{NAME}: {prefix}/search answered no 'issues' list")
                records = [self._record(api, prefix, i, options) for i in issues if isinstance(i, dict)]
                if cloud:  # the last page has no token (and isLast); a token given twice ends it too
                    nxt = str(page.get("nextPageToken") or "")
                    at = nxt if nxt and not page.get("isLast") and nxt != at else ""
                else:
                    start = int(at or 0) + len(issues)
                    at = str(start) if issues and start < int(page.get("total") or 0) else ""
                yield Page(records=records, next_cursor=f"{query_id}:{at}" if at else None)
                if not at:
                    return
        finally:
            api.close()

    def _record(
        self, api: JiraApi, prefix: str, issue: dict[str, Any], options: ImportOptions
    ) -> HistoricalIncident | Skipped:
        key = issue.get("key")
        if not isinstance(key, str) or not key:
            return Skipped(id=f"{NAME}:?", reason="no issue key")
        comments: list[dict[str, Any]] = []
        for _ in range(MAX_COMMENT_PAGES):
            params = {"startAt": len(comments), "maxResults": 100, "orderBy": "created"}
            body = api.get(f"{prefix}/issue/{key}/comment", params)
            got = [c for c in body.get("comments") or [] if isinstance(c, dict)]
            comments += got
            if not got or len(comments) >= int(body.get("total") or 0):
                break
        return incident_from_jira(issue, comments, options)
