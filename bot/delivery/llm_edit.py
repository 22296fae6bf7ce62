"""The LLM edit pass: a posted ticket's retrieval draft is replaced by the LLM's draft (chat.update). Any replica
takes the next posted ticket under a lease on it; a failed edit leaves the retrieval draft visible and is tried
again later; an edit is idempotent, so a lease that runs out costs at most a second edit."""

from __future__ import annotations

import logging

from bot.delivery.posting import TicketPoster
from bot.delivery.queue import WorkQueue
from bot.delivery.storms import StormGrouper
from bot.models import TriageDraft
from bot.store.sql import Store
from bot.store.tickets import TicketState
from bot.triage.pipeline import Triager
from bot.watch.metrics import Metrics
from bot.watch.mode import ModeSwitch
from bot.watch.monitor import QualityMonitor

log = logging.getLogger("incibot")
RETRY_S = 30.0  # a failed edit is tried again this much later
READ_WAIT_S = 0.5  # an edit waiting for the ticket's metrics looks again this much later


class Refiner:
    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        triager: Triager,
        poster: TicketPoster,
        storms: StormGrouper,
        mode: ModeSwitch,
        metrics: Metrics,
        monitor: QualityMonitor,
    ) -> None:
        self.store, self.queue, self.triager, self.poster, self.storms = store, queue, triager, poster, storms
        self.mode, self.metrics, self.monitor = mode, metrics, monitor

    def next(self) -> bool:
        """Edit one posted ticket; False if none is waiting."""
        key = self.queue.claim_edit()
        if key is None:
            return False
        try:
            self.refine(key)
        except Exception as e:  # the retrieval draft stays visible; the edit is tried again later
            log.exception("LLM edit of %s failed", key)
            self.store.update_ticket(key, last_error=f"{type(e).__name__}: {e}"[:500])
            self.queue.later(key, RETRY_S)
        return True

    def refine(self, key: str) -> None:
        row = self.store.get(key)
        if row is None or row.status != TicketState.POSTED or row.draft is None:
            return
        if self.poster.reading(
            key
        ):  # its metrics arrive within telemetry_budget_s: the LLM decides with them
            self.queue.later(key, READ_WAIT_S)
            return
        if (
            note := self.mode.note()
        ) is not None:  # switched off since it was posted: the retrieval draft stays
            draft = row.draft.model_copy(update={"warnings": [*row.draft.warnings, note]})
        else:
            vector = self.storms.vector(key)
            # the context looked up once, when it was posted: the same evidence for the decision
            draft = self.triager.triage(
                row.ticket, history_required=False, query=vector, context=row.draft.context
            )
            self.metrics.observe_draft(draft)
            draft = self._keep_telemetry(key, draft)
        self.store.update_ticket(key, status=TicketState.DRAFTED, draft=draft, last_error=None,
                                 lease_owner=None, lease_until=None)  # fmt: skip
        self.poster.redraw(key)
        if note is None:
            self.metrics.llm_edit.observe(row.age_s())
            self.watch()

    def _keep_telemetry(self, key: str, draft: TriageDraft) -> TriageDraft:
        """The metrics read after the first post may have been stored while the LLM drafted: keep them."""
        if draft.context is not None and draft.context.telemetry is not None:
            return draft
        now = self.store.get(key)
        if (
            now is None
            or now.draft is None
            or now.draft.context is None
            or now.draft.context.telemetry is None
        ):
            return draft
        return draft.model_copy(update={"context": now.draft.context})

    def watch(self) -> None:
        try:
            self.monitor.check()
        except Exception:  # watching itself must never stop a post or a verdict
            log.exception("quality check failed")
