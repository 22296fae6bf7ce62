"""PagerDuty v3 webhooks (Generic Webhooks v3): one event per delivery about one incident, signed with
`X-PagerDuty-Signature` (v1=<hex HMAC-SHA256 of the body>). Notes arrive as their own `incident.annotated`
events."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from bot.clock import utcnow
from bot.config import AuthScheme
from bot.intake.senders.base import (
    EventKind,
    Sender,
    WebhookError,
    WebhookEvent,
    as_obj,
    as_str,
    links_of,
    make_ticket,
    need,
    read_time,
    sender_severity,
)
from bot.models import Link, SenderSeverity, Ticket


def pagerduty_signature(secret: str, body: bytes) -> str:
    """One value of X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, header: str, body: bytes) -> str | None:
    """None if one of the header's v1 signatures matches the body (several while a secret is rotated), "" if
    there is no header, otherwise what is wrong. Compared in constant time."""
    if not header:
        return ""
    expected = pagerduty_signature(secret, body).encode()
    signatures = [x.strip() for x in header.split(",") if x.strip().startswith("v1=")]
    if not signatures:
        return "X-PagerDuty-Signature has no v1 signature"
    if any(hmac.compare_digest(x.encode(), expected) for x in signatures):
        return None
    return "no X-PagerDuty-Signature matches the body"


def _severity(data: dict[str, Any]) -> list[SenderSeverity]:
    return sender_severity("priority", as_obj(data.get("priority")).get("summary")) + sender_severity(
        "urgency", data.get("urgency")
    )


def _ticket(thread: str, event: dict[str, Any], data: dict[str, Any]) -> Ticket:
    # v3 sends no description (`body.details` is REST-only): the text is what the incident record says.
    service = as_str(as_obj(data.get("service")).get("summary")) or None
    teams = [
        as_str(t.get("summary")) for t in data.get("teams") or [] if isinstance(t, dict) and t.get("summary")
    ]
    facts = [
        f"service {service}" if service else "",
        f"priority {as_obj(data.get('priority')).get('summary')}" if as_obj(data.get("priority")).get("summary") else "",
        f"urgency {data['urgency']}" if as_str(data.get("urgency")) else "",
        f"teams {', '.join(teams)}" if teams else "",
        f"incident type {as_obj(data.get('incident_type')).get('name')}"
        if as_str(as_obj(data.get("incident_type")).get("name")) else "",
    ]  # fmt: skip
    number = (
        f"PagerDuty incident #{data['number']}"
        if isinstance(data.get("number"), int)
        else "PagerDuty incident"
    )
    return make_ticket(
        id=thread,
        title=str(need(data, "title")),
        text=f"{number}: " + "; ".join(f for f in facts if f) + "." if any(facts) else "",
        service=service,
        source="pagerduty",
        created_at=read_time(
            data.get("created_at") or event.get("occurred_at") or utcnow(), "event.data.created_at"
        ),
        raw={"event": event},
        link=as_str(data.get("html_url")) or None,
        links=links_of(("Conference bridge", as_obj(data.get("conference_bridge")).get("conference_url"))),
        severity=_severity(data),
    )


def parse(p: dict[str, Any]) -> WebhookEvent:
    event = need(p, "event")
    etype = str(need(p, "event", "event_type"))
    data = need(p, "event", "data")
    if not isinstance(data, dict):
        raise WebhookError("event.data must be an object")
    item = str(event.get("id") or f"{etype}@{event.get('occurred_at')}")
    about = "incident" if data.get("type") in ("incident_note", "incident_status_update") else None
    incident_id = need(data, about, "id") if about else need(p, "event", "data", "id")
    thread = f"pagerduty:{incident_id}"

    def update(note: str, line: str, **kw: Any) -> WebhookEvent:
        return WebhookEvent(
            kind=EventKind.UPDATE, source="pagerduty", thread=thread, items={item: line}, note=note, **kw
        )

    match etype:
        case "incident.triggered" | "incident.reopened":
            ticket = _ticket(thread, event, data)
            again = "Reopened in PagerDuty" if etype == "incident.reopened" else "Triggered in PagerDuty"
            return WebhookEvent(kind=EventKind.OPEN, source="pagerduty", thread=thread, ticket=ticket,
                                items={item: again}, note=again)  # fmt: skip
        case "incident.resolved":
            reason = as_obj(data.get("resolve_reason"))
            if reason.get("type") == "merge_resolve_reason":
                target = as_obj(reason.get("incident"))
                name = as_str(target.get("summary")) or as_str(target.get("id")) or "another incident"
                merged = (
                    Link(label=name, url=as_str(target.get("html_url"))) if target.get("html_url") else None
                )
                return WebhookEvent(kind=EventKind.RESOLVE, source="pagerduty", thread=thread, items={item: ""},
                                    note=f"Merged into PagerDuty incident {name}.", merged_into=merged)  # fmt: skip
            # No resolution note in v3: nothing to learn as a fix.
            return WebhookEvent(kind=EventKind.RESOLVE, source="pagerduty", thread=thread, items={item: ""},
                                note="Resolved in PagerDuty.")  # fmt: skip
        case "incident.priority_updated":
            sev = _severity(data)
            line = ", ".join(f"{s.name} {s.value}" for s in sev) or "priority removed"
            return update("Priority changed in PagerDuty", line, severity=sev)
        case "incident.annotated":
            return update("Note added in PagerDuty", str(need(data, "content")))
        case "incident.status_update_published":
            return update("Status update in PagerDuty", str(need(data, "message")))
    return WebhookEvent(
        kind=EventKind.IGNORE, source="pagerduty", thread=thread, note=f"event type {etype} is not handled"
    )


# PagerDuty signs every delivery and can add custom headers. Priorities are per account (P1-P5 by default).
SENDER = Sender(
    name="pagerduty",
    parse=parse,
    auth=(AuthScheme.PAGERDUTY, AuthScheme.HMAC, AuthScheme.BEARER),
    severity_map={"P1": "sev1", "P2": "sev2", "P3": "sev3", "P4": "sev4", "P5": "sev4"},
)
