"""The replica's worker threads: one posts (claims a channel's next piece of work from the queue, does it,
gives the lane back), one runs the LLM edit pass. Both keep going through database and Slack outages."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import DBAPIError

from bot.delivery.llm_edit import Refiner
from bot.delivery.posting import LeaseLost, TicketPoster
from bot.delivery.queue import Claim, Job, WorkQueue
from bot.delivery.slack.channels import NotInChannel
from bot.delivery.slack.messages import retryable
from bot.feedback.history_feeder import HistoryFeeder
from bot.retrying import retry_after
from bot.store.sql import Store
from bot.store.tickets import TicketState

log = logging.getLogger("incibot")
DB_DOWN_WAIT_S = 1.0


class Workers:
    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        poster: TicketPoster,
        refiner: Refiner | None,
        feeder: HistoryFeeder,
        poll_s: float,
        announce_every_s: float,
        housekeeping: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.queue, self.poster, self.refiner, self.feeder = store, queue, poster, refiner, feeder
        self.poll_s, self.announce_every_s = poll_s, announce_every_s
        self.housekeeping = housekeeping  # when idle: retention (changes past change_retention_days)
        self.wake = threading.Event()  # set when this replica stores work: no poll delay for its own tickets
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # lanes whose release failed with the database down: this replica's heartbeat would renew their leases for
        # as long as it lives, so they are given back first once the database answers (post thread only)
        self._stranded: list[Claim] = []

    def start(self) -> None:
        loops: list[tuple[str, Callable[[], bool]]] = [("post", self.post_one), ("lease", self.renew_leases)]
        if self.refiner is not None:
            loops.append(("refine", self.refiner.next))
        for name, step in loops:
            t = threading.Thread(target=self._loop, args=(step,), name=f"incibot-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()
        for t in self._threads:
            t.join(timeout=30)

    def _loop(self, step: Callable[[], bool]) -> None:
        while not self._stopping.is_set():
            try:
                busy = step()
            except DBAPIError as e:  # the database is down or restarting: wait, then claim again
                log.warning("work queue unavailable: %s", str(e).splitlines()[0][:200])
                self._stopping.wait(DB_DOWN_WAIT_S)
                continue
            except Exception:  # a bug must not stop the worker: the item stays in the queue
                log.exception("worker step failed")
                self._stopping.wait(DB_DOWN_WAIT_S)
                continue
            if not busy:
                self.wake.wait(self.poll_s)
                self.wake.clear()

    def renew_leases(self) -> bool:
        self.queue.heartbeat()
        self._stopping.wait(self.queue.lease.total_seconds() / 3)
        return True

    def post_one(self) -> bool:
        """Claim and do one piece of posting work; False if nothing was ready."""
        while self._stranded:  # raises while the database is still down: the loop waits and comes back
            self.queue.release(self._stranded[0], sent=0)
            self._stranded.pop(0)
        claim = self.queue.claim(self.announce_every_s)
        if claim is None:
            self.feeder.retry_pending()  # verdicts the history could not take while it was down
            if self.housekeeping is not None:
                self.housekeeping()
            return False
        step = self.poster.announce if claim.job == Job.ANNOUNCE else self.poster.post
        self.attempt(step, claim)
        return True

    def attempt(self, step: Callable[[Claim], int], claim: Claim) -> None:
        """One step under a lane lease. If Slack cannot take it now, the channel waits (Retry-After, else a
        doubling backoff) while others go on; a permanent refusal marks the ticket failed (kept, counted on
        /healthz) and the channel moves on."""
        sent = 1
        try:
            sent = step(claim)  # messages sent: they spend the channel's pace (a storm member sends none)
        except LeaseLost as e:
            log.warning("%s", e)
            return
        except DBAPIError:
            self._release_quietly(claim)
            raise
        except Exception as e:
            error = f"{type(e).__name__}: {e}"[:500]
            if retryable(e):
                wait = self.queue.release(claim, sent=0, failed_for=retry_after(e), failed=True)
                log.warning("Slack unavailable for %s in %s (%s); retrying in %.1f s", claim.key, claim.channel,
                            error, wait)  # fmt: skip
                self.store.update_ticket(claim.key, last_error=error)
                return
            if isinstance(e, (SlackApiError, NotInChannel)):  # Slack's refusal is the whole story
                log.error("giving up on %s in %s: %s", claim.key, claim.channel, error)
            else:
                log.exception("giving up on %s", claim.key)
            if claim.job == Job.POST:  # a storm listing Slack refuses leaves its incident alone
                self.store.update_ticket(claim.key, status=TicketState.FAILED, last_error=error)
        self.queue.release(claim, sent=sent)

    def _release_quietly(self, claim: Claim) -> None:
        try:
            self.queue.release(claim, sent=0)
        except (
            DBAPIError
        ):  # still down: released by post_one once it answers (a renewed lease never runs out)
            self._stranded.append(claim)
