"""Webhook payloads of ticket and alerting systems, adapted to events about the sender's incidents.

Supported: generic JSON (documented in the README), PagerDuty v3 webhooks, Opsgenie outgoing webhooks, Prometheus
Alertmanager (`webhook_configs`) and Atlassian Statuspage notifications, in the shapes they really send
(`tests/payloads/` holds captures and where each comes from).

Each notification is one event about a *thread*: the sender's lasting identity for an incident (a PagerDuty
incident, an Alertmanager group of one receiver, an Opsgenie alert, a Statuspage incident). `items` are what the
notification says, by a stable id (an alert firing since a time, a Statuspage update, a PagerDuty event), so the
service can tell news from a repeat, and a group firing again from one that grows (`bot/intake/occurrences.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from bot.clock import utcnow
from bot.intake.statuspage import incident_from_statuspage
from bot.models import Link, SenderSeverity, Ticket
from bot.text import html_to_text, informative

SOURCES = ("generic", "pagerduty", "opsgenie", "alertmanager", "statuspage")
MAX_LINES = 20  # alerts or updates listed in one ticket or thread reply; the rest are counted


class WebhookError(ValueError):
    """A payload we cannot use; `status` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class EventKind(StrEnum):
    OPEN = "open"  # firing: a new ticket, or news for the open one (an alert group that grew)
    UPDATE = "update"  # more about a known incident: a note, a priority change, a status update
    RESOLVE = "resolve"
    IGNORE = "ignore"  # nothing the bot shows changes (acknowledged, ...): answered 2xx with the reason


class WebhookEvent(BaseModel):
    kind: EventKind
    source: str
    thread: str = ""  # "<source>:<the sender's id for the incident>"; its occurrences share it
    ticket: Ticket | None = None  # OPEN: what a new occurrence posts
    items: dict[str, str] = Field(default_factory=dict)  # stable id -> one line shown when it is news
    note: str = ""  # the headline of a thread reply (IGNORE: why nothing changes)
    resolution: str = ""  # RESOLVE: what fixed it, only if the sender said something beyond stock words
    merged_into: Link | None = None  # RESOLVE by merging into another incident
    severity: list[SenderSeverity] = Field(default_factory=list)  # UPDATE: the sender's severity now
    links: list[Link] = Field(default_factory=list)  # UPDATE: links of what is new
    component: str | None = None  # Statuspage component notification: the component's id


def _need(obj: Any, *path: str) -> Any:
    cur = obj
    for p in path:
        if not isinstance(cur, dict) or p not in cur or cur[p] in (None, ""):
            raise WebhookError(f"missing field {'.'.join(path)}")
        cur = cur[p]
    return cur


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _ticket(**kw: Any) -> Ticket:
    try:
        return Ticket.model_validate(kw)
    except ValidationError as e:
        err = e.errors()[0]
        raise WebhookError(f"invalid field {'.'.join(map(str, err['loc']))}: {err['msg']}") from e


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if isinstance(value, int | float) else None


def _links(*pairs: tuple[str, Any]) -> list[Link]:
    """Links from (label, url) pairs, skipping empty and repeated URLs."""
    out: list[Link] = []
    for label, url in pairs:
        if (u := _str(url)) and all(x.url != u for x in out):
            out.append(Link(label=label, url=u))
    return out


def _severity(name: str, value: Any) -> list[SenderSeverity]:
    v = _str(value) if not isinstance(value, int) else str(value)
    return [SenderSeverity(name=name, value=v)] if v else []


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def listed(lines: list[str], what: str = "more") -> list[str]:
    """At most MAX_LINES lines; the cut is said, never silent."""
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], f"… and {len(lines) - MAX_LINES} {what} not listed here."]


