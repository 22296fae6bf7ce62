"""The running bot: accepted tickets are stored, posted fast with a retrieval draft, then edited with the LLM draft.

Two worker threads keep the first post fast while the LLM works: `post` (retrieval draft -> chat.postMessage)
and `refine` (LLM draft -> chat.update). Every step's result is stored, so a restart resumes where it stopped.

The post worker is a durable, ordered outbox: tickets go out in arrival order, and while Slack is down the head
ticket is retried (honouring Retry-After) instead of being skipped. Each post carries the ticket key as Slack
message metadata; a ticket marked `posting` (a post may have reached Slack before a crash or a lost response)
is looked up in the channel before it is posted again, so each ticket is posted once. Tickets that look like an
incident already posted in the same channel (a storm) are grouped under it: listed in batched thread replies
and counted on the first post. Posts respect Slack's per-channel rate.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient

from bot.config import Settings
from bot.embeddings import get_embedder
from bot.history import HistoryStore
from bot.intake.webhooks import WebhookEvent
from bot.learning import HistoryFeeder
from bot.llm import warm_up
from bot.models import Feedback, HistoricalIncident, Ticket, TriageDraft
from bot.outbox import Outbox
from bot.pipeline import Triager, detect_privacy
from bot.retrying import retry_after
from bot.slack import blocks
from bot.slack.poster import GROUP_EVENT, TICKET_EVENT, SlackPoster, retryable
from bot.store import Store
from bot.storms import StormGrouper

log = logging.getLogger("incibot")


def _route(row: dict[str, Any]) -> str:
    """The channel routing chose for a ticket. `channel` becomes the id Slack answers with once posted, which a
    new ticket's route (often a name) would never equal; rows from before the column fall back to it."""
    return row.get("route") or row["channel"]


