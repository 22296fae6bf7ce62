"""Opsgenie outgoing webhooks (the Webhook integration): one alert action per delivery. Opsgenie can only add
custom headers, so it authenticates with Bearer or Basic."""

from __future__ import annotations

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
    make_ticket,
    need,
    read_time,
    sender_severity,
)
from bot.models import SenderSeverity
from bot.text import informative


def _priority(alert: dict[str, Any]) -> list[SenderSeverity]:
    value = alert.get("priority")
    # Older deliveries carry the level as a bare number (3); the API's own spelling is P3.
    return sender_severity(
        "priority", f"P{value}" if isinstance(value, int) and not isinstance(value, bool) else value
    )


def parse(p: dict[str, Any]) -> WebhookEvent:
    action = str(need(p, "action"))
    alert = need(p, "alert")
    if not isinstance(alert, dict):
        raise WebhookError("alert must be an object")
    thread = f"opsgenie:{need(p, 'alert', 'alertId')}"
    item = f"{action}@{alert.get('updatedAt') or ''}"
    if action == "Close":
        note = as_str(alert.get("note"))
        return WebhookEvent(kind=EventKind.RESOLVE, source="opsgenie", thread=thread, items={"close": note},
                            note="Closed in Opsgenie.", resolution="\n".join(informative([note])))  # fmt: skip
    if action == "AddNote":
        return WebhookEvent(kind=EventKind.UPDATE, source="opsgenie", thread=thread,
                            items={item: str(need(alert, "note"))}, note="Note added in Opsgenie")  # fmt: skip
    if action == "UpdatePriority":
        sev = _priority(alert)
        return WebhookEvent(kind=EventKind.UPDATE, source="opsgenie", thread=thread, severity=sev,
                            items={item: f"priority {sev[0].value}" if sev else "priority removed"},
                            note="Priority changed in Opsgenie")  # fmt: skip
    if action != "Create":
        return WebhookEvent(kind=EventKind.IGNORE, source="opsgenie", thread=thread,
                            note=f"action {action} is not handled")  # fmt: skip
    details = {str(k): v for k, v in as_obj(alert.get("details")).items() if isinstance(v, str | int | float)}
    teams = [
        r.get("name")
        for r in alert.get("responders") or []
        if isinstance(r, dict) and r.get("type") == "team"
    ]
    tags = [t for t in alert.get("tags") or [] if isinstance(t, str)]
    lines = [
        as_str(alert.get("description")),
        f"Tags: {', '.join(tags)}" if tags else "",
        f"Teams: {', '.join(str(t) for t in teams if t)}" if any(teams) else "",
        "Details: " + ", ".join(f"{k}={v}" for k, v in details.items()) if details else "",
    ]
    # `source` is who or what created the alert (often a person's e-mail address), never the service.
    service = as_str(alert.get("entity")) or as_str(details.get("service")) or None
    ticket = make_ticket(
        id=thread, title=str(need(p, "alert", "message")), text="\n".join(x for x in lines if x), service=service,
        source="opsgenie", created_at=read_time(alert.get("createdAt") or utcnow(), "alert.createdAt"), raw=p,
        severity=_priority(alert),
    )  # fmt: skip
    return WebhookEvent(
        kind=EventKind.OPEN, source="opsgenie", thread=thread, ticket=ticket, items={"create": ""}
    )


SENDER = Sender(
    name="opsgenie",
    parse=parse,
    auth=(AuthScheme.BEARER, AuthScheme.BASIC, AuthScheme.HMAC),
    severity_map={"P1": "sev1", "P2": "sev2", "P3": "sev3", "P4": "sev4", "P5": "sev4"},
)