# ---- generic ---------------------------------------------------------------------------------------------
def parse_generic(p: dict[str, Any]) -> WebhookEvent:
    thread = f"generic:{_need(p, 'id')}"
    if p.get("status") == "resolved":
        resolution = str(p.get("resolution") or "")
        return WebhookEvent(
            kind=EventKind.RESOLVE,
            source="generic",
            thread=thread,
            items={f"resolve:{_digest(resolution)}": ""},
            resolution=resolution,
            note="Resolved by the sender.",
        )
    title, text = p.get("title") or "", p.get("text") or p.get("description") or ""
    if not isinstance(title, str) or not isinstance(text, str):
        raise WebhookError("title and text must be strings")
    if not (title.strip() or text.strip()):
        raise WebhookError("missing field title or text")
    extra = {k: p[k] for k in ("service", "component", "created_at", "link") if p.get(k) is not None}
    ticket = _ticket(
        id=thread, title=title, text=text, source="generic", raw=p, severity=_severity("severity", p.get("severity")),
        **extra,
    )  # fmt: skip
    return WebhookEvent(
        kind=EventKind.OPEN, source="generic", thread=thread, ticket=ticket, items={"open": ""}
    )


# ---- PagerDuty v3 ----------------------------------------------------------------------------------------
def _pd_severity(data: dict[str, Any]) -> list[SenderSeverity]:
    return _severity("priority", _obj(data.get("priority")).get("summary")) + _severity(
        "urgency", data.get("urgency")
    )


def _pd_ticket(thread: str, event: dict[str, Any], data: dict[str, Any]) -> Ticket:
    # v3 sends no description (`body.details` is REST-only): the text is what the incident record says.
    service = _str(_obj(data.get("service")).get("summary")) or None
    teams = [
        _str(t.get("summary")) for t in data.get("teams") or [] if isinstance(t, dict) and t.get("summary")
    ]
    facts = [
        f"service {service}" if service else "",
        f"priority {_obj(data.get('priority')).get('summary')}" if _obj(data.get("priority")).get("summary") else "",
        f"urgency {data['urgency']}" if _str(data.get("urgency")) else "",
        f"teams {', '.join(teams)}" if teams else "",
        f"incident type {_obj(data.get('incident_type')).get('name')}"
        if _str(_obj(data.get("incident_type")).get("name")) else "",
    ]  # fmt: skip
    number = (
        f"PagerDuty incident #{data['number']}"
        if isinstance(data.get("number"), int)
        else "PagerDuty incident"
    )
    return _ticket(
        id=thread,
        title=str(_need(data, "title")),
        text=f"{number}: " + "; ".join(f for f in facts if f) + "." if any(facts) else "",
        service=service,
        source="pagerduty",
        created_at=data.get("created_at") or event.get("occurred_at") or utcnow(),
        raw={"event": event},
        link=_str(data.get("html_url")) or None,
        links=_links(("Conference bridge", _obj(data.get("conference_bridge")).get("conference_url"))),
        severity=_pd_severity(data),
    )


