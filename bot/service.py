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

import json
import logging
import math
import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk import WebClient

from bot.config import Settings
from bot.embeddings import get_embedder
from bot.history import HistoryStore
from bot.intake.receiver import Busy, Receipt, Receiver
from bot.intake.webhooks import WebhookEvent
from bot.learning import HistoryFeeder
from bot.llm import warm_up
from bot.metrics import Metrics, known_prices
from bot.mode import Mode, ModeChange, ModeSwitch
from bot.models import Feedback, HistoricalIncident, Ticket, TriageDraft
from bot.monitor import QualityMonitor
from bot.occurrences import Outcome
from bot.outbox import Outbox
from bot.pipeline import Triager, detect_privacy
from bot.report import Report
from bot.report import build as build_report
from bot.retrying import retry_after
from bot.slack import blocks
from bot.slack.poster import GROUP_EVENT, TICKET_EVENT, UPDATE_EVENT, SlackPoster, retryable
from bot.store import Store
from bot.storms import StormGrouper

log = logging.getLogger("incibot")


def _route(row: dict[str, Any]) -> str:
    """The channel routing chose for a ticket. `channel` becomes the id Slack answers with once posted, which a
    new ticket's route (often a name) would never equal; rows from before the column fall back to it."""
    return row.get("route") or row["channel"]


def _age_s(created_at: datetime) -> float:
    """Seconds since a stored ticket arrived (SQLite hands back naive UTC)."""
    at = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - at).total_seconds())


