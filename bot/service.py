"""The running bot: accepted tickets are stored, posted fast with a retrieval draft, then edited with the LLM draft.

Two worker threads keep the first post fast while the LLM works: `post` (retrieval draft -> chat.postMessage)
and `refine` (LLM draft -> chat.update). Every step's result is stored, so a restart resumes where it stopped.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, wait_exponential

from bot.config import Settings
from bot.history import HistoryStore
from bot.intake.webhooks import WebhookEvent
from bot.models import Feedback, HistoricalIncident, Ticket, TriageDraft
from bot.pipeline import Triager
from bot.slack import blocks
from bot.store import Store

log = logging.getLogger("incibot")


def _retryable(e: BaseException) -> bool:
    if isinstance(e, SlackApiError):
        status = getattr(e.response, "status_code", 0)
        return status == 429 or status >= 500
    return isinstance(e, OSError)  # connection refused, reset, timeouts


def _wait(state: RetryCallState) -> float:
    """Slack's Retry-After on 429, else exponential backoff."""
    e = state.outcome.exception() if state.outcome else None
    if isinstance(e, SlackApiError) and getattr(e.response, "status_code", 0) == 429:
        try:
            return min(float(e.response.headers.get("Retry-After", 1)), 60.0)
        except (TypeError, ValueError):
            return 1.0
    return wait_exponential(multiplier=0.5, max=30)(state)


class TriageService:
    def __init__(self, settings: Settings, client: WebClient, triager: Triager, store: Store) -> None:
        self.settings = settings
        self.client = client
        self.triager = triager
        self.store = store
        self.history: HistoryStore = triager.store
        self.to_post: queue.Queue[str | None] = queue.Queue()
        self.to_refine: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._slack = retry(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(settings.slack_retries),
            wait=_wait,
            reraise=True,
        )

    # ---- intake --------------------------------------------------------------------------------------------
    def accept(self, event: WebhookEvent, channel: str | None = None) -> str:
        """Store an event durably (before the sender is answered).

        Returns "accepted", "duplicate" (this ticket was delivered before: nothing more is posted), "resolved",
        or "unknown" (a resolution for a ticket this bot never received)."""
        if event.kind == "open" and event.ticket is not None:
            ch = channel or self.settings.channel_for(event.ticket.service)
            if not self.store.add_ticket(event.key, event.ticket, ch):
                return "duplicate"
            self.to_post.put(event.key)
            return "accepted"
        return self.resolve(event.key, event.resolution)

    def resolve(self, key: str, resolution: str) -> str:
        if self.store.get(key) is None:
            return "unknown"
        self.store.update_ticket(key, resolution=resolution, resolved=1)
        self.learn(key)
        return "resolved"

    # ---- workers -------------------------------------------------------------------------------------------
    def start(self) -> None:
        for row in self.store.unfinished():  # resume after a restart
            (self.to_post if row["status"] == "received" else self.to_refine).put(row["key"])
        for name, q, fn in (("post", self.to_post, self.post), ("refine", self.to_refine, self.refine)):
            t = threading.Thread(target=self._loop, args=(q, fn), name=f"incibot-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        for q in (self.to_post, self.to_refine):
            q.put(None)
        for t in self._threads:
            t.join(timeout=30)

    def _loop(self, q: queue.Queue[str | None], fn: Any) -> None:
        while (key := q.get()) is not None:
            try:
                fn(key)
            except Exception as e:  # keep the ticket: it stays unfinished and is retried later
                log.exception("processing %s failed", key)
                self.store.update_ticket(key, last_error=f"{type(e).__name__}: {e}"[:500])
                threading.Timer(30.0, q.put, args=(key,)).start()

    def post(self, key: str) -> None:
        row = self.store.get(key)
        if row is None or row["status"] != "received":
            return
        ticket = Ticket.model_validate(row["ticket"])
        draft = self.triager.triage(ticket, use_llm=False)
        resp = self._slack(self.client.chat_postMessage)(
            channel=row["channel"],
            text=blocks.fallback_text(ticket, draft),
            blocks=blocks.draft_blocks(key, ticket, draft, self.triager.taxonomy, stage="retrieval"),
            unfurl_links=False,
        )
        self.store.update_ticket(
            key, status="posted", channel=resp["channel"], message_ts=resp["ts"], draft=draft, last_error=None
        )
        if self.triager.model is not None:
            self.to_refine.put(key)
        else:
            self.store.update_ticket(key, status="drafted")

    def refine(self, key: str) -> None:
        row = self.store.get(key)
        if row is None or row["status"] != "posted":
            return
        ticket = Ticket.model_validate(row["ticket"])
        draft = self.triager.triage(ticket)
        self._slack(self.client.chat_update)(
            channel=row["channel"],
            ts=row["message_ts"],
            text=blocks.fallback_text(ticket, draft),
            blocks=blocks.draft_blocks(key, ticket, draft, self.triager.taxonomy, stage="llm"),
        )
        self.store.update_ticket(key, status="drafted", draft=draft, last_error=None)

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
        inc = self.store.labelled_incident(key)
        if inc is None:
            row = self.store.get(key)
            if row is None or not row.get("resolution"):
                return None
            t = Ticket.model_validate(row["ticket"])
            inc = HistoricalIncident(
                **t.model_dump(exclude={"id", "raw"}), id=key, resolution=row["resolution"]
            )
        self.history.upsert([inc])
        return inc

    def redraw(self, key: str, status_line: str) -> None:
        row = self.store.get(key)
        if row is None or not row.get("message_ts") or not row.get("draft"):
            return
        ticket = Ticket.model_validate(row["ticket"])
        draft = self._draft(row)
        stage = "llm" if row["status"] == "drafted" else "retrieval"
        self._slack(self.client.chat_update)(
            channel=row["channel"],
            ts=row["message_ts"],
            text=blocks.fallback_text(ticket, draft),
            blocks=blocks.draft_blocks(key, ticket, draft, self.triager.taxonomy, stage, status_line),
        )

    @staticmethod
    def _draft(row: dict[str, Any]) -> TriageDraft:
        return TriageDraft.model_validate(row["draft"])
