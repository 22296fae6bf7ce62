"""The work queue, in the SQL store: every replica claims work from it, so no replica holds state another needs.

Posting is claimed per Slack channel ("lane"): a replica takes a channel's lease, posts that channel's oldest
waiting ticket (urgent ones first: personal-data exposure, the worst severity), and gives the lane back with
the time it may be used again: Slack's per-channel pace, or after a failure its Retry-After / a doubling backoff.
So one replica posts to a channel at a time (arrival order holds, storms are matched without races), a failing
channel waits without holding the others, and a replica that dies loses its lease: another takes the channel
over and finds the half-done post by its metadata (bot/delivery/posting.py), still exactly once.

Candidates are read with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas claiming at once pick different
channels instead of queueing behind each other; the lane row's conditional upsert decides who wins. On SQLite
(one writer) the same statements run, serialised by the database.

The LLM edit pass claims posted tickets one by one under a lease on the ticket row.

Considered and not used: job-queue libraries (procrastinate, pgqueuer) are PostgreSQL-only, and none orders
work per channel or knows Slack's pace; pyrate-limiter keeps its buckets apart from the claim, so a paced
channel would still be claimed and then wait. Here the pace is part of the claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, and_, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.clock import aware, utcnow
from bot.store.schema import lanes, tickets
from bot.store.tickets import WAITING, Priority, TicketState

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Job(StrEnum):
    POST = "post"  # a waiting ticket or thread reply
    ANNOUNCE = "announce"  # storm members to list in their incident's thread


@dataclass(frozen=True)
class Claim:
    job: Job
    key: str  # the ticket to post, or the incident whose members to announce
    channel: str  # the lane held


@dataclass(frozen=True)
class Pace:
    per_s: float  # Slack allows about one message per second per channel...
    burst: int  # ...with short bursts
    backoff_max_s: float  # a failing channel is retried at most this far apart


class WorkQueue:
    def __init__(self, engine: Engine, owner: str, lease_s: float, pace: Pace) -> None:
        self.engine, self.owner, self.lease = engine, owner, timedelta(seconds=lease_s)
        self.pace = pace
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    # ---- lanes ------------------------------------------------------------------------------------------------
    def _free(self, channel: object, now: datetime) -> object:
        """SQL: the lane of `channel` is not leased and may take a message now."""
        return ~exists(
            select(lanes.c.channel).where(
                lanes.c.channel == channel, or_(lanes.c.lease_until > now, lanes.c.ready_at > now)
            )
        )

    def _take(self, c: object, channel: str, now: datetime) -> bool:
        """Lease the lane if nobody holds it and it is ready: True for exactly one of several claimers."""
        until = now + self.lease
        stmt = self._insert(lanes).values(
            channel=channel, owner=self.owner, lease_until=until, ready_at=EPOCH,
            tokens=float(self.pace.burst), tokens_at=now, delay_s=0.0,
        )  # fmt: skip
        stmt = stmt.on_conflict_do_update(
            index_elements=[lanes.c.channel],
            set_={"owner": self.owner, "lease_until": until},
            where=and_(lanes.c.lease_until <= now, lanes.c.ready_at <= now),
        )
        # RETURNING, not rowcount: drivers report -1 for an upsert's rowcount.
        return c.execute(stmt.returning(lanes.c.channel)).first() is not None  # type: ignore[attr-defined]

    def renew(self, claim: Claim) -> bool:
        """Extend the lease before an irreversible step (a post); False if another replica took the lane over."""
        now = utcnow()
        with self.engine.begin() as c:
            n = c.execute(
                update(lanes)
                .where(
                    lanes.c.channel == claim.channel, lanes.c.owner == self.owner, lanes.c.lease_until > now
                )
                .values(lease_until=now + self.lease)
            ).rowcount
        return n == 1

    def heartbeat(self) -> None:
        """Extend every lease this replica holds (a long LLM call, a slow Slack): a replica that dies stops
        renewing, and its work is taken over once the lease runs out."""
        now = utcnow()
        with self.engine.begin() as c:
            c.execute(
                update(lanes)
                .where(lanes.c.owner == self.owner, lanes.c.lease_until > now)
                .values(lease_until=now + self.lease)
            )
            c.execute(
                update(tickets)
                .where(tickets.c.lease_owner == self.owner, tickets.c.lease_until > now)
                .values(lease_until=now + self.lease)
            )

    def release(
        self, claim: Claim, sent: int = 1, failed_for: float | None = None, failed: bool = False
    ) -> float:
        """Give the lane back. `sent` messages spend Slack's per-channel tokens; a failure makes the channel
        wait `failed_for` (Retry-After) or a doubling backoff. Returns the seconds the lane now waits."""
        now = utcnow()
        with self.engine.begin() as c:
            row = c.execute(select(lanes).where(lanes.c.channel == claim.channel)).mappings().first()
            if row is None or row["owner"] != self.owner:
                return 0.0  # the lease ran out and another replica holds it: its pace counts
            elapsed = max(0.0, (now - aware(row["tokens_at"])).total_seconds())
            tokens = min(float(self.pace.burst), row["tokens"] + elapsed * self.pace.per_s) - sent
            wait = -tokens / self.pace.per_s if tokens < 0 else 0.0
            delay = 0.0
            if failed:
                delay = min(max(row["delay_s"] * 2, 1.0), self.pace.backoff_max_s)
                wait = max(wait, failed_for if failed_for is not None else delay)
            c.execute(
                update(lanes)
                .where(lanes.c.channel == claim.channel)
                .values(owner=None, lease_until=EPOCH, ready_at=now + timedelta(seconds=wait), tokens=tokens,
                        tokens_at=now, delay_s=delay)
            )  # fmt: skip
        return wait

    # ---- claims -----------------------------------------------------------------------------------------------
    def claim(self, announce_every_s: float) -> Claim | None:
        """The next piece of posting work this replica may do, its lane leased; None if nothing is ready."""
        return (
            self._claim_post(urgent_only=True) or self._claim_announce(announce_every_s) or self._claim_post()
        )

    def _claim_post(self, urgent_only: bool = False) -> Claim | None:
        now = utcnow()
        ready = and_(
            tickets.c.status.in_([s.value for s in WAITING]),
            or_(tickets.c.not_before.is_(None), tickets.c.not_before <= now),
        )
        if urgent_only:
            ready = and_(ready, tickets.c.priority == Priority.URGENT)
        order = (tickets.c.priority, tickets.c.created_at, tickets.c.key)
        with self.engine.begin() as c:
            candidate = c.execute(
                select(tickets.c.channel)
                .where(ready, self._free(tickets.c.channel, now))  # type: ignore[arg-type]
                .order_by(*order)
                .limit(1)
                .with_for_update(skip_locked=True, of=tickets)
            ).scalar()
            if candidate is None or not self._take(c, candidate, now):
                return None
            # The lane is ours: its head now (an older ticket may have been locked by a rival claimer).
            key = c.execute(
                select(tickets.c.key).where(ready, tickets.c.channel == candidate).order_by(*order).limit(1)
            ).scalar()
        claim = Claim(Job.POST, key or "", candidate)
        if key is None:
            self.release(claim, sent=0)
            return None
        return claim

    def _claim_announce(self, every_s: float) -> Claim | None:
        now = utcnow()
        parent, member = tickets.alias("parent"), tickets.alias("member")
        due = or_(parent.c.announced_at.is_(None), parent.c.announced_at <= now - timedelta(seconds=every_s))
        with self.engine.begin() as c:
            found = c.execute(
                select(parent.c.key, parent.c.channel)
                .join(member, member.c.parent_key == parent.c.key)
                .where(
                    member.c.status.in_([TicketState.GROUPED.value, TicketState.ANNOUNCING.value]),
                    parent.c.message_ts.is_not(None),
                    due,
                    self._free(parent.c.channel, now),  # type: ignore[arg-type]
                )
                .order_by(parent.c.created_at)
                .limit(1)
            ).first()
            if found is None or not self._take(c, found.channel, now):
                return None
            c.execute(update(tickets).where(tickets.c.key == found.key).values(announced_at=now))
        return Claim(Job.ANNOUNCE, found.key, found.channel)

    def waiting(self) -> int:
        with self.engine.connect() as c:
            n = c.execute(select(func.count()).where(tickets.c.status.in_([s.value for s in WAITING])))
            return int(n.scalar() or 0)

    def later(self, key: str, seconds: float) -> None:
        """Try this ticket again in `seconds` (a reply whose post is not out yet, an LLM edit that failed)."""
        with self.engine.begin() as c:
            c.execute(
                update(tickets)
                .where(tickets.c.key == key)
                .values(not_before=utcnow() + timedelta(seconds=seconds), lease_owner=None, lease_until=None)
            )

    # ---- the LLM edit pass ------------------------------------------------------------------------------------
    def claim_edit(self) -> str | None:
        """A posted ticket whose LLM edit nobody is doing, leased to this replica; None if there is none."""
        now = utcnow()
        free = and_(
            tickets.c.status == TicketState.POSTED.value,
            or_(tickets.c.lease_until.is_(None), tickets.c.lease_until <= now),
            or_(tickets.c.not_before.is_(None), tickets.c.not_before <= now),
        )
        with self.engine.begin() as c:
            key = c.execute(
                select(tickets.c.key)
                .where(free)
                .order_by(tickets.c.priority, tickets.c.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).scalar()
            if key is None:
                return None
            n = c.execute(
                update(tickets)
                .where(tickets.c.key == key, free)
                .values(lease_owner=self.owner, lease_until=now + self.lease)
            ).rowcount
        return key if n == 1 else None

    def edits_waiting(self) -> int:
        with self.engine.connect() as c:
            n = c.execute(select(func.count()).where(tickets.c.status == TicketState.POSTED.value))
            return int(n.scalar() or 0)