class Backpressure(RuntimeError):
    """The outbox is full: the sender should retry after `retry_after_s` (HTTP 429)."""

    def __init__(self, backlog: int, retry_after_s: int) -> None:
        super().__init__(f"{backlog} tickets waiting to be posted; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class TriageService:
    def __init__(self, settings: Settings, client: WebClient, triager: Triager, store: Store) -> None:
        self.settings = settings
        self.client = client
        self.triager = triager
        self.store = store
        self.history: HistoryStore = triager.store
        self.feeder = HistoryFeeder(settings, store, self.history, triager)
        self.outbox = Outbox(settings.slack_outbox_backoff_max_s)
        self.to_refine: queue.Queue[str | None] = queue.Queue()
        self.storms = StormGrouper(settings.storm_similarity, settings.storm_window_s)
        self.slack = SlackPoster(client, settings)
        self._groups_due: set[str] = set()  # open incidents with tickets not yet listed in their thread
        # When each incident's thread was last updated: at most one reply and one counter edit per incident per
        # storm_flush_s, so a storm costs a few messages a minute (Slack limits posts per channel and edits).
        self._announced_at: dict[str, float] = {}
        self._post_rate = 5.0  # posts per second, smoothed: how long a full outbox takes to drain
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._status_lines: dict[str, str] = {}  # key -> the latest feedback line shown on its post

    # ---- intake --------------------------------------------------------------------------------------------
    def accept(self, event: WebhookEvent, channel: str | None = None) -> str:
        """Store an event durably (before the sender is answered).

        Returns "accepted", "duplicate" (this ticket was delivered before: nothing more is posted), "resolved",
        or "unknown" (a resolution for a ticket this bot never received). Raises Backpressure when the outbox
        is full (nothing is stored: the sender keeps the ticket and retries)."""
        if event.kind == "open" and event.ticket is not None:
            backlog = self.backlog()
            if backlog >= self.settings.max_backlog and self.store.get(event.key) is None:
                wait = math.ceil(backlog / max(self._post_rate, 0.1))
                raise Backpressure(backlog, min(max(wait, 1), 300))
            ch = channel or self.settings.channel_for(event.ticket.service)
            if not self.store.add_ticket(event.key, event.ticket, ch):
                return "duplicate"
            self._enqueue(event.key, event.ticket)
            return "accepted"
        return self.resolve(event.key, event.resolution)

    def _enqueue(self, key: str, ticket: Ticket) -> None:
        # A ticket that suggests personal-data exposure goes before everything waiting: stop the spread first.
        self.outbox.put(key, urgent=detect_privacy(self.triager.taxonomy, ticket.body) is not None)

    def backlog(self) -> int:
        return len(self.outbox)

    def resolve(self, key: str, resolution: str) -> str:
        if self.store.get(key) is None:
            return "unknown"
        self.store.update_ticket(key, resolution=resolution, resolved=1)
        self.storms.close(key)
        self.learn(key)
        return "resolved"

    # ---- workers -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Resume what a crash or restart interrupted, in arrival order, then start the workers."""
        since = datetime.now().astimezone() - timedelta(seconds=self.settings.storm_window_s)
        for row in self.store.with_status("posted", "drafted", since=since):
            if not row.get("resolved"):
                self._open_storm(row)
        for row in self.store.with_status("received", "posting"):
            self._enqueue(row["key"], Ticket.model_validate(row["ticket"]))
        for row in self.store.with_status("grouped", "announcing"):
            self._groups_due.add(row["parent_key"])
        for row in self.store.with_status("posted"):
            self.to_refine.put(row["key"])
        warm_up(self.triager.model)  # the local model server loads while the first tickets are posted
        workers = (("post", self._post_loop), ("refine", self._refine_loop))
        for name, target in workers:
            t = threading.Thread(target=target, name=f"incibot-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stopping.set()
        self.outbox.close()
        self.to_refine.put(None)
        for t in self._threads:
            t.join(timeout=30)

    def _post_loop(self) -> None:
        while True:
            item = self.outbox.get()
            if item is None:
                self._flush_groups()
                self.feeder.retry_pending()  # verdicts the history could not take while it was down
                continue
            _, _, key = item
            if key is None:
                return
            channel = self._channel(key)
            t0 = time.monotonic()
            if self.outbox.backoff.blocked_for(channel) > 0 or not self._attempt(self.post, key, channel):
                self.outbox.park(item, channel)
                continue
            self._post_rate = 0.9 * self._post_rate + 0.1 / max(time.monotonic() - t0, 1e-3)
            self._flush_groups()

    def _channel(self, key: str | None) -> str:
        row = self.store.get(key) if key else None
        return row["channel"] if row else ""

    def _attempt(self, fn: Any, key: str, channel: str) -> bool:
        """One outbox step; False if Slack could not take it now. Then that channel waits (Slack's Retry-After,
        else doubling backoff) while other channels go on. A permanent refusal marks the ticket failed (kept,
        counted on /healthz): done, the outbox moves on."""
        try:
            fn(key)
            self.outbox.backoff.ok(channel)
            return True
        except Exception as e:
            error = f"{type(e).__name__}: {e}"[:500]
            if not retryable(e):
                log.exception("giving up on %s", key)
                self.store.update_ticket(key, status="failed", last_error=error)
                return True
            wait = self.outbox.backoff.failed(channel, retry_after(e))
            log.warning("Slack unavailable for %s in %s (%s); retrying in %.1f s", key, channel, error, wait)
            self.store.update_ticket(key, last_error=error)
            return False

    def _refine_loop(self) -> None:
        while (key := self.to_refine.get()) is not None:
            try:
                self.refine(key)
            except Exception as e:  # the retrieval draft stays visible; the edit is tried again later
                log.exception("LLM edit of %s failed", key)
                self.store.update_ticket(key, last_error=f"{type(e).__name__}: {e}"[:500])
                threading.Timer(30.0, self.to_refine.put, args=(key,)).start()

    # ---- posting -------------------------------------------------------------------------------------------
    def post(self, key: str) -> None:
        row = self.store.get(key)
        if row is None or row["status"] not in ("received", "posting"):
            return
        ticket = Ticket.model_validate(row["ticket"])
        shown = self.triager.shown(ticket)
        vector = get_embedder().embed([shown.body or key])[0]
        if row["status"] == "received":
            parent = self.storms.match(_route(row), ticket.service, vector, time.time())
            if parent is not None:
                self.store.update_ticket(key, status="grouped", parent_key=parent)
                self._groups_due.add(parent)
                return
            draft = self.triager.triage(ticket, use_llm=False, history_required=False)
            # From here a post may reach Slack before we hear back: a retry or a restart looks it up first.
            self.store.update_ticket(key, status="posting", draft=draft)
            found = None
        else:
            draft = self._draft(row)
            found = self.slack.find_posted(row["channel"], row["created_at"], TICKET_EVENT, key)
        if found is None:
            found = self.slack.post(
                row["channel"],
                blocks.fallback_text(shown, draft),
                blocks.draft_blocks(key, shown, draft, self.triager.taxonomy, stage="retrieval"),
                {"event_type": TICKET_EVENT, "event_payload": {"key": key}},
            )
        channel = found.get("channel") or row["channel"]
        self.store.update_ticket(
            key, status="posted", channel=channel, message_ts=found["ts"], last_error=None
        )
        self.storms.open(key, _route(row), ticket.service, vector, time.time())
        if self.triager.model is not None:
            self.to_refine.put(key)
        else:
            self.store.update_ticket(key, status="drafted")

    def refine(self, key: str) -> None:
        row = self.store.get(key)
        if row is None or row["status"] != "posted":
            return
        draft = self.triager.triage(Ticket.model_validate(row["ticket"]), history_required=False)
        self.store.update_ticket(key, status="drafted", draft=draft, last_error=None)
        self.redraw(key)

    # ---- storms --------------------------------------------------------------------------------------------
    def _open_storm(self, row: dict[str, Any]) -> None:
        ticket = self.triager.shown(Ticket.model_validate(row["ticket"]))
        vector = get_embedder().embed([ticket.body or row["key"]])[0]
        self.storms.open(row["key"], _route(row), ticket.service, vector, row["created_at"].timestamp())

    def _flush_groups(self) -> None:
        now = time.monotonic()
        for parent in sorted(self._groups_due):
            if now - self._announced_at.get(parent, -math.inf) < self.settings.storm_flush_s:
                continue
            channel = self._channel(parent)
            if self.outbox.backoff.blocked_for(channel) > 0 or not self._attempt(
                self.announce, parent, channel
            ):
                continue
            self._announced_at[parent] = time.monotonic()
            if not self.store.members(parent, "grouped"):
                self._groups_due.discard(parent)

    def announce(self, parent_key: str) -> None:
        """List the tickets grouped under an incident in its thread (batched), and count them on its post."""
        parent = self.store.get(parent_key)
        if parent is None or not parent.get("message_ts"):
            return
        channel, thread = parent["channel"], parent["message_ts"]
        for row in self.store.members(parent_key, "announcing"):  # a reply may have gone out before a crash
            found = self.slack.find_posted(
                channel, row["created_at"], GROUP_EVENT, row["key"], thread_ts=thread
            )
            keys = found["metadata"]["event_payload"]["keys"] if found else [row["key"]]
            self.store.set_status(keys, status="announced" if found else "grouped")
        # One reply per flush; the rest of a large batch waits for the next (the outbox keeps moving meanwhile).
        if members := self.store.members(parent_key, "grouped")[: self.settings.storm_reply_batch]:
            keys = [m["key"] for m in members]
            self.store.set_status(keys, status="announcing")
            total = (self.store.get(parent_key) or parent)["group_count"] or 0
            text, reply = blocks.group_reply(
                [(m["key"], self.triager.shown(Ticket.model_validate(m["ticket"]))) for m in members],
                total + len(keys),
            )
            resp = self.slack.post(
                channel,
                text,
                reply,
                {"event_type": GROUP_EVENT, "event_payload": {"keys": keys}},
                thread_ts=thread,
            )
            self.store.set_status(keys, status="announced", message_ts=resp["ts"])
            self.store.update_ticket(parent_key, group_count=total + len(keys))
        self.redraw(parent_key)

    # ---- feedback ------------------------------------------------------------------------------------------
    def record_feedback(self, key: str, fb: Feedback) -> str | None:
        """Store the engineer's verdict durably; returns the status line to show, or None for an unknown ticket."""
        row = self.store.get(key)
        if row is None:
            return None
        if fb.action == "confirm" and row["draft"]:
            # Confirming means: the labels on the message are right.
            labels = {f: d.labels or [d.label] for f, d in self._draft(row).labels.items()}
            fb = fb.model_copy(update={"labels": labels})
        self.store.add_feedback(key, fb)
        verb = {"confirm": "Confirmed", "correct": "Corrected", "reject": "Rejected"}[fb.action]
        reason = f": {blocks.escape(fb.reason)}" if fb.reason else ""
        return f":white_check_mark: {verb} by <@{fb.user_id}>{reason}"

    def apply_feedback(self, key: str, status_line: str) -> None:
        """After the click is acknowledged: teach the history and update the message."""
        self.learn(key)
        self.redraw(key, status_line)

    def learn(self, key: str) -> HistoricalIncident | None:
        """Upsert the ticket into the history with the engineer's labels and fix (and its resolution)."""
        return self.feeder.learn(key)

    def redraw(self, key: str, status_line: str | None = None) -> None:
        """Re-render a ticket's post from its stored state (LLM draft, group counter, feedback line)."""
        row = self.store.get(key)
        if row is None or not row.get("message_ts") or not row.get("draft"):
            return
        ticket = self.triager.shown(Ticket.model_validate(row["ticket"]))
        draft = self._draft(row)
        stage = "llm" if row["status"] == "drafted" or self.triager.model is None else "retrieval"
        if status_line is not None:
            self._status_lines[key] = status_line
        self.slack.update(
            row["channel"],
            row["message_ts"],
            blocks.fallback_text(ticket, draft),
            blocks.draft_blocks(
                key,
                ticket,
                draft,
                self.triager.taxonomy,
                stage,
                self._status_lines.get(key),
                row.get("group_count") or 0,
            ),
        )

    @staticmethod
    def _draft(row: dict[str, Any]) -> TriageDraft:
        return TriageDraft.model_validate(row["draft"])
