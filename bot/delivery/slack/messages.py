"""Talking to Slack for the outbox: paced posts, retried edits and lookups, and the exactly-once lookup.

Retries are slack_sdk's own retry handlers, on two clients that share the caller's token and URL:

- edits and lookups (chat.update, conversations.history/.replies) are idempotent: retried on connection errors
  and timeouts, on any 5xx, and on a 429 when Slack asks for a short wait (Retry-After honoured);
- new posts (chat.postMessage) are never retried here: a post whose answer was lost (connection reset, timeout,
  a 5xx from a proxy in front of Slack) may have reached the channel, and posting again would show it twice. The
  outbox retries it only after `find_posted` (the ticket key travels in the message metadata) says it did not.
  A 429 on a post is safe to retry (Slack refused it), but that too is the caller's: it parks only that channel
  for the Retry-After carried by the SlackApiError (`bot.retrying.retry_after`), while a wait inside the client
  would hold its single worker thread, and every other channel with it.

The lookup reads a channel by id, as a member (bot/delivery/slack/channels.py).
"""

from __future__ import annotations

import logging
from datetime import datetime
from http.client import RemoteDisconnected
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

from bot.config import Settings
from bot.delivery.slack.channels import Channels, slack_error
from bot.retrying import status_code

log = logging.getLogger("incibot")

TICKET_EVENT = "incibot_ticket"
GROUP_EVENT = "incibot_group"
UPDATE_EVENT = "incibot_update"  # a reply with news about an incident (new alerts, notes, its resolution)


def retryable(e: BaseException) -> bool:
    if isinstance(e, SlackApiError):
        status = status_code(e)
        return status == 429 or status >= 500
    return isinstance(e, OSError)  # connection refused, reset, timeouts


# Longest Retry-After sat out inside an edit or lookup; a longer one is raised to the caller (SlackApiError, 429).
INLINE_RETRY_AFTER_MAX_S = 5


class AnyServerErrorRetryHandler(ServerErrorRetryHandler):
    """Every 5xx: slack_sdk's ServerErrorRetryHandler retries only 500 and 503, and Slack's edge answers 502 and
    504 as well."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code >= 500


class ShortRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (sleeps the Retry-After, plus up to 1 s of jitter), for short waits only: a longer
    Retry-After, or one it cannot read, is raised to the caller rather than slept through on its thread."""

    def __init__(self, max_retry_count: int, max_wait_s: int = INLINE_RETRY_AFTER_MAX_S) -> None:
        super().__init__(max_retry_count)
        self.max_wait_s = max_wait_s

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        assert response is not None
        asked = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        if asked is None:
            return True  # slack_sdk then waits 1-2 s
        try:
            return int(asked[0] if isinstance(asked, list) else asked) <= self.max_wait_s
        except ValueError:
            return False


def idempotent_handlers(retries: int) -> list[RetryHandler]:
    """For calls that may safely be sent twice: `retries` retries in all (the handlers share one count)."""
    errors: list[type[Exception]] = [URLError, ConnectionError, RemoteDisconnected, TimeoutError]
    return [
        ConnectionErrorRetryHandler(max_retry_count=retries, error_types=errors),
        AnyServerErrorRetryHandler(max_retry_count=retries),
        ShortRateLimitRetryHandler(max_retry_count=retries),
    ]


def client_like(client: WebClient, retry_handlers: list[RetryHandler]) -> WebClient:
    """Another WebClient to the same Slack with the same token, with these retry handlers (an empty list means
    none: WebClient's default, None, would retry connection errors once)."""
    return WebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        headers={k: v for k, v in client.headers.items() if k != "User-Agent"},
        team_id=client.default_params.get("team_id"),
        logger=client.logger,
        retry_handlers=retry_handlers,
    )


class SlackMessages:
    def __init__(self, client: WebClient, settings: Settings) -> None:
        self.client = client  # the caller's, unchanged (Bolt shares it); calls go through the two below
        self.edits = client_like(client, idempotent_handlers(settings.slack_retries))
        self.posts = client_like(client, [])  # chat.postMessage: no retries at all (see the module docstring)
        self.channels = Channels(self.edits)  # ids and membership, for lookups (channels.py)

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        metadata: dict[str, Any],
        thread_ts: str | None = None,
    ) -> dict[str, Any]:
        """One message; Slack's answer (channel id, ts). The channel's pace is kept by the work queue's lane."""
        answer: dict[str, Any] = self.posts.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata=metadata,
            thread_ts=thread_ts,
            unfurl_links=False,
        ).data  # type: ignore[assignment]
        self.channels.learn(channel, answer.get("channel"))
        return answer

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self.edits.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    def upload(
        self, channel: str, thread_ts: str, filename: str, content: bytes, title: str, alt: str
    ) -> None:
        """A file in a thread, by Slack's upload flow (files.getUploadURLExternal, the bytes POSTed to the URL it
        gives, files.completeUploadExternal): slack_sdk's files_upload_v2. Not retried: completing twice would
        share it twice. Sharing needs the bot in the channel (there is no files:write.public): it joins a public
        one when Slack answers not_in_channel, as lookups do."""
        channel_id = self.channels.id_of(channel) or channel
        for attempt in range(2):
            try:
                self.posts.files_upload_v2(channel=channel_id, thread_ts=thread_ts, content=content,
                                           filename=filename, title=title, alt_txt=alt)  # fmt: skip
                return
            except SlackApiError as e:
                if slack_error(e) != "not_in_channel" or attempt:
                    raise
                self.channels.join(channel_id, channel)

    def find_posted(
        self, channel: str, since: datetime, event: str, key: str, thread_ts: str | None = None
    ) -> dict[str, Any] | None:
        """A message this bot already posted for `key` (by its metadata), or None. Only asked when a post may
        have happened: it costs a conversations.history (or .replies) call, by channel id, in a channel the bot
        is in (it joins a public one when Slack answers not_in_channel; NotInChannel for a private one)."""
        channel_id = self.channels.id_of(channel)
        if channel_id is None:
            log.warning("no channel %s is visible to the bot: nothing of %s can be there", channel, key)
            return None
        oldest = f"{since.timestamp() - 60:.6f}"
        cursor, joined = None, False
        while True:
            args: dict[str, Any] = {"channel": channel_id, "oldest": oldest, "include_all_metadata": True,
                                    "limit": 200, "cursor": cursor}  # fmt: skip
            try:
                resp = (
                    self.edits.conversations_replies(ts=thread_ts, **args)
                    if thread_ts
                    else self.edits.conversations_history(**args)
                )
            except SlackApiError as e:
                if slack_error(e) != "not_in_channel" or joined:
                    raise
                self.channels.join(channel_id, channel)  # once: then the same page again
                joined = True
                continue
            for m in resp.get("messages") or []:
                meta = m.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") == event and (
                    payload.get("key") == key or key in payload.get("keys", [])
                ):
                    return {**m, "channel": channel_id}
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
