"""Helpers shared by the button listeners."""

from __future__ import annotations

from typing import Any

UNKNOWN_MESSAGE = "Sorry, I no longer know this incident (it may predate my database). Nothing was recorded."


def tell_unknown(client: Any, body: dict[str, Any]) -> None:
    """A click on a message the bot no longer knows: an ephemeral, polite answer to the clicker only."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    user = (body.get("user") or {}).get("id")
    if channel and user:
        client.chat_postEphemeral(channel=channel, user=user, text=UNKNOWN_MESSAGE)
