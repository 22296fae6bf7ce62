"""incident.io incidents through the API v2: `GET /v2/incidents` (oldest first, cursor `after` from
`pagination_meta.after`, `page_size`), then each incident's `GET /v2/incident_updates`.

Client: the shared httpx client (`http.py`), not the vendor's `incident-io` SDK. The SDK is official and kept in
step with the API (generated from its OpenAPI schema), but it neither retries nor honours Retry-After (a 429 comes
back as an `ErrorResponse` value), so the shared retries would wrap it anyway; it would add a dependency and its
attrs models for two GET endpoints whose JSON is read here directly.

Triage time: the incident's `name` and, when an alert declared it, that alert's title (`creator.alert.title`):
both are there when the incident is opened. Not the `summary`: incident.io keeps one summary, edited as the
incident goes and usually rewritten in the post-incident flow, and the API gives only its latest text, so it is
hindsight; it goes, with the updates' messages and the text custom fields (the post-incident fields), into
`later_text`, and the summary and the updates that say something into the resolution.

Labels through the mapping file from `severity`, `incident_type` and any custom field by its name (an option's
value, a catalog entry's name, a text or number).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from bot.intake.importers.base import ImportOptions, Page, Skipped, SourceError, parse_time
from bot.intake.importers.http import ApiClient
from bot.models import HistoricalIncident, SenderSeverity
from bot.text import html_to_text, informative, squash

NAME = "incidentio"
CREDENTIAL = (
    "an API key that can view data, like public incidents and organisation settings (Settings > API keys; to "
    "import private incidents too, one that can view all incident data) (INCIBOT_INCIDENTIO_API_KEY)"
)
MAX_PAGE = 250  # the API's largest page_size
MAX_UPDATE_PAGES = 20


def _name(value: object, *keys: str) -> str:
    """The first of `keys` an object has (a severity's `name`, an option's `value`); '' otherwise."""
    if isinstance(value, dict):
        return next((str(value[k]) for k in keys if value.get(k) not in (None, "")), "")
    return ""


def _field_values(entry: dict[str, Any]) -> list[str]:
    """A custom field entry's values as text: options, catalog entries, text, numbers, links."""
    out = []
    for v in entry.get("values") or []:
        if not isinstance(v, dict):
            continue
        text = (
            _name(v.get("value_option"), "value")
            or _name(v.get("value_catalog_entry"), "name")
            or str(v.get("value_text") or v.get("value_numeric") or v.get("value_link") or "")
        )
        if text:
            out.append(squash(text))
    return out


def _timestamp(inc: dict[str, Any], *names: str) -> Any:
    """The value of the first incident timestamp (Reported at, Resolved at, ...) whose name is one of `names`."""
    for want in names:
        for t in inc.get("incident_timestamp_values") or []:
            if isinstance(t, dict) and _name(t.get("incident_timestamp"), "name").casefold() == want:
                return (t.get("value") or {}).get("value")
    return None


