"""Talking to Slack for the outbox: paced posts, retried edits and lookups, and the exactly-once lookup.

New posts are not retried here: a post whose answer was lost may have reached Slack, so the outbox retries it
only after `find_posted` (the ticket key travels in the message metadata) says it did not. Edits and lookups are
idempotent and are retried (429 with Retry-After, 5xx, connection errors).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from tenacity import retry, retry_if_exception, stop_after_attempt

from bot.config import Settings
from bot.retrying import status_code, wait_retry_after

TICKET_EVENT = "incibot_ticket"
GROUP_EVENT = "incibot_group"
UPDATE_EVENT = "incibot_update"  # a reply with news about an incident (new alerts, notes, its resolution)


def retryable(e: BaseException) -> bool:
    if isinstance(e, SlackApiError):
        status = status_code(e)
        return status == 429 or status >= 500
    return isinstance(e, OSError)  # connection refused, reset, timeouts


class SlackPoster:
    def __init__(self, client: WebClient, settings: Settings) -> None:
        self.client = client
        self._retried = retry(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(settings.slack_retries),
            wait=wait_retry_after(),
            reraise=True,
        )

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        metadata: dict[str, Any],
        thread_ts: str | None = None,
    ) -> dict[str, Any]:
        """One message; Slack's answer (channel id, ts). The channel's pace is kept by the work queue's lane."""
        return self.client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata=metadata,
            thread_ts=thread_ts,
            unfurl_links=False,
        ).data  # type: ignore[return-value]

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self._retried(self.client.chat_update)(channel=channel, ts=ts, text=text, blocks=blocks)

    def find_posted(
        self, channel: str, since: datetime, event: str, key: str, thread_ts: str | None = None
    ) -> dict[str, Any] | None:
        """A message this bot already posted for `key` (by its metadata), or None. Only asked when a post may
        have happened: it costs a conversations.history (or .replies) call."""
        oldest = f"{since.timestamp() - 60:.6f}"
        cursor = None
        while True:
            args: dict[str, Any] = {"channel": channel, "oldest": oldest, "include_all_metadata": True,
                                    "limit": 200, "cursor": cursor}  # fmt: skip
            resp = (
                self._retried(self.client.conversations_replies)(ts=thread_ts, **args)
                if thread_ts
                else self._retried(self.client.conversations_history)(**args)
            )
            for m in resp.get("messages") or []:
                meta = m.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") == event and (
                    payload.get("key") == key or key in payload.get("keys", [])
                ):
                    return {"channel": resp.get("channel") or channel, **m}
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
