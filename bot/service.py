"""The running bot, as a small facade over its parts (data flows one way):

  intake (bot/intake/receiver.py: validate, dedupe, store, answer)
  -> work queue (bot/delivery/queue.py: claim a channel's next ticket under a lease; pace; back off; give up)
  -> posting (bot/delivery/posting.py: storms via bot/delivery/storms.py, the first post, replies, storm listings, exactly once)
  -> LLM edit pass (bot/delivery/llm_edit.py)
  -> feedback -> history (bot/feedback/history_feeder.py).

Every piece of shared state is in the database, so any number of replicas can run against one database and
one Chroma server (README: "Several replicas"); the worker threads are in bot/delivery/workers.py.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from datetime import timedelta

from slack_sdk import WebClient

from bot.clock import utcnow
from bot.config import Settings
from bot.delivery.context import ContextLookup
from bot.delivery.llm_edit import Refiner
from bot.delivery.posting import TicketPoster
from bot.delivery.queue import Pace, WorkQueue
from bot.delivery.slack import blocks
from bot.delivery.slack.messages import SlackMessages
from bot.delivery.storms import StormGrouper
from bot.delivery.workers import Workers
from bot.feedback.history_feeder import HistoryFeeder
from bot.feedback.labelling import candidate, label_batch
from bot.intake.changes.receiver import ChangeIntake, ChangeReceipt
from bot.intake.receiver import Backpressure, Receipt, Receiver
from bot.intake.senders import WebhookEvent
from bot.models import ChangeEvent, Feedback, HistoricalIncident, LabelBatch, LabelCandidate
from bot.store.sql import Store
from bot.store.tickets import TicketRow
from bot.store.vectors import Hit, VectorStore, by_id
from bot.taxonomy import Taxonomy
from bot.triage.llm import warm_up
from bot.triage.pipeline import Triager
from bot.watch.metrics import Metrics, known_prices
from bot.watch.mode import ModeSwitch
from bot.watch.monitor import QualityMonitor
from bot.watch.report import Report
from bot.watch.report import build as build_report

log = logging.getLogger("incibot")
DRAIN_PER_S = 5.0  # posts per second a full queue is assumed to drain at: the Retry-After of a 429
PRUNE_EVERY_S = 3600.0  # each replica drops changes past change_retention_days at most this often


def replica_id() -> str:
    """Who holds a lease: unique per process, readable in the database."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class TriageService:
    def __init__(self, settings: Settings, client: WebClient, triager: Triager, store: Store) -> None:
        s = settings
        self.settings, self.client, self.triager, self.store = settings, client, triager, store
        self.history: VectorStore = triager.history
        pace = Pace(s.slack_channel_rate, s.slack_channel_burst, s.slack_outbox_backoff_max_s)
        self.queue = WorkQueue(store.engine, replica_id(), s.lease_s, pace)
        self.storms = StormGrouper(store.engine, s.storm_similarity, s.storm_window_s)
        self.slack = SlackMessages(client, settings)
        self.mode = ModeSwitch(store.watch, s.admin_user_ids, s.mode_ttl_s)
        self.metrics = Metrics(store, known_prices(settings), self.mode, s.quality_window, s.confident_at)
        self.monitor = QualityMonitor(settings, store, self.slack)
        self.feeder = HistoryFeeder(settings, store, self.history, triager)
        self.receiver = Receiver(settings, store, triager.preparer, triager.taxonomy)
        self.changes = ChangeIntake(settings, store, triager.preparer.redactor)
        self.context = ContextLookup(settings, store.changes)
        self.poster = TicketPoster(settings, store, self.queue, triager, self.slack, self.storms, self.mode,
                                   self.metrics, self.context)  # fmt: skip
        self.refiner = Refiner(
            store, self.queue, triager, self.poster, self.storms, self.mode, self.metrics, self.monitor
        )
        refiner = self.refiner if triager.model is not None else None
        self.workers = Workers(
            store,
            self.queue,
            self.poster,
            refiner,
            self.feeder,
            s.queue_poll_s,
            s.storm_flush_s,
            self.prune_changes,
        )
        self._pruned_at: float | None = None

    @property
    def taxonomy(self) -> Taxonomy:
        return self.triager.taxonomy

    # ---- intake --------------------------------------------------------------------------------------------
    def accept(self, event: WebhookEvent, channel: str | None = None) -> str:
        """`receive`, for callers that need only its Outcome value (the slash command, tests)."""
        return self.receive(event, channel).status

    def receive(self, event: WebhookEvent, channel: str | None = None) -> Receipt:
        """Store what a notification says durably, before the sender is answered.

        A new occurrence of the sender's incident is a new ticket ("accepted"); news about the current one is a
        reply in its thread ("updated"); "resolved"; "duplicate" (nothing new: nothing is posted); "unknown" (an
        incident this bot never received); "ignored" (with the reason). Raises Backpressure when too many
        tickets wait, or while concurrent deliveries keep changing the same incident (nothing is stored: the
        sender keeps the notification and retries)."""
        stored = self.receiver.receive(event, channel, self._make_room)
        if stored.queued:
            self.workers.wake.set()
        receipt = stored.receipt
        if stored.resolved:
            self.learn(receipt.key)
        return receipt

    def receive_change(self, change: ChangeEvent) -> ChangeReceipt:
        """Store a change (one INSERT, deduplicated by its sender's id) before its sender is answered; a change
        on a service with an open incident is also queued as a reply in its thread, unless the outbox is full."""
        receipt = self.changes.receive(change, room=lambda: self.backlog() < self.settings.max_backlog)
        if receipt.replies:
            self.workers.wake.set()
        return receipt

    def recent_changes(self, service: str, limit: int = 20) -> list[ChangeEvent]:
        """`/triage changes <service>`: its newest changes (the service as tickets name it, or as mapped)."""
        name = self.settings.change_service_map.get(service, service)
        return self.store.changes.latest(name, limit)

    def prune_changes(self, force: bool = False) -> int:
        """Drop changes older than change_retention_days (at most once per PRUNE_EVERY_S per replica)."""
        now = time.monotonic()
        if not force and self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_S:
            return 0
        self._pruned_at = now
        n = self.store.changes.prune(utcnow() - timedelta(days=self.settings.change_retention_days))
        if n:
            log.info("dropped %d changes older than %g days", n, self.settings.change_retention_days)
        return n

    def _make_room(self) -> None:
        backlog = self.backlog()
        if backlog >= self.settings.max_backlog:
            raise Backpressure(backlog, min(max(math.ceil(backlog / DRAIN_PER_S), 1), 300))

    def ticket(self, key: str) -> TicketRow | None:
        return self.store.get(key)

    def backlog(self) -> int:
        """Tickets waiting to be posted, on every replica."""
        return self.queue.waiting()

    def similar(self, text: str) -> list[Hit]:
        """`/triage similar`: past incidents like `text`, searched as triage searches (redacted first)."""
        return self.triager.search(text, self.settings.retrieval_k)

    # ---- workers -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers: whatever a crash, a restart or another replica left unfinished is in the queue."""
        warm_up(self.triager.model)  # the local model server loads while the first tickets are posted
        self.workers.start()

    def stop(self) -> None:
        self.workers.stop()
        self.poster.close()  # metrics reads still in flight: each ends within telemetry_budget_s

    # ---- feedback ------------------------------------------------------------------------------------------
    def record_feedback(self, key: str, fb: Feedback) -> str | None:
        """Store the engineer's verdict durably; returns the status line to show, or None for an unknown ticket."""
        row = self.store.get(key)
        if row is None:
            return None
        if fb.action == "confirm" and row.draft is not None:
            # Confirming means: the labels on the message are right.
            # A field posted as "not sure: A or B?" was a question, not a claim: confirming does not answer it.
            labels = {f: d.labels or [d.label] for f, d in row.draft.labels.items() if not d.abstained}
            fb = fb.model_copy(update={"labels": labels})
        # An engineer's words are stored and posted redacted, like ticket text (a pasted log line can hold a key).
        red = self.triager.redactor.redact
        fb = fb.model_copy(update={"reason": red(fb.reason).text if fb.reason else fb.reason,
                                   "fix": red(fb.fix).text if fb.fix else fb.fix})  # fmt: skip
        if fb.fix and fb.fix_playbook is None:  # mapped once, here: every replica reads it with the verdict
            fb = fb.model_copy(update={"fix_playbook": self.triager.playbook_choice.fix_playbook(fb.fix)})
        self.store.add_feedback(key, fb)
        if fb.labels and row.draft is not None:
            self.triager.record_verdict(row.draft, fb.labels, fb.fix_playbook)
        if row.draft is not None:
            self.triager.record_step_verdict(row.draft, fb.action)
        verb = {"confirm": "Confirmed", "correct": "Corrected", "reject": "Rejected"}[fb.action]
        reason = f": {blocks.escape(fb.reason)}" if fb.reason else ""
        return f":white_check_mark: {verb} by <@{fb.user_id}>{reason}"

    def apply_feedback(self, key: str, status_line: str) -> None:
        """After the click is acknowledged: teach the history and update the message."""
        self.learn(key)
        self.redraw(key, status_line)
        self.refiner.watch()

    def learn(self, key: str) -> HistoricalIncident | None:
        """Upsert the ticket into the history with the engineer's labels and fix (and its resolution)."""
        inc = self.feeder.learn(key)
        if inc is not None and inc.labels:
            self.triager.trainer.request()  # off the posting path; a flood of verdicts coalesces into one retrain
        return inc

    # ---- labelling past incidents (`/triage label`) -------------------------------------------------------
    def to_label(self, n: int) -> LabelBatch:
        """The n past incidents active learning asks about next; raises HistoryError while the history is down."""
        return label_batch(self.history, self.taxonomy, n)

    def history_incident(self, incident_id: str) -> LabelCandidate | None:
        """One past incident by id (None: not, or no longer, in the history); raises HistoryError."""
        inc = by_id(self.history, incident_id)
        return candidate(inc) if inc is not None else None

    def label_history(
        self, incident_id: str, labels: dict[str, list[str]], user_id: str, fix: str | None = None
    ) -> str | None:
        """Write an engineer's labels into a past incident, then retrain, as a verdict does; the status line, or
        None for an unknown incident. Raises HistoryError (nothing written) while the history is down."""
        inc = self.feeder.label(incident_id, labels, user_id, fix)
        if inc is None:
            return None
        self.triager.trainer.request()  # coalesces with other answers of the batch into one retraining
        said = ", ".join(f"{f} {'/'.join(v)}" for f, v in labels.items())
        return (
            f":white_check_mark: *{blocks.escape(inc.title[:150] or inc.id)}* labelled by <@{user_id}> "
            f"({blocks.escape(said)}); the classifier retrains with it."
        )

    def redraw(self, key: str, status_line: str | None = None) -> None:
        self.poster.redraw(key, status_line)

    def report(self, since: timedelta) -> Report:
        return build_report(self.store, since, self.metrics.prices, self.settings.confident_at)
