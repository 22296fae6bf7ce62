"""Webhook senders, one module each, registered here: `/webhooks/<name>` parses with the sender's `parse` and
authenticates with its `auth` schemes; its `severity_map` maps its severities onto the taxonomy.

To add a sender: write `bot/intake/senders/<name>.py` with `parse(payload) -> WebhookEvent` (raise WebhookError
for what cannot be used; `base.py` has helpers for untrusted JSON) and `SENDER = Sender(name, parse, auth,
severity_map)`; list it in `SENDERS` below; put real payloads under `tests/payloads/<name>/` with their
provenance in that folder's README (every registered sender must have some: `tests/intake/test_senders.py`);
its row in docs/senders.md is generated from this registry (`python -m scripts.gen_docs`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bot.clock import utcnow
from bot.config import AuthScheme, Settings
from bot.intake.senders import alertmanager, generic, opsgenie, pagerduty, statuspage
from bot.intake.senders.base import (
    EventKind,
    Sender,
    WebhookError,
    WebhookEvent,
    clock_skew,
    implausible,
    listed,
)

__all__ = [
    "SENDERS",
    "SOURCES",
    "EventKind",
    "Sender",
    "WebhookError",
    "WebhookEvent",
    "accepted_auth",
    "listed",
    "parse",
    "severity_map",
]

# In this order in error messages and listings.
SENDERS: dict[str, Sender] = {
    s.name: s
    for s in (
        generic.SENDER,
        pagerduty.SENDER,
        opsgenie.SENDER,
        alertmanager.SENDER,
        statuspage.SENDER,
    )
}
SOURCES = tuple(SENDERS)
log = logging.getLogger("incibot")


def parse(source: str, payload: Any, settings: Settings | None = None) -> WebhookEvent:
    """The event a sender's payload means, or a WebhookError with the HTTP status to answer."""
    sender = SENDERS.get(source)
    if sender is None:
        raise WebhookError(f"unknown ticket format {source!r}; use one of: {', '.join(SOURCES)}", status=404)
    if not isinstance(payload, dict):
        raise WebhookError("the body must be a JSON object", status=400)
    try:
        event = sender.parse(payload)
    except WebhookError:
        raise
    except (TypeError, AttributeError, ValueError) as e:  # wrong types deep inside a payload
        raise WebhookError(f"malformed {source} payload: {type(e).__name__}: {e}") from e
    ticket, now = event.ticket, utcnow()
    if ticket is not None and (why := implausible(ticket.created_at, now, clock_skew(settings))):
        # Clamped, not refused: an alert from a sender whose clock is wrong must still reach the on-call, so
        # it is stamped when received (an unreadable time is refused by its parser, 422, as any bad field).
        # Kept as sent, a time in 2999 sorts first forever; one in year 1 overflows the change lookup near it.
        log.warning("%s ticket: created_at %s; stamped with the time it was received", source, why)
        event = event.model_copy(update={"ticket": ticket.model_copy(update={"created_at": now})})
    return event


def accepted_auth(settings: Settings, source: str) -> Sequence[AuthScheme]:
    """The schemes a source accepts: the operator's list for it (`webhook_auth`) replaces the sender's default.
    An unknown source is held to the generic sender's (it is answered 404 only once authenticated)."""
    if source in settings.webhook_auth:
        return settings.webhook_auth[source]
    return SENDERS.get(source, SENDERS["generic"]).auth


def severity_map(settings: Settings, source: str) -> Mapping[str, str]:
    """The sender's value -> taxonomy severity: the operator's map for a source (`severity_map`) replaces the
    sender's default map whole."""
    if source in settings.severity_map:
        return settings.severity_map[source]
    sender = SENDERS.get(source)
    return sender.severity_map if sender is not None else {}
