"""Opsgenie alerts through the Alert API v2: `GET /v2/alerts` (following `paging.next`), then each alert's
`GET /v2/alerts/{id}` (the list leaves out the description) and `/v2/alerts/{id}/notes`.

Client: plain httpx with tenacity (`http.py`). The vendor's `opsgenie-sdk` is generated from Swagger and has had
no release since 2021; it retries on its own terms and pages by offset without exposing `paging.next`, which the
checkpoint keeps to resume. Three GET endpoints do not justify it.

Triage time: the alert's message and description. Later: the notes, oldest first; the resolution is the notes
that say something.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from bot.intake.importers.base import ImportOptions, Page, Skipped, SourceError, parse_time
from bot.intake.importers.http import ApiClient
from bot.models import HistoricalIncident, SenderSeverity
from bot.text import html_to_text, informative

NAME = "opsgenie"
CREDENTIAL = (
    "an API key with the Read access right (Settings > API key management, or an API integration's key) "
    "(INCIBOT_OPSGENIE_API_KEY)"
)
MAX_NOTE_PAGES = 20  # 100 notes a page: an alert with more is a chat log, not a resolution


def incident_from_opsgenie(
    alert: dict[str, Any], notes: list[dict[str, Any]], options: ImportOptions
) -> HistoricalIncident | Skipped:
    rid = f"{NAME}:{alert.get('id')}"
    created = parse_time(alert.get("createdAt"))
    if created is None:
        return Skipped(id=rid, reason="no readable createdAt")
    title = html_to_text(str(alert.get("message") or ""))
    text = html_to_text(str(alert.get("description") or ""))
    if not title and not text:
        return Skipped(id=rid, reason="no message or description")
    bodies = [
        html_to_text(str(n.get("note") or "")) for n in sorted(notes, key=lambda n: n.get("createdAt") or "")
    ]
    report = alert.get("report") or {}
    resolved_at = None
    if alert.get("status") == "closed" and isinstance(report.get("closeTime"), int | float):
        resolved_at = created + timedelta(milliseconds=report["closeTime"])  # ms from creation to close
    priority = str(alert.get("priority") or "")
    tags = [str(t) for t in alert.get("tags") or []]
    pairs = [("priority", priority)] if priority else []
    pairs += [("tags", t) for t in tags]
    severity = (
        [
            SenderSeverity(
                name="priority", value=priority, label=options.mapping.label(NAME, "priority", priority)
            )
        ]
        if priority
        else []
    )
    details = alert.get("details") if isinstance(alert.get("details"), dict) else {}
    service = details.get("service") or alert.get("entity") or None
    return HistoricalIncident(
        id=rid,
        title=title or text.split("\n", 1)[0][:200],
        text=text if title else "",
        service=str(service) if service else None,
        source=NAME,
        created_at=created,
        resolved_at=resolved_at,
        severity=severity,
        labels=options.mapping.labels(NAME, pairs),
        resolution="\n".join(informative(bodies)),
        later_text="\n".join(b for b in bodies if b),
    )


def _relative(url: str) -> str:
    """`paging.next` is an absolute URL on the API's host: kept as path and query, so the configured base URL
    (a proxy, the EU host, a stand-in) stays the one asked."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


class OpsgenieImporter:
    name = NAME
    needs_path = False
    credential = CREDENTIAL

    def pages(self, options: ImportOptions, cursor: str | None) -> Iterator[Page]:
        s = options.settings
        if s.opsgenie_api_key is None:
            raise SourceError(f"{NAME}: set INCIBOT_OPSGENIE_API_KEY to {CREDENTIAL}")
        api = ApiClient(
            NAME,
            s.opsgenie_api_url,
            {"Authorization": f"GenieKey {s.opsgenie_api_key.get_secret_value()}"},
            CREDENTIAL,
            s,
        )
        try:
            # Oldest first, so alerts created during the import come after the cursor.
            query = f"createdAt>={int(options.since.timestamp() * 1000)}" if options.since else ""
            first = {"limit": s.import_page_size, "sort": "createdAt", "order": "asc", "offset": 0}
            url: str | None = cursor or None
            while True:
                body = api.get(url, None) if url else api.get("/v2/alerts", {**first, "query": query})
                alerts = body.get("data")
                if not isinstance(alerts, list):
                    raise SourceError(f"{NAME}: /v2/alerts answered no 'data' list")
                records = [self._record(api, a, options) for a in alerts if isinstance(a, dict)]
                nxt = (body.get("paging") or {}).get("next")
                url = _relative(nxt) if isinstance(nxt, str) and nxt and alerts else None
                yield Page(records=records, next_cursor=url)
                if url is None:
                    return
        finally:
            api.close()

    def _record(
        self, api: ApiClient, alert: dict[str, Any], options: ImportOptions
    ) -> HistoricalIncident | Skipped:
        aid = alert.get("id")
        if not isinstance(aid, str) or not aid:
            return Skipped(id=f"{NAME}:?", reason="no alert id")
        full = api.get(f"/v2/alerts/{aid}", {"identifierType": "id"}).get("data")
        notes: list[dict[str, Any]] = []
        url: str | None = f"/v2/alerts/{aid}/notes?identifierType=id&order=asc&limit=100"
        for _ in range(MAX_NOTE_PAGES):
            if url is None:
                break
            body = api.get(url)
            notes += [n for n in body.get("data") or [] if isinstance(n, dict)]
            nxt = (body.get("paging") or {}).get("next")
            url = _relative(nxt) if isinstance(nxt, str) and nxt and body.get("data") else None
        return incident_from_opsgenie({**alert, **(full if isinstance(full, dict) else {})}, notes, options)
