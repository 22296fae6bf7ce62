"""Helpers shared by the button listeners."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("incibot")
UNKNOWN_MESSAGE = "Sorry, I no longer know this incident (it may predate my database). Nothing was recorded."


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