def parse_pagerduty(p: dict[str, Any]) -> WebhookEvent:
    event = _need(p, "event")
    etype = str(_need(p, "event", "event_type"))
    data = _need(p, "event", "data")
    if not isinstance(data, dict):
        raise WebhookError("event.data must be an object")
    item = str(event.get("id") or f"{etype}@{event.get('occurred_at')}")
    about = "incident" if data.get("type") in ("incident_note", "incident_status_update") else None
    incident_id = _need(data, about, "id") if about else _need(p, "event", "data", "id")
    thread = f"pagerduty:{incident_id}"

    def update(note: str, line: str, **kw: Any) -> WebhookEvent:
        return WebhookEvent(
            kind=EventKind.UPDATE, source="pagerduty", thread=thread, items={item: line}, note=note, **kw
        )

    match etype:
        case "incident.triggered" | "incident.reopened":
            ticket = _pd_ticket(thread, event, data)
            again = "Reopened in PagerDuty" if etype == "incident.reopened" else "Triggered in PagerDuty"
            return WebhookEvent(kind=EventKind.OPEN, source="pagerduty", thread=thread, ticket=ticket,
                                items={item: again}, note=again)  # fmt: skip
        case "incident.resolved":
            reason = _obj(data.get("resolve_reason"))
            if reason.get("type") == "merge_resolve_reason":
                target = _obj(reason.get("incident"))
                name = _str(target.get("summary")) or _str(target.get("id")) or "another incident"
                merged = (
                    Link(label=name, url=_str(target.get("html_url"))) if target.get("html_url") else None
                )
                return WebhookEvent(kind=EventKind.RESOLVE, source="pagerduty", thread=thread, items={item: ""},
                                    note=f"Merged into PagerDuty incident {name}.", merged_into=merged)  # fmt: skip
            # v3 carries no resolution note: nothing to learn as a fix (notes arrive as incident.annotated).
            return WebhookEvent(kind=EventKind.RESOLVE, source="pagerduty", thread=thread, items={item: ""},
                                note="Resolved in PagerDuty.")  # fmt: skip
        case "incident.priority_updated":
            sev = _pd_severity(data)
            line = ", ".join(f"{s.name} {s.value}" for s in sev) or "priority removed"
            return update("Priority changed in PagerDuty", line, severity=sev)
        case "incident.annotated":
            return update("Note added in PagerDuty", str(_need(data, "content")))
        case "incident.status_update_published":
            return update("Status update in PagerDuty", str(_need(data, "message")))
    return WebhookEvent(
        kind=EventKind.IGNORE, source="pagerduty", thread=thread, note=f"event type {etype} is not handled"
    )


# ---- Opsgenie --------------------------------------------------------------------------------------------
def _og_priority(alert: dict[str, Any]) -> list[SenderSeverity]:
    value = alert.get("priority")
    # Older deliveries carry the level as a bare number (3); the API's own spelling is P3.
    return _severity(
        "priority", f"P{value}" if isinstance(value, int) and not isinstance(value, bool) else value
    )


def parse_opsgenie(p: dict[str, Any]) -> WebhookEvent:
    action = str(_need(p, "action"))
    alert = _need(p, "alert")
    if not isinstance(alert, dict):
        raise WebhookError("alert must be an object")
    thread = f"opsgenie:{_need(p, 'alert', 'alertId')}"
    item = f"{action}@{alert.get('updatedAt') or ''}"
    if action == "Close":
        note = _str(alert.get("note"))
        return WebhookEvent(kind=EventKind.RESOLVE, source="opsgenie", thread=thread, items={"close": note},
                            note="Closed in Opsgenie.", resolution="\n".join(informative([note])))  # fmt: skip
    if action == "AddNote":
        return WebhookEvent(kind=EventKind.UPDATE, source="opsgenie", thread=thread,
                            items={item: str(_need(alert, "note"))}, note="Note added in Opsgenie")  # fmt: skip
    if action == "UpdatePriority":
        sev = _og_priority(alert)
        return WebhookEvent(kind=EventKind.UPDATE, source="opsgenie", thread=thread, severity=sev,
                            items={item: f"priority {sev[0].value}" if sev else "priority removed"},
                            note="Priority changed in Opsgenie")  # fmt: skip
    if action != "Create":
        return WebhookEvent(kind=EventKind.IGNORE, source="opsgenie", thread=thread,
                            note=f"action {action} is not handled")  # fmt: skip
    details = {str(k): v for k, v in _obj(alert.get("details")).items() if isinstance(v, str | int | float)}
    teams = [
        r.get("name")
        for r in alert.get("responders") or []
        if isinstance(r, dict) and r.get("type") == "team"
    ]
    tags = [t for t in alert.get("tags") or [] if isinstance(t, str)]
    lines = [
        _str(alert.get("description")),
        f"Tags: {', '.join(tags)}" if tags else "",
        f"Teams: {', '.join(str(t) for t in teams if t)}" if any(teams) else "",
        "Details: " + ", ".join(f"{k}={v}" for k, v in details.items()) if details else "",
    ]
    # `source` is who or what created the alert (often a person's e-mail address), never the service.
    service = _str(alert.get("entity")) or _str(details.get("service")) or None
    ticket = _ticket(
        id=thread, title=str(_need(p, "alert", "message")), text="\n".join(x for x in lines if x), service=service,
        source="opsgenie", created_at=_ms(alert.get("createdAt")) or utcnow(), raw=p,
        severity=_og_priority(alert),
    )  # fmt: skip
    return WebhookEvent(
        kind=EventKind.OPEN, source="opsgenie", thread=thread, ticket=ticket, items={"create": ""}
    )


