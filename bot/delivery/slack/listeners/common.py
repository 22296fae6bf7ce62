"""Helpers shared by the button listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.delivery.slack.listeners.backend import Backend

log = logging.getLogger("incibot")
UNKNOWN_MESSAGE = "Sorry, I no longer know this incident (it may predate my database). Nothing was recorded."
NOT_IN_HISTORY = "This incident is no longer in the history (deleted, or imported again under another id). Nothing was saved."


def tell_unknown(client: Any, body: dict[str, Any]) -> None:
    """A click on a message the bot no longer knows: an ephemeral, polite answer to the clicker only."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    user = (body.get("user") or {}).get("id")
    if channel and user:
        client.chat_postEphemeral(channel=channel, user=user, text=UNKNOWN_MESSAGE)


class Malformed(ValueError):
    """A signed interaction without the fields this listener needs (Slack never sends one)."""


def text_at(obj: Any, *path: str) -> str:
    """The non-empty string at obj[path...], or Malformed: payload fields are untrusted shapes."""
    for name in path:
        if not isinstance(obj, dict):
            raise Malformed(f"missing {'.'.join(path)}")
        obj = obj.get(name)
    if not isinstance(obj, str) or not obj:
        raise Malformed(f"missing {'.'.join(path)}")
    return obj


def ignore_malformed(ack: Any, e: Malformed) -> None:
    log.warning("ignored a malformed Slack interaction: %s", e)
    ack()


def open_modal(
    backend: Backend, ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any,
    view: Callable[[str, dict[str, Any]], dict[str, Any]],
) -> None:  # fmt: skip
    """A button that opens a modal about its ticket: `view(key, row)` builds it; unknown tickets get an apology."""
    try:
        key, trigger = text_at(action, "value"), text_at(body, "trigger_id")
    except Malformed as e:
        return ignore_malformed(ack, e)
    ack()
    row = backend.ticket(key)
    if row is None:
        tell_unknown(client, body)
        return
    client.views_open(trigger_id=trigger, view=view(key, row))


def submission_ids(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> tuple[str, str] | None:
    """(ticket key, user id) of a modal submission, or None once a malformed one has been acknowledged."""
    try:
        return text_at(view, "private_metadata"), text_at(body, "user", "id")
    except Malformed as e:
        ignore_malformed(ack, e)
        return None
