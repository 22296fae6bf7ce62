"""Our own JSON format (docs/senders.md): `{"id", "title", "text", ...}` opens, `{"id", "status":
"resolved", "resolution"}` resolves. For tools without a sender of their own, and signing proxies."""

from __future__ import annotations

from typing import Any

from bot.config import AuthScheme
from bot.intake.senders.base import (
    EventKind,
    Sender,
    WebhookError,
    WebhookEvent,
    digest,
    make_ticket,
    need,
    sender_severity,
)


def parse(p: dict[str, Any]) -> WebhookEvent:
    thread = f"generic:{need(p, 'id')}"
    if p.get("status") == "resolved":
        resolution = str(p.get("resolution") or "")
        return WebhookEvent(
            kind=EventKind.RESOLVE,
            source="generic",
            thread=thread,
            items={f"resolve:{digest(resolution)}": ""},
            resolution=resolution,
            note="Resolved by the sender.",
        )
    title, text = p.get("title") or "", p.get("text") or p.get("description") or ""
    if not isinstance(title, str) or not isinstance(text, str):
        raise WebhookError("title and text must be strings")
    if not (title.strip() or text.strip()):
        raise WebhookError("missing field title or text")
    extra = {k: p[k] for k in ("service", "component", "created_at", "link") if p.get(k) is not None}
    ticket = make_ticket(
        id=thread, title=title, text=text, source="generic", raw=p,
        severity=sender_severity("severity", p.get("severity")), **extra,
    )  # fmt: skip
    return WebhookEvent(
        kind=EventKind.OPEN, source="generic", thread=thread, ticket=ticket, items={"open": ""}
    )


# Whoever sends it can sign or set headers; a severity that is a taxonomy id maps to itself.
SENDER = Sender(name="generic", parse=parse, auth=(AuthScheme.HMAC, AuthScheme.BEARER, AuthScheme.BASIC))