class Backpressure(RuntimeError):
    """The outbox is full: the sender should retry after `retry_after_s` (HTTP 429)."""

    def __init__(self, backlog: int, retry_after_s: int, why: str | None = None) -> None:
        super().__init__(why or f"{backlog} tickets waiting to be posted; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class TriageService:
    def __init__(self, settings: Settings, client: WebClient, triager: Triager, store: Store) -> None:
        self.settings = settings
        self.client = client
        self.triager = triager
        self.store = store
        self.history: HistoryStore = triager.store
        self.feeder = HistoryFeeder(settings, store, self.history, triager)
        self.receiver = Receiver(settings, store, triager.redactor, triager.taxonomy)
        self.outbox = Outbox(settings.slack_outbox_backoff_max_s)
        self.to_refine: queue.Queue[str | None] = queue.Queue()
        self.storms = StormGrouper(settings.storm_similarity, settings.storm_window_s)
        self.slack = SlackPoster(client, settings)
        self.mode = ModeSwitch(store, settings.admin_user_ids, settings.mode_ttl_s)
        self.metrics = Metrics(
            store, known_prices(settings), self.mode, settings.quality_window, settings.confident_at
        )
        self.monitor = QualityMonitor(settings, store, self.slack)
        self._groups_due: set[str] = set()  # open incidents with tickets not yet listed in their thread
        # When each incident's thread was last updated: at most one reply and one counter edit per incident per
        # storm_flush_s, so a storm costs a few messages a minute (Slack limits posts per channel and edits).
        self._announced_at: dict[str, float] = {}
        self._post_rate = 5.0  # posts per second, smoothed: how long a full outbox takes to drain
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- intake --------------------------------------------------------------------------------------------
    def accept(self, event: WebhookEvent, channel: str | None = None) -> str:
        """Store an event durably (before the sender is answered); its Outcome value (see `receive`)."""
        return self.receive(event, channel).status

    def receive(self, event: WebhookEvent, channel: str | None = None) -> Receipt:
        """Store what a notification says durably, before the sender is answered.

        A new occurrence of the sender's incident is a new ticket ("accepted"); news about the current one is a
        reply in its thread ("updated"); "resolved"; "duplicate" (nothing new: nothing is posted); "unknown" (an
        incident this bot never received); "ignored" (with the reason). Raises Backpressure when the outbox is
        full, or while concurrent deliveries keep changing the same incident (nothing is stored: the sender
        keeps the notification and retries)."""
        try:
            stored = self.receiver.receive(event, channel, self._make_room)
        except Busy as e:
            raise Backpressure(0, 1, str(e)) from e
        for key, ticket, kind in stored.queued:
            self._enqueue(key, ticket, urgent=kind == "ticket")
        receipt = stored.receipt
        if receipt.status == Outcome.RESOLVE:
            self.storms.close(receipt.key)
            self.learn(receipt.key)
        return receipt

    def _make_room(self) -> None:
        backlog = self.backlog()
        if backlog >= self.settings.max_backlog:
            wait = math.ceil(backlog / max(self._post_rate, 0.1))
            raise Backpressure(backlog, min(max(wait, 1), 300))

    def _enqueue(self, key: str, ticket: Ticket, urgent: bool = True) -> None:
        # A ticket that suggests personal-data exposure, or that its sender rates at the taxonomy's most severe
        # level (an ordinal severity field lists it first), goes before everything waiting: stop the spread
        # first. Thread replies keep arrival order, behind the post they reply to.
        tax = self.triager.taxonomy
        severity = tax.fields.get("severity")
        worst = severity.ids[0] if severity is not None and severity.ids else None
        urgent = urgent and (
            detect_privacy(tax, ticket.body) is not None
            or (worst is not None and ticket.sender_label == worst)
        )
        self.outbox.put(key, urgent=urgent)

    def backlog(self) -> int:
        return len(self.outbox)

    def resolve(self, key: str, resolution: str) -> str:
        """Mark one ticket resolved with what fixed it (no sender thread involved: tests, operators)."""
        if self.store.get(key) is None:
            return "unknown"
        self.store.update_ticket(key, resolution=resolution or None, resolved=1)
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
            self._enqueue(
                row["key"], Ticket.model_validate(row["ticket"]), urgent=row.get("kind") != "update"
            )
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
        if row.get("kind") == "update":
            self.reply(row)
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
            if (note := self._mode_note()) is not None:
                draft.warnings.append(note)
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
        self.metrics.first_post.observe(_age_s(row["created_at"]))
        if self.triager.model is not None and self.mode.mode == Mode.LLM:
            self.to_refine.put(key)
        else:
            self.store.update_ticket(key, status="drafted")

    def reply(self, row: dict[str, Any]) -> None:
        """Post news about an incident (new alerts, a note, its resolution) in the thread of its post, or of the
        storm incident it was grouped into. Exactly once: a reply that may have gone out is looked up first."""
        key, parent_key = row["key"], row["parent_key"]
        parent = target = self.store.get(parent_key)
        if target is not None and not target.get("message_ts") and target.get("parent_key"):
            target = self.store.get(target["parent_key"])  # a storm member: its incident's thread
        if target is None or target["status"] == "failed" or (parent or {}).get("status") == "failed":
            self.store.update_ticket(key, status="failed", last_error="the post this replies to failed")
            return
        if not target.get("message_ts"):  # not posted yet (a restart, an urgent ticket ahead): later
            threading.Timer(1.0, self.outbox.put, args=(key,)).start()
            return
        update = self.triager.shown(Ticket.model_validate(row["ticket"]))
        channel, thread = target["channel"], target["message_ts"]
        found = None
        if row["status"] == "posting":
            found = self.slack.find_posted(channel, row["created_at"], UPDATE_EVENT, key, thread_ts=thread)
        else:
            self.store.update_ticket(key, status="posting")
        if found is None:
            text, reply = blocks.update_reply(parent_key, update)
            found = self.slack.post(channel, text, reply, {"event_type": UPDATE_EVENT, "event_payload": {"key": key}},
                                    thread_ts=thread)  # fmt: skip
        self.store.update_ticket(key, status="replied", message_ts=found["ts"], last_error=None)
        if update.severity and parent is not None:  # a new sender severity: the post shows it
            ticket = Ticket.model_validate(parent["ticket"]).model_copy(update={"severity": update.severity})
            self.store.update_ticket(parent_key, ticket=json.loads(ticket.model_dump_json()))
        if parent is not None and parent.get("message_ts") and (update.severity or parent.get("resolved")):
            self.redraw(parent_key)

    def refine(self, key: str) -> None:
        row = self.store.get(key)
        if row is None or row["status"] != "posted":
            return
        if (
            note := self._mode_note()
        ) is not None:  # switched off since it was posted: the retrieval draft stays
            draft = self._draft(row)
            draft.warnings = [*draft.warnings, note]
            self.store.update_ticket(key, status="drafted", draft=draft, last_error=None)
            self.redraw(key)
            return
        draft = self.triager.triage(Ticket.model_validate(row["ticket"]), history_required=False)
        self.store.update_ticket(key, status="drafted", draft=draft, last_error=None)
        self.metrics.observe_draft(draft)
        self.redraw(key)
        self.metrics.llm_edit.observe(_age_s(row["created_at"]))
        self._watch()

    def _mode_note(self) -> str | None:
        """The line every post made in retrieval-only mode carries (None in LLM mode)."""
        change: ModeChange | None = self.mode.current()
        if change is None or change.mode != Mode.RETRIEVAL_ONLY:
            return None
        return (
            f"Retrieval-only mode, set by {change.user_id} at {change.created_at:%Y-%m-%d %H:%M} UTC: the LLM is "
            "off on every replica (/triage mode llm turns it back on)."
        )

    def _watch(self) -> None:
        try:
            self.monitor.check()
        except Exception:  # watching itself must never stop a post or a verdict
            log.exception("quality check failed")

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
            # A field posted as "not sure: A or B?" was a question, not a claim: confirming does not answer it.
            labels = {f: d.labels or [d.label] for f, d in self._draft(row).labels.items() if not d.abstained}
            fb = fb.model_copy(update={"labels": labels})
        self.store.add_feedback(key, fb)
        if fb.labels and row["draft"]:
            self.triager.record_verdict(self._draft(row), fb.labels)
        verb = {"confirm": "Confirmed", "correct": "Corrected", "reject": "Rejected"}[fb.action]
        reason = f": {blocks.escape(fb.reason)}" if fb.reason else ""
        return f":white_check_mark: {verb} by <@{fb.user_id}>{reason}"

    def apply_feedback(self, key: str, status_line: str) -> None:
        """After the click is acknowledged: teach the history and update the message."""
        self.learn(key)
        self.redraw(key, status_line)
        self._watch()

    def report(self, since: timedelta) -> Report:
        return build_report(self.store, since, self.metrics.prices, self.settings.confident_at)

    def learn(self, key: str) -> HistoricalIncident | None:
        """Upsert the ticket into the history with the engineer's labels and fix (and its resolution)."""
        inc = self.feeder.learn(key)
        if inc is not None and inc.labels:
            self.triager.trainer.request()  # off the posting path; a flood of verdicts coalesces into one retrain
        return inc

    def redraw(self, key: str, status_line: str | None = None) -> None:
        """Re-render a ticket's post from its stored state (LLM draft, group counter, feedback line)."""
        row = self.store.get(key)
        if row is None or not row.get("message_ts") or not row.get("draft"):
            return
        ticket = self.triager.shown(Ticket.model_validate(row["ticket"]))
        draft = self._draft(row)
        stage = "llm" if row["status"] == "drafted" or self.triager.model is None else "retrieval"
        if status_line is not None:  # kept with the ticket: a restart or another replica shows it too
            self.store.update_ticket(key, status_line=status_line)
        else:
            status_line = row.get("status_line")
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
                status_line,
                row.get("group_count") or 0,
                resolved=bool(row.get("resolved")),
            ),
        )

    @staticmethod
    def _draft(row: dict[str, Any]) -> TriageDraft:
        return TriageDraft.model_validate(row["draft"])
