"""Atlassian Statuspage subscriber webhooks: incident notifications (the whole incident, every update so far)
and component-only notifications. Statuspage can only be given a URL, so it authenticates with a token in it.
The incident is read by the history-file parser (`bot/intake/statuspage.py`), which shares its vocabulary."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from bot.config import AuthScheme
from bot.intake.senders.base import (
    EventKind,
    Sender,
    WebhookError,
    WebhookEvent,
    as_obj,
    as_str,
    listed,
    need,
    sender_severity,
)
from bot.intake.statuspage import DONE_STATUSES, IMPACT_TO_SEVERITY, incident_from_statuspage
from bot.text import html_to_text


def parse(p: dict[str, Any]) -> WebhookEvent:
    if "incident" not in p and isinstance(p.get("component_update"), dict):
        return _component(p)
    inc = need(p, "incident")
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
    severity = sender_severity("impact", inc.get("impact_override") or inc.get("impact"))
    if inc.get("status") in DONE_STATUSES:
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


def _component(p: dict[str, Any]) -> WebhookEvent:
    component, change = as_obj(p.get("component")), p["component_update"]
    cid = str(need(p, "component_update", "component_id"))
    name = as_str(component.get("name")) or cid
    line = f"{name}: {change.get('old_status') or '?'} -> {change.get('new_status') or '?'}"
    item = f"component:{change.get('id') or change.get('created_at')}"
    return WebhookEvent(kind=EventKind.UPDATE, source="statuspage", component=cid, items={item: line},
                        note="Component status changed in Statuspage")  # fmt: skip


SENDER = Sender(
    name="statuspage",
    parse=parse,
    auth=(AuthScheme.URL_TOKEN, AuthScheme.HMAC, AuthScheme.BEARER),
    severity_map=IMPACT_TO_SEVERITY,
)
