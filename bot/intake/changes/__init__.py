"""Change senders, one module each, registered here: the generic format at `/webhooks/change`, the others at
`/webhooks/change/<name>`. Each parses what its sender really sends (payloads under `tests/payloads/<name>/`,
provenance in that folder's README) into a `ChangeEvent`, or `Ignored` with the reason.

To add one: write `bot/intake/changes/<name>.py` with `parse(payload, headers)` and `SENDER = ChangeSender(...)`,
list it in `CHANGE_SENDERS` and add its payloads (its row in docs/senders.md is generated: `python -m scripts.gen_docs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.clock import utcnow
from bot.config import AuthScheme, Settings
from bot.intake.changes import argocd, generic, github, gitlab, launchdarkly
from bot.intake.changes.base import ChangeSender, Ignored, Parsed
from bot.intake.senders.base import WebhookError, clock_skew, implausible
from bot.models import ChangeEvent

__all__ = [
    "CHANGE_SENDERS",
    "ChangeSender",
    "Ignored",
    "Parsed",
    "accepted_auth",
    "map_service",
    "parse_change",
]

CHANGE_SENDERS: dict[str, ChangeSender] = {
    s.name: s for s in (generic.SENDER, github.SENDER, gitlab.SENDER, argocd.SENDER, launchdarkly.SENDER)
}


def parse_change(
    name: str, payload: Any, headers: Mapping[str, str], settings: Settings | None = None
) -> Parsed:
    """What a change sender's payload means, or a WebhookError with the HTTP status to answer. A change
    stamped beyond the senders' clock skew (`settings.clock_skew_max_h`) is refused: it would be listed as the
    latest change on its service, and kept past retention, for as long as its time lies ahead."""
    sender = CHANGE_SENDERS.get(name)
    if sender is None:
        raise WebhookError(
            f"unknown change sender {name!r}; use one of: {', '.join(CHANGE_SENDERS)}", status=404
        )
    if not isinstance(payload, dict):
        raise WebhookError("the body must be a JSON object", status=400)
    try:
        parsed = sender.parse(payload, headers)
    except WebhookError:
        raise
    except (TypeError, AttributeError, ValueError) as e:  # wrong types deep inside a payload
        raise WebhookError(f"malformed {name} payload: {type(e).__name__}: {e}") from e
    if isinstance(parsed, ChangeEvent) and (why := implausible(parsed.at, utcnow(), clock_skew(settings))):
        raise WebhookError(f"the change's time {why}; fix the sender's clock or the time it sends")
    return parsed


def accepted_auth(settings: Settings, name: str) -> Sequence[AuthScheme]:
    """The schemes a change sender accepts: the operator's `webhook_auth` for its name replaces its default. An
    unknown name is held to the generic format's (it is answered 404 only once authenticated)."""
    if name in settings.webhook_auth:
        return settings.webhook_auth[name]
    return CHANGE_SENDERS.get(name, CHANGE_SENDERS["change"]).auth


def map_service(settings: Settings, change: ChangeEvent) -> tuple[ChangeEvent, bool]:
    """The change under the service tickets name (`change_service_map`: "<name>@<environment>", then "<name>");
    False when unmapped: it is kept under the sender's own name, so a later mapping or a ticket naming that
    service still finds it."""
    names = ([f"{change.service}@{change.environment}"] if change.environment else []) + [change.service]
    for n in names:
        if (service := settings.change_service_map.get(n)) is not None:
            return change.model_copy(update={"service": service}), True
    return change, False