def incident_from_incidentio(
    inc: dict[str, Any], updates: list[dict[str, Any]], options: ImportOptions
) -> HistoricalIncident | Skipped:
    rid = f"{NAME}:{inc.get('id')}"
    # When it was reported (a retrospective incident is created long after), else when it was created.
    created = parse_time(_timestamp(inc, "reported at")) or parse_time(inc.get("created_at"))
    if created is None:
        return Skipped(id=rid, reason="no readable created_at")
    if options.since and created < options.since:
        return Skipped(id=rid, reason="before --since")  # the list was asked from a day early (time zones)
    title = squash(str(inc.get("name") or ""))
    alert = squash(str(((inc.get("creator") or {}).get("alert") or {}).get("title") or ""))
    text = alert if alert != title else ""
    if not title and not text:
        return Skipped(id=rid, reason="no name or alert (the summary is written later: not triage-time text)")
    summary = html_to_text(str(inc.get("summary") or ""))
    messages = [
        html_to_text(str(u.get("message") or ""))
        for u in sorted(updates, key=lambda u: str(u.get("created_at") or ""))
    ]
    entries = [e for e in inc.get("custom_field_entries") or [] if isinstance(e, dict)]
    pairs, fields_text, service = [], [], None
    severity_name = _name(inc.get("severity"), "name")
    type_name = _name(inc.get("incident_type"), "name")
    pairs += [("severity", severity_name)] if severity_name else []
    pairs += [("incident_type", type_name)] if type_name else []
    for e in entries:
        field = _name(e.get("custom_field"), "name")
        values = _field_values(e)
        pairs += [(field, v) for v in values]
        if field and values and "service" in field.casefold() and service is None:
            service = values[0]
        if field and values and _name(e.get("custom_field"), "field_type") == "text":
            fields_text.append(f"{field}: {'; '.join(values)}")
    postmortem = str(inc.get("postmortem_document_url") or "")
    later = [summary, *fields_text, *messages, f"Post-mortem: {postmortem}" if postmortem else ""]
    severity = (
        [
            SenderSeverity(
                name="severity",
                value=severity_name,
                label=options.mapping.label(NAME, "severity", severity_name),
            )
        ]
        if severity_name
        else []
    )
    return HistoricalIncident(
        id=rid,
        title=title or text,
        text=text if title else "",
        service=service,
        source=NAME,
        created_at=created,
        resolved_at=parse_time(_timestamp(inc, "resolved at", "closed at")),
        link=inc.get("permalink"),
        severity=severity,
        labels=options.mapping.labels(NAME, pairs),
        resolution="\n".join(informative([summary, *messages])),
        later_text="\n".join(x for x in later if x),
    )


class IncidentIoImporter:
    name = NAME
    needs_path = False
    credential = CREDENTIAL

    def pages(self, options: ImportOptions, cursor: str | None) -> Iterator[Page]:
        s = options.settings
        if s.incidentio_api_key is None:
            raise SourceError(f"{NAME}: set INCIBOT_INCIDENTIO_API_KEY to {CREDENTIAL}")
        api = ApiClient(
            NAME,
            s.incidentio_api_url,
            {"Authorization": f"Bearer {s.incidentio_api_key.get_secret_value()}"},
            CREDENTIAL,
            s,
        )
        try:
            # Oldest first, so incidents opened during the import come after the cursor. The date filter takes a
            # day and is read in a time zone the API does not say: a day early, the rest skipped by the record.
            params: dict[str, Any] = {"page_size": s.import_page_size, "sort_by": "created_at_oldest_first"}
            if options.since:
                params["created_at[gte]"] = (options.since - timedelta(days=1)).date().isoformat()
            after = cursor or None
            while True:
                body = api.get("/v2/incidents", {**params, **({"after": after} if after else {})})
                incidents = body.get("incidents")
                if not isinstance(incidents, list):
                    raise SourceError(f"{NAME}: /v2/incidents answered no 'incidents' list")
                records = [self._record(api, i, options) for i in incidents if isinstance(i, dict)]
                nxt = (body.get("pagination_meta") or {}).get("after")
                after = str(nxt) if nxt and incidents else None
                yield Page(records=records, next_cursor=after)
                if after is None:
                    return
        finally:
            api.close()

    def _record(
        self, api: ApiClient, inc: dict[str, Any], options: ImportOptions
    ) -> HistoricalIncident | Skipped:
        iid = inc.get("id")
        if not isinstance(iid, str) or not iid:
            return Skipped(id=f"{NAME}:?", reason="no incident id")
        updates: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(MAX_UPDATE_PAGES):
            params = {"incident_id": iid, "page_size": MAX_PAGE, **({"after": after} if after else {})}
            body = api.get("/v2/incident_updates", params)
            got = [u for u in body.get("incident_updates") or [] if isinstance(u, dict)]
            updates += got
            nxt = (body.get("pagination_meta") or {}).get("after")
            if not got or not nxt:
                break
            after = str(nxt)
        return incident_from_incidentio(inc, updates, options)