# ---- Alertmanager ----------------------------------------------------------------------------------------
_SHOWN_ELSEWHERE = {"alertname", "severity"}


def _alert_id(a: dict[str, Any]) -> str:
    """An alert firing since a time: the same alert firing again after it resolved is another item."""
    labels = _obj(a.get("labels"))
    fp = _str(a.get("fingerprint")) or _digest(*(f"{k}={v}" for k, v in sorted(labels.items())))
    resolved = ":resolved" if a.get("status") == "resolved" else ""
    return f"{fp}@{a.get('startsAt') or ''}{resolved}"


def _alert_line(a: dict[str, Any], common: dict[str, Any]) -> str:
    labels, ann = _obj(a.get("labels")), _obj(a.get("annotations"))
    own = ", ".join(f"{k}={v}" for k, v in labels.items() if k not in _SHOWN_ELSEWHERE and common.get(k) != v)
    what = _str(ann.get("description")) or _str(ann.get("summary")) or _str(ann.get("message"))
    head = f"[{a.get('status') or 'firing'}] {labels.get('alertname') or ''}" + (f" ({own})" if own else "")
    return (head + (f": {what}" if what else ""))[:400]


def parse_alertmanager(p: dict[str, Any]) -> WebhookEvent:
    alerts = _need(p, "alerts")
    if not isinstance(alerts, list) or not alerts:
        raise WebhookError("alerts must be a non-empty list")
    if not all(isinstance(a, dict) for a in alerts):
        raise WebhookError("each alert must be an object")
    common_l, common_a = _obj(p.get("commonLabels")), _obj(p.get("commonAnnotations"))
    # A group is the receiver's groupKey: the same every time that group fires (occurrences tell them apart).
    group = _str(p.get("groupKey"))
    thread = "alertmanager:" + (
        _digest(_str(p.get("receiver")), group) if group else _digest(*sorted(_alert_id(a) for a in alerts))
    )
    items = {_alert_id(a): _alert_line(a, common_l) for a in alerts}
    firing = [a for a in alerts if a.get("status") != "resolved"]
    truncated = p.get("truncatedAlerts") if isinstance(p.get("truncatedAlerts"), int) else 0
    cut = (
        f" Alertmanager left {truncated} more alert(s) out of this notification (max_alerts)."
        if truncated
        else ""
    )
    if p.get("status") == "resolved":
        return WebhookEvent(kind=EventKind.RESOLVE, source="alertmanager", thread=thread, items=items,
                            note=f"All {len(alerts)} alert(s) of the group resolved in Alertmanager.{cut}")  # fmt: skip
    first = firing[0] if firing else alerts[0]
    labels, ann = _obj(first.get("labels")), _obj(first.get("annotations"))
    title = (
        _str(common_a.get("summary")) or _str(ann.get("summary")) or _str(common_l.get("alertname"))
        or _str(labels.get("alertname"))
    )  # fmt: skip
    if not title:
        raise WebhookError("missing field alerts[0].labels.alertname")
    counts = f"{len(firing)} firing, {len(alerts) - len(firing)} resolved.{cut}"
    facts = [
        counts,
        "Labels: " + ", ".join(f"{k}={v}" for k, v in common_l.items()) if common_l else "",
        *(
            f"{k}: {v}"
            for k, v in common_a.items()
            if k not in ("summary", "runbook_url") and isinstance(v, str)
        ),
        *listed([items[_alert_id(a)] for a in alerts], "more alerts"),
    ]
    links = _links(
        ("Runbook", common_a.get("runbook_url") or ann.get("runbook_url")),
        ("Source", first.get("generatorURL")),
        ("Alertmanager", p.get("externalURL")),
    )
    ticket = _ticket(
        id=thread, title=title, text="\n".join(f for f in facts if f), source="alertmanager", raw=p, links=links,
        service=common_l.get("service") or labels.get("service") or labels.get("job"),
        created_at=first.get("startsAt") or utcnow(),
        severity=_severity("severity", common_l.get("severity") or labels.get("severity")),
    )  # fmt: skip
    new_links = _links(*(("Runbook", _obj(a.get("annotations")).get("runbook_url")) for a in firing),
                       *(("Source", a.get("generatorURL")) for a in firing))  # fmt: skip
    return WebhookEvent(kind=EventKind.OPEN, source="alertmanager", thread=thread, ticket=ticket, items=items,
                        note=f"New in this alert group ({counts})", links=new_links)  # fmt: skip


