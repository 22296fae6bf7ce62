"""Webhook payloads of ticket and alerting systems, adapted to tickets.

Supported: generic JSON (documented in the README), PagerDuty v3 webhooks, Opsgenie, Prometheus Alertmanager
and Atlassian Statuspage. Each yields "open" (a new ticket), "resolve" (its resolution) or "ignore" events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from bot.intake.statuspage import incident_from_statuspage
from bot.intake.text import html_to_text
from bot.models import Ticket

SOURCES = ("generic", "pagerduty", "opsgenie", "alertmanager", "statuspage")


class WebhookError(ValueError):
    """A payload we cannot use; `status` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class WebhookEvent:
    kind: Literal["open", "resolve", "ignore"]
    key: str  # "<source>:<id in the source>": the idempotency key
    ticket: Ticket | None = None
    resolution: str = ""
    note: str = ""


def _need(obj: Any, *path: str) -> Any:
    cur = obj
    for p in path:
        if not isinstance(cur, dict) or p not in cur or cur[p] in (None, ""):
            raise WebhookError(f"missing field {'.'.join(path)}")
        cur = cur[p]
    return cur


def _ticket(**kw: Any) -> Ticket:
    try:
        return Ticket.model_validate(kw)
    except ValidationError as e:
        err = e.errors()[0]
        raise WebhookError(f"invalid field {'.'.join(map(str, err['loc']))}: {err['msg']}") from e


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if isinstance(value, int | float) else None


def parse_generic(p: dict[str, Any]) -> WebhookEvent:
    source_id = str(_need(p, "id"))
    key = f"generic:{source_id}"
    if p.get("status") == "resolved":
        return WebhookEvent("resolve", key, resolution=str(p.get("resolution") or ""))
    title, text = p.get("title") or "", p.get("text") or p.get("description") or ""
    if not isinstance(title, str) or not isinstance(text, str):
        raise WebhookError("title and text must be strings")
    if not (title.strip() or text.strip()):
        raise WebhookError("missing field title or text")
    extra = {k: p[k] for k in ("service", "component", "created_at") if p.get(k) is not None}
    return WebhookEvent(
        "open", key, _ticket(id=key, title=title, text=text, source="generic", raw=p, **extra)
    )


def parse_pagerduty(p: dict[str, Any]) -> WebhookEvent:
    event = _need(p, "event")
    etype = _need(p, "event", "event_type")
    data = _need(p, "event", "data")
    key = f"pagerduty:{_need(p, 'event', 'data', 'id')}"
    if etype == "incident.resolved":
        return WebhookEvent(
            "resolve", key, resolution=str(data.get("resolve_reason") or "Resolved in PagerDuty.")
        )
    if etype != "incident.triggered":
        return WebhookEvent("ignore", key, note=f"event type {etype} is not handled")
    service = (data.get("service") or {}).get("summary")
    return WebhookEvent(
        "open",
        key,
        _ticket(
            id=key,
            title=str(_need(p, "event", "data", "title")),
            text=str((data.get("body") or {}).get("details") or ""),
            service=service,
            source="pagerduty",
            created_at=event.get("occurred_at") or datetime.now(UTC),
            raw=p,
        ),
    )


def parse_opsgenie(p: dict[str, Any]) -> WebhookEvent:
    action = _need(p, "action")
    alert = _need(p, "alert")
    key = f"opsgenie:{_need(p, 'alert', 'alertId')}"
    if action == "Close":
        return WebhookEvent("resolve", key, resolution=str(alert.get("note") or "Closed in Opsgenie."))
    if action != "Create":
        return WebhookEvent("ignore", key, note=f"action {action} is not handled")
    return WebhookEvent(
        "open",
        key,
        _ticket(
            id=key,
            title=str(_need(p, "alert", "message")),
            text=str(alert.get("description") or ""),
            service=alert.get("entity") or alert.get("source"),
            source="opsgenie",
            created_at=_ms(alert.get("createdAt")) or datetime.now(UTC),
            raw=p,
        ),
    )


def parse_alertmanager(p: dict[str, Any]) -> WebhookEvent:
    alerts = _need(p, "alerts")
    if not isinstance(alerts, list) or not alerts:
        raise WebhookError("alerts must be a non-empty list")
    group = str(p.get("groupKey") or "")
    fingerprints = ",".join(sorted(str(a.get("fingerprint", "")) for a in alerts if isinstance(a, dict)))
    key = "alertmanager:" + hashlib.sha256((group or fingerprints).encode()).hexdigest()[:16]
    common_l, common_a = p.get("commonLabels") or {}, p.get("commonAnnotations") or {}
    if p.get("status") == "resolved":
        return WebhookEvent("resolve", key, resolution="All alerts of the group resolved in Alertmanager.")
    first = alerts[0] if isinstance(alerts[0], dict) else {}
    labels, ann = first.get("labels") or {}, first.get("annotations") or {}
    title = (
        common_a.get("summary") or ann.get("summary") or common_l.get("alertname") or labels.get("alertname")
    )
    if not title:
        raise WebhookError("missing field alerts[0].labels.alertname")
    lines = []
    for a in alerts[:20]:
        if isinstance(a, dict):
            al, an = a.get("labels") or {}, a.get("annotations") or {}
            lines.append(
                f"{al.get('alertname', '')} {al.get('severity', '')}: {an.get('description') or an.get('summary') or ''}"
            )
    return WebhookEvent(
        "open",
        key,
        _ticket(
            id=key,
            title=str(title),
            text="\n".join(lines),
            service=common_l.get("service") or labels.get("service") or labels.get("job"),
            source="alertmanager",
            created_at=first.get("startsAt") or datetime.now(UTC),
            raw=p,
        ),
    )


def parse_statuspage(p: dict[str, Any]) -> WebhookEvent:
    inc = _need(p, "incident")
    try:
        hist = incident_from_statuspage(inc, source="statuspage")
    except (ValueError, ValidationError) as e:
        raise WebhookError(f"invalid incident: {e}") from e
    if inc.get("status") in ("resolved", "postmortem"):
        updates = sorted(inc.get("incident_updates") or [], key=lambda u: u.get("created_at") or "")
        last = html_to_text(updates[-1].get("body") or "") if updates else ""
        return WebhookEvent("resolve", hist.id, resolution=hist.resolution or last)
    return WebhookEvent("open", hist.id, hist.ticket().model_copy(update={"raw": p}))


PARSERS = {
    "generic": parse_generic,
    "pagerduty": parse_pagerduty,
    "opsgenie": parse_opsgenie,
    "alertmanager": parse_alertmanager,
    "statuspage": parse_statuspage,
}


def parse(source: str, payload: Any) -> WebhookEvent:
    if source not in PARSERS:
        raise WebhookError(f"unknown ticket format {source!r}; use one of: {', '.join(SOURCES)}", status=404)
    if not isinstance(payload, dict):
        raise WebhookError("the body must be a JSON object", status=400)
    try:
        return PARSERS[source](payload)
    except WebhookError:
        raise
    except (TypeError, AttributeError, ValueError) as e:  # wrong types deep inside a payload
        raise WebhookError(f"malformed {source} payload: {type(e).__name__}: {e}") from e
