"""A ticket's life in Slack: its first post (or its place in a storm), thread replies with news, storm listings,
and redrawing the post from its stored state. Exactly once: each message carries its ticket key as metadata,
and a step that may already have reached Slack (state `posting`/`announcing`: a crash, a lost answer, a lease
that ran out) is looked up in the channel before it is sent again.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import Future, ThreadPoolExecutor

from bot.config import Settings
from bot.delivery import chart
from bot.delivery.context import ContextLookup, with_telemetry
from bot.delivery.queue import Claim, WorkQueue
from bot.delivery.slack import blocks
from bot.delivery.slack.messages import GROUP_EVENT, TICKET_EVENT, UPDATE_EVENT, SlackMessages
from bot.delivery.storms import StormGrouper
from bot.models import Context, Mode, TelemetrySummary, Ticket, TriageDraft
from bot.store.sql import Store
from bot.store.tickets import TicketKind, TicketRow, TicketState
from bot.triage.pipeline import Triager
from bot.watch.metrics import Metrics
from bot.watch.mode import ModeSwitch

log = logging.getLogger("incibot")
WAITING_FOR_POST_S = 1.0  # a thread reply whose incident is not posted yet is tried again this much later
TELEMETRY_THREADS = 2  # metrics reads in flight: each is bounded by telemetry_budget_s


class LeaseLost(RuntimeError):
    """Another replica took the channel over (this one was too slow): it will finish the ticket."""


class TicketPoster:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        queue: WorkQueue,
        triager: Triager,
        slack: SlackMessages,
        storms: StormGrouper,
        mode: ModeSwitch,
        metrics: Metrics,
        context: ContextLookup | None = None,
    ) -> None:
        self.settings, self.store, self.queue, self.triager = settings, store, queue, triager
        self.slack, self.storms, self.mode, self.metrics = slack, storms, mode, metrics
        self.context = context  # why now: recent changes and concurrent alerts, shown on the post
        # The metrics are read after the first post, off the channel's lane: a slow Prometheus delays neither
        # this post nor the next ticket's.
        self._telemetry: ThreadPoolExecutor | None = None
        self.telemetry_reads: list[Future[None]] = []  # in flight (tests wait on them)
        self._reading: set[str] = set()  # tickets whose metrics are being read: their LLM edit waits for them

    def close(self) -> None:
        if self._telemetry is not None:
            self._telemetry.shutdown(wait=True, cancel_futures=True)

    def _shown(self, row: TicketRow) -> Ticket:
        """The ticket as posted: redacted once at intake (rows stored before that are redacted here)."""
        return row.shown or self.triager.preparer.shown(row.ticket)

    def _mine(self, claim: Claim) -> None:
        if not self.queue.renew(claim):
            raise LeaseLost(f"{claim.channel} was taken over while {claim.key} was being prepared")

    # ---- posts ---------------------------------------------------------------------------------------------
    def post(self, claim: Claim) -> int:
        row = self.store.get(claim.key)
        if row is None or row.status not in (TicketState.RECEIVED, TicketState.POSTING):
            return 0
        if row.kind == TicketKind.UPDATE:
            return self.reply(row, claim)
        prepared = self.triager.preparer.prepare(
            row.ticket
        )  # one redaction, one embedding: storms and retrieval
        if row.status == TicketState.RECEIVED:
            parent = self.storms.match(row.route, row.ticket.service, prepared.vector)
            if parent is not None:
                self.store.update_ticket(row.key, status=TicketState.GROUPED, parent_key=parent)
                return 0
            # Why now, looked up first: evidence for the decision as well as a section of the post (never raises: a
            # failed lookup is logged and the ticket is decided and posted without it).
            context = self.context.for_row(row) if self.context is not None else None
            # On a fresh install the classifier trains at start: a post drafted before it ends would say "Other 0%"
            # on every field, so the first posts wait for it (bounded; past that the draft says it is training).
            self.triager.trainer.wait_first(self.settings.first_training_wait_s)
            draft = self.triager.triage(
                row.ticket, use_llm=False, history_required=False, prepared=prepared, context=context
            )
            if (note := self.mode.note()) is not None:
                draft.warnings.append(note)
            # From here a post may reach Slack before we hear back: a retry, a restart or another replica
            # looks it up first.
            self._mine(claim)
            self.store.update_ticket(row.key, status=TicketState.POSTING, draft=draft)
            found = None
        else:
            draft = row.draft
            found = self.slack.find_posted(row.channel, row.created_at, TICKET_EVENT, row.key)
            if draft is None:  # no draft stored with the row: draft again (same inputs, same draft)
                draft = self.triager.triage(
                    row.ticket, use_llm=False, history_required=False, prepared=prepared
                )
            self._mine(claim)
        sent = found is None
        if found is None:
            shown = self._shown(row)
            found = self.slack.post(
                row.channel,
                blocks.fallback_text(shown, draft),
                blocks.draft_blocks(
                    row.key, shown, draft, self.triager.taxonomy, stage="retrieval", resolved=row.resolved
                ),
                {"event_type": TICKET_EVENT, "event_payload": {"key": row.key}},
            )
        llm_next = self.triager.model is not None and self.mode.mode == Mode.LLM
        self.store.update_ticket(
            row.key,
            status=TicketState.POSTED if llm_next else TicketState.DRAFTED,
            channel=found.get("channel") or row.channel,
            message_ts=found["ts"],
            last_error=None,
            **self.storms.opened(prepared.vector),
        )
        self.metrics.first_post.observe(row.age_s())
        if (
            self.context is not None
            and self.context.telemetry.enabled
            and not (draft.context and draft.context.telemetry)
        ):
            self._read_telemetry_later(row.key)
        return int(sent)

    # ---- the metrics, after the first post ---------------------------------------------------------------
    def _read_telemetry_later(self, key: str) -> None:
        if self._telemetry is None:
            self._telemetry = ThreadPoolExecutor(TELEMETRY_THREADS, thread_name_prefix="incibot-telemetry")
        self.telemetry_reads = [f for f in self.telemetry_reads if not f.done()]
        self._reading.add(key)
        self.telemetry_reads.append(self._telemetry.submit(self.add_telemetry, key))

    def reading(self, key: str) -> bool:
        """Its metrics are being read in this process (at most `telemetry_budget_s`)."""
        return key in self._reading

    def add_telemetry(self, key: str) -> None:
        """Read the ticket's metrics, keep them with its stored draft and redraw the post: a retrieval draft is
        decided again with what moved as evidence. A failure only costs the section (logged): the ticket is
        posted already."""
        try:
            self._add_telemetry(key)
        finally:
            self._reading.discard(key)

    def _add_telemetry(self, key: str) -> None:
        try:
            row = self.store.get(key)
            if row is None or row.draft is None or self.context is None:
                return
            # the ticket as received, not as shown: metrics are labelled with its real service
            summary = self.context.telemetry.read(row.ticket)
            if summary is None:
                return
            row = self.store.get(key)  # again: the LLM edit may have replaced the draft while we read
            if row is None or row.draft is None:
                return
            context = with_telemetry(row.draft.context, summary, self.settings)
            self.store.update_ticket(key, draft=self._with_metrics(row, context))
            self.redraw(key)
        except Exception:
            log.exception("metrics for %s not added to its post", key)
            return
        if self.settings.telemetry_chart and summary.moved and row.message_ts:
            self._chart(row, summary, context)

    def _with_metrics(self, row: TicketRow, context: Context | None) -> TriageDraft:
        """The stored draft with the metrics. The retrieval draft is decided again with them as evidence (the
        first post could not wait for them); the LLM's draft, when it is out already, was decided with them
        (its edit waits for the read, `reading`) or, made on another replica, keeps its decision."""
        draft = row.draft
        assert draft is not None
        if draft.kind == "llm" or not (context and context.telemetry and context.telemetry.moved):
            return draft.model_copy(update={"context": context})
        again = self.triager.triage(row.ticket, use_llm=False, history_required=False,
                                    query=self.storms.vector(row.key), context=context)  # fmt: skip
        return again.model_copy(update={"warnings": draft.warnings})

    def _chart(self, row: TicketRow, summary: TelemetrySummary, context: Context | None) -> None:
        """The moved signals as a PNG in the incident's thread; a failure is logged, never the ticket's."""
        try:
            png = chart.render(summary, context.changes if context else [], row.ticket.created_at)
            if png is None:
                return
            names = ", ".join(m.title for m in summary.moved[: chart.MAX_PANELS])
            name = re.sub(r"[^A-Za-z0-9_.-]+", "-", row.key) + "-metrics.png"
            self.slack.upload(row.channel, row.message_ts or "", name, png, "What the metrics show",
                              f"Chart of {names} around the ticket")  # fmt: skip
        except Exception as e:
            log.warning("metrics chart for %s not uploaded: %s", row.key, f"{type(e).__name__}: {e}"[:300])

    def reply(self, row: TicketRow, claim: Claim) -> int:
        """Post news about an incident (new alerts, a note, its resolution) in the thread of its post, or of the
        storm incident it was grouped into."""
        parent = target = self.store.get(row.parent_key or "")
        if target is not None and not target.message_ts and target.parent_key:
            target = self.store.get(target.parent_key)  # a storm member: its incident's thread
        if target is None or TicketState.FAILED in (target.status, parent.status if parent else None):
            self.store.update_ticket(
                row.key, status=TicketState.FAILED, last_error="the post this replies to failed"
            )
            return 0
        if not target.message_ts:  # not posted yet (an urgent ticket ahead, another channel's lane): later
            self.queue.later(row.key, WAITING_FOR_POST_S)
            return 0
        update = self._shown(row)
        channel, thread = target.channel, target.message_ts
        found = None
        if row.status == TicketState.POSTING:
            found = self.slack.find_posted(channel, row.created_at, UPDATE_EVENT, row.key, thread_ts=thread)
        self._mine(claim)
        sent = found is None
        if found is None:
            self.store.update_ticket(row.key, status=TicketState.POSTING)
            text, reply = blocks.update_reply(row.parent_key or "", update)
            found = self.slack.post(channel, text, reply, {"event_type": UPDATE_EVENT, "event_payload": {"key": row.key}},
                                    thread_ts=thread)  # fmt: skip
        self.store.update_ticket(row.key, status=TicketState.REPLIED, message_ts=found["ts"], last_error=None)
        if update.severity and parent is not None:  # a new sender severity: the post shows it
            severity = {"severity": update.severity}
            self.store.update_ticket(parent.key, ticket=parent.ticket.model_copy(update=severity),
                                     shown=self._shown(parent).model_copy(update=severity))  # fmt: skip
        if parent is not None and parent.message_ts and (update.severity or parent.resolved):
            self.redraw(parent.key)
        return int(sent)

    # ---- storms --------------------------------------------------------------------------------------------
    def announce(self, claim: Claim) -> int:
        """List the tickets grouped under an incident in its thread (batched), and count them on its post."""
        parent = self.store.get(claim.key)
        if parent is None or not parent.message_ts:
            return 0
        channel, thread = parent.channel, parent.message_ts
        for row in self.store.members(parent.key, TicketState.ANNOUNCING):  # a reply may have gone out before
            found = self.slack.find_posted(channel, row.created_at, GROUP_EVENT, row.key, thread_ts=thread)
            keys = found["metadata"]["event_payload"]["keys"] if found else [row.key]
            self.store.set_status(keys, status=TicketState.ANNOUNCED if found else TicketState.GROUPED)
        # One reply per flush; the rest of a large batch waits for the next (other work goes on meanwhile).
        sent = 0
        if members := self.store.members(parent.key, TicketState.GROUPED)[: self.settings.storm_reply_batch]:
            keys = [m.key for m in members]
            self._mine(claim)
            self.store.set_status(keys, status=TicketState.ANNOUNCING)
            total = parent.group_count
            text, reply = blocks.group_reply([(m.key, self._shown(m)) for m in members], total + len(keys))
            resp = self.slack.post(channel, text, reply, {"event_type": GROUP_EVENT, "event_payload": {"keys": keys}},
                                   thread_ts=thread)  # fmt: skip
            self.store.set_status(keys, status=TicketState.ANNOUNCED, message_ts=resp["ts"])
            self.store.update_ticket(parent.key, group_count=total + len(keys))
            sent = 1
        self.redraw(parent.key)
        return sent

    # ---- the post, redrawn ---------------------------------------------------------------------------------
    def redraw(self, key: str, status_line: str | None = None) -> None:
        """Re-render a ticket's post from its stored state (LLM draft, group counter, feedback line)."""
        row = self.store.get(key)
        if row is None or not row.message_ts or row.draft is None:
            return
        ticket = self._shown(row)
        stage = "llm" if row.status == TicketState.DRAFTED or self.triager.model is None else "retrieval"
        if status_line is not None:  # kept with the ticket: a restart or another replica shows it too
            self.store.update_ticket(key, status_line=status_line)
        else:
            status_line = row.status_line
        self.slack.update(
            row.channel,
            row.message_ts,
            blocks.fallback_text(ticket, row.draft),
            blocks.draft_blocks(key, ticket, row.draft, self.triager.taxonomy, stage, status_line,
                                row.group_count, resolved=row.resolved),
        )  # fmt: skip