# ---- Statuspage ------------------------------------------------------------------------------------------
_SP_DONE = ("resolved", "postmortem", "completed")


def parse_statuspage(p: dict[str, Any]) -> WebhookEvent:
    if "incident" not in p and isinstance(p.get("component_update"), dict):
        return _statuspage_component(p)
    inc = _need(p, "incident")
    try:
        hist = incident_from_statuspage(inc, source="statuspage")
    except (ValueError, ValidationError) as e:
        raise WebhookError(f"invalid incident: {e}") from e
    updates = sorted(
        (u for u in inc.get("incident_updates") or [] if isinstance(u, dict)),
        key=lambda u: u.get("created_at") or "",
    )
    items = {
        str(
            u.get("id") or u.get("created_at")
        ): f"{u.get('status') or 'update'}: {html_to_text(u.get('body') or '')}"
        for u in updates
    }
    severity = _severity("impact", inc.get("impact_override") or inc.get("impact"))
    if inc.get("status") in _SP_DONE:
        # Later informative updates are the fix; a stock "This incident has been resolved." is not.
        return WebhookEvent(kind=EventKind.RESOLVE, source="statuspage", thread=hist.id, items=items,
                            note="Resolved in Statuspage.", resolution=hist.resolution)  # fmt: skip
    components = [c for c in inc.get("components") or [] if isinstance(c, dict)]
    named = [f"{c.get('name')} ({c.get('status')})" for c in components if c.get("name")]
    # Every update so far is known now (a first notification may already say "monitoring").
    text = "\n".join(
        [
            *listed(list(items.values()), "more updates"),
            *([f"Components: {', '.join(named)}"] if named else []),
        ]
    )
    ticket = hist.ticket().model_copy(update={"raw": p, "text": text, "severity": severity})
    return WebhookEvent(kind=EventKind.OPEN, source="statuspage", thread=hist.id, ticket=ticket, items=items,
                        note="Statuspage update", severity=severity)  # fmt: skip


def _statuspage_component(p: dict[str, Any]) -> WebhookEvent:
    component, change = _obj(p.get("component")), p["component_update"]
    cid = str(_need(p, "component_update", "component_id"))
    name = _str(component.get("name")) or cid
    line = f"{name}: {change.get('old_status') or '?'} -> {change.get('new_status') or '?'}"
    item = f"component:{change.get('id') or change.get('created_at')}"
    return WebhookEvent(kind=EventKind.UPDATE, source="statuspage", component=cid, items={item: line},
                        note="Component status changed in Statuspage")  # fmt: skip


PARSERS: dict[str, Callable[[dict[str, Any]], WebhookEvent]] = {
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
