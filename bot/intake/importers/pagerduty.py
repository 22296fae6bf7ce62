"""PagerDuty incidents through the REST API v2: `GET /incidents` (offset/limit, `more`), then each incident's
`/notes` and `/log_entries`.

Client: plain httpx with tenacity (`http.py`), not the vendor's `pagerduty` package (the maintained successor of
`pdpyras`). Its `iter_all` hides the offset it is at, which the checkpoint needs to resume an interrupted import;
its retry policy is its own, where every importer here shares one (Retry-After honoured, bounded backoff, one
error line naming the source); and it would add a dependency for three GET endpoints httpx already covers.

Triage time: the title and the alert's first description (the incident's `description` where it says more than
the title, else the trigger log entry's details). Later: the notes, oldest first; the resolution is the notes
that say something (not "Resolved by ..." boilerplate).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from bot.intake.importers.base import ImportOptions, Page, Skipped, SourceError, parse_time
from bot.intake.importers.http import ApiClient
from bot.models import HistoricalIncident, SenderSeverity
from bot.text import html_to_text, informative

NAME = "pagerduty"
# Classic pagination stops at offset + limit = 10,000; a longer history is read in windows of `since`.
MAX_OFFSET = 10_000
CREDENTIAL = (
    "a read-only REST API key (Integrations > API Access Keys) or a user token that can read incidents "
    "(INCIBOT_PAGERDUTY_API_TOKEN)"
)


def _details(channel: dict[str, Any]) -> str:
    """What the alert said when it fired: an Events API `details` object, an email body, or a summary."""
    details = channel.get("details") or channel.get("body") or channel.get("summary") or ""
    if isinstance(details, dict):
        return "\n".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in details.items())
    return html_to_text(str(details))


def incident_from_pagerduty(
    inc: dict[str, Any], notes: list[dict[str, Any]], log: list[dict[str, Any]], options: ImportOptions
) -> HistoricalIncident | Skipped:
    rid = f"{NAME}:{inc.get('id')}"
    created = parse_time(inc.get("created_at"))
    if created is None:
        return Skipped(id=rid, reason="no readable created_at")
    title = html_to_text(str(inc.get("title") or inc.get("summary") or ""))
    description = html_to_text(str(inc.get("description") or ""))
    log = sorted(log, key=lambda e: e.get("created_at") or "")
    trigger = next((e for e in log if e.get("type") == "trigger_log_entry"), None)
    text = description if description and description != title else ""
    if not text and trigger:
        text = _details(trigger.get("channel") or {})
    if not title and not text:
        return Skipped(id=rid, reason="no title or description")
    bodies = [
        html_to_text(str(n.get("content") or ""))
        for n in sorted(notes, key=lambda n: n.get("created_at") or "")
    ]
    resolve = next((e for e in log if e.get("type") == "resolve_log_entry"), None)
    resolved_at = parse_time(resolve.get("created_at")) if resolve else None
    if resolved_at is None and inc.get("status") == "resolved":
        resolved_at = parse_time(inc.get("resolved_at") or inc.get("last_status_change_at"))
    severity, pairs = [], []
    for key, value in (
        ("priority", (inc.get("priority") or {}).get("summary")),
        ("urgency", inc.get("urgency")),
    ):
        if value:
            pairs.append((key, str(value)))
            severity.append(
                SenderSeverity(name=key, value=str(value), label=options.mapping.label(NAME, key, str(value)))
            )
    service = (inc.get("service") or {}).get("summary")
    return HistoricalIncident(
        id=rid,
        title=title,
        text=text,
        service=service or None,
        source=NAME,
        created_at=created,
        resolved_at=resolved_at,
        link=inc.get("html_url"),
        severity=severity,
        labels=options.mapping.labels(NAME, pairs),
        resolution="\n".join(informative(bodies)),
        later_text="\n".join(b for b in bodies if b),
    )


def _cursor(cursor: str | None, options: ImportOptions) -> tuple[int, str | None]:
    """(offset, since) from "<offset>" or "<offset>@<since>"; the start: (0, --since)."""
    if not cursor:
        return 0, options.since.isoformat() if options.since else None
    offset, _, window = cursor.partition("@")
    return int(offset), window or None


class PagerDutyImporter:
    name = NAME
    needs_path = False
    credential = CREDENTIAL

    def pages(self, options: ImportOptions, cursor: str | None) -> Iterator[Page]:
        s = options.settings
        if s.pagerduty_api_token is None:
            raise SourceError(f"{NAME}: set INCIBOT_PAGERDUTY_API_TOKEN to {CREDENTIAL}")
        api = ApiClient(
            NAME,
            s.pagerduty_api_url,
            {
                "Authorization": f"Token token={s.pagerduty_api_token.get_secret_value()}",
                "Accept": "application/vnd.pagerduty+json;version=2",
            },
            CREDENTIAL,
            s,
        )
        try:
            offset, window = _cursor(cursor, options)
            while True:
                params: list[tuple[str, Any]] = [("sort_by", "created_at:asc"), ("limit", s.import_page_size)]
                # Without since the API answers the last 30 days only; `date_range=all` is everything.
                params.append(("since", window) if window else ("date_range", "all"))
                body = api.get("/incidents", [*params, ("offset", offset)])
                incidents = body.get("incidents")
                if not isinstance(incidents, list):
                    raise SourceError(f"{NAME}: /incidents answered no 'incidents' list")
                records = [self._record(api, inc, options) for inc in incidents if isinstance(inc, dict)]
                offset += len(incidents)
                if not (body.get("more") and incidents):
                    yield Page(records=records, next_cursor=None)
                    return
                if offset + s.import_page_size > MAX_OFFSET:
                    # Past PagerDuty's offset limit: a new window from the last opening time read. Incidents
                    # opened at that very second come again: counted as duplicates or unchanged, not written.
                    last = str(incidents[-1].get("created_at") or "")
                    if not last or last == window:
                        raise SourceError(f"{NAME}: more than {MAX_OFFSET} incidents opened at {last}")
                    offset, window = 0, last
                yield Page(records=records, next_cursor=f"{offset}@{window}" if window else str(offset))
        finally:
            api.close()

    def _record(
        self, api: ApiClient, inc: dict[str, Any], options: ImportOptions
    ) -> HistoricalIncident | Skipped:
        iid = inc.get("id")
        if not isinstance(iid, str) or not iid:
            return Skipped(id=f"{NAME}:?", reason="no incident id")
        notes = api.get(f"/incidents/{iid}/notes").get("notes") or []
        log = (
            api.get(
                f"/incidents/{iid}/log_entries",
                [("include[]", "channels"), ("is_overview", "false"), ("limit", 100)],
            ).get("log_entries")
            or []
        )
        return incident_from_pagerduty(inc, notes, log, options)
