"""What the exactly-once lookup needs from a channel: its id, and the bot in it.

Slack serves conversations.history/.replies by channel id only (a name such as "#incidents" is
`channel_not_found`), and only in channels the bot is a member of (`not_in_channel`), while chat:write.public
lets it post to a public channel without being one. So a lookup turns a configured name into its id (the id a
post answered with, else conversations.list) and, when Slack answers `not_in_channel`, joins the channel
(conversations.join) and reads again. A private channel cannot be joined: the bot must be invited there; until it
is, a lookup there raises `NotInChannel` (the ticket is not posted again: its earlier post may be in the channel).
"""

from __future__ import annotations

import threading

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


class NotInChannel(RuntimeError):
    """The bot may not read a private channel it was not invited to."""


def slack_error(e: SlackApiError) -> str:
    return str(e.response.get("error") or "")


class Channels:
    def __init__(self, client: WebClient) -> None:
        self.client = client  # with retry handlers for idempotent calls
        self._ids: dict[str, str] = {}  # "#name" -> channel id
        self._lock = threading.Lock()

    def learn(self, channel: str, channel_id: str | None) -> None:
        """A post to `channel` (a name or an id) was answered with `channel_id`."""
        if channel.startswith("#") and channel_id:
            with self._lock:
                self._ids[channel] = channel_id

    def id_of(self, channel: str) -> str | None:
        """The channel's id; None for a name no channel visible to the bot has."""
        if not channel.startswith("#"):
            return channel
        with self._lock:
            if channel not in self._ids:
                self._ids.update(self._list())
            return self._ids.get(channel)

    def _list(self) -> dict[str, str]:
        ids: dict[str, str] = {}
        cursor = None
        while True:
            resp = self.client.conversations_list(
                types="public_channel,private_channel", exclude_archived=True, limit=1000, cursor=cursor
            )
            ids.update({"#" + c["name"]: c["id"] for c in resp.get("channels") or []})
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return ids

    def join(self, channel_id: str, channel: str) -> None:
        """Join a public channel (already a member is fine); NotInChannel for a private one."""
        try:
            self.client.conversations_join(channel=channel_id)
        except SlackApiError as e:
            if slack_error(e) == "method_not_supported_for_channel_type":
                raise NotInChannel(
                    f"incibot cannot read the private channel {channel} ({channel_id}): invite it there "
                    "(/invite @incibot)"
                ) from e
            raise
