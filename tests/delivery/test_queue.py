"""The work queue in the database: per-channel lanes shared by replicas (one at a time, urgent first, arrival
order, Slack's pace, backoff, leases that run out), on SQLite and on real PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from bot.delivery.queue import Job, Pace, WorkQueue
from bot.store.sql import Store
from bot.store.tickets import Priority
from tests.helpers import receive

PACE = Pace(per_s=20.0, burst=2, backoff_max_s=1.0)


@pytest.fixture
def store(sql_store: Store) -> Store:
    return sql_store


def add(store: Store, key: str, channel: str, urgent: bool = False) -> None:
    """The ticket "generic:<key>", stored as a webhook's is (the receiver); urgent: its sender rates it sev1."""
    payload = {"id": key, "title": key, **({"severity": "sev1"} if urgent else {})}
    assert receive(store, payload, channel) == "accepted"
    assert store.get(f"generic:{key}").priority == (Priority.URGENT if urgent else Priority.NORMAL)
    time.sleep(0.002)  # distinct arrival times


def test_one_replica_at_a_time_per_channel_urgent_first_then_arrival_order(store: Store) -> None:
    a, b = WorkQueue(store.engine, "a", 30, PACE), WorkQueue(store.engine, "b", 30, PACE)
    for key in ("c1", "c2"):
        add(store, key, "#one")
    add(store, "d1", "#two")
    add(store, "u1", "#one", urgent=True)
    first = a.claim(60)
    assert first is not None and (first.job, first.key, first.channel) == (Job.POST, "generic:u1", "#one")
    other = b.claim(60)  # #one is held by a: b gets the other channel
    assert other is not None and (other.key, other.channel) == ("generic:d1", "#two")
    assert b.claim(60) is None  # nothing else is free
    store.update_ticket("generic:u1", status="posted")
    a.release(first, sent=0)
    nxt = b.claim(60)
    assert nxt is not None and nxt.key == "generic:c1"  # then arrival order


def test_the_lane_keeps_slacks_pace_and_backs_off_after_a_failure(store: Store) -> None:
    q = WorkQueue(store.engine, "a", 30, Pace(per_s=2.0, burst=2, backoff_max_s=1.0))
    for i in range(4):
        add(store, f"t{i}", "#paced")
    waits = []
    for i in range(3):
        claim = q.claim(60)
        assert claim is not None and claim.key == f"generic:t{i}"
        store.update_ticket(claim.key, status="posted")
        waits.append(q.release(claim))
    assert waits[0] == 0.0 and waits[1] == 0.0  # the burst
    assert 0.3 < waits[2] <= 0.5  # then ~1/2 s apart (less what refilled while claiming)
    assert q.claim(60) is None  # paced: not claimable yet
    time.sleep(0.55)
    claim = q.claim(60)
    assert claim is not None and claim.key == "generic:t3"
    assert q.release(claim, sent=0, failed=True, failed_for=0.3) == 0.3  # Slack's Retry-After
    assert q.claim(60) is None
    time.sleep(0.35)
    claim = q.claim(60)
    assert claim is not None and claim.key == "generic:t3"  # the same head, retried: order kept


def test_a_lease_that_runs_out_is_taken_over_and_the_slow_replica_cannot_renew_it(store: Store) -> None:
    # Leases of 2 s: long enough that a busy CI machine does not let one run out between two claims.
    slow, other = WorkQueue(store.engine, "slow", 2.0, PACE), WorkQueue(store.engine, "other", 2.0, PACE)
    add(store, "k1", "#c")
    held = slow.claim(60)
    assert held is not None and other.claim(60) is None
    time.sleep(2.2)  # slow stopped renewing (died, or stuck)
    taken = other.claim(60)
    # the same ticket: its post is looked up, then finished
    assert taken is not None and taken.key == "generic:k1"
    assert slow.renew(held) is False  # the slow one must not post it too
    assert other.renew(taken) is True
    slow.release(held)  # a late release changes nothing
    assert slow.claim(60) is None


def test_replicas_claiming_at_once_never_share_a_channel(store: Store) -> None:
    for i in range(30):
        add(store, f"r{i}", f"#ch{i % 3}")
    held: dict[str, str] = {}
    clash: list[str] = []
    lock = threading.Lock()

    def replica(name: str) -> None:
        q = WorkQueue(store.engine, name, 30, Pace(per_s=1000.0, burst=1000, backoff_max_s=1.0))
        done = 0
        while done < 200:
            done += 1
            try:
                claim = q.claim(60)
            except Exception:  # SQLite: a claim that meets another writer is just tried again
                continue
            if claim is None:
                if not store.count("received"):
                    return
                continue
            with lock:
                if claim.channel in held:
                    clash.append(claim.channel)
                held[claim.channel] = name
            store.update_ticket(claim.key, status="posted")
            with lock:
                del held[claim.channel]
            q.release(claim)

    threads = [threading.Thread(target=replica, args=(f"q{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert clash == [] and store.count("received") == 0


def test_the_llm_edit_is_claimed_by_one_replica_until_its_lease_runs_out(store: Store) -> None:
    # 1.5 s leases: a busy CI machine must not let one run out between two steps of the test.
    a, b = WorkQueue(store.engine, "a", 1.5, PACE), WorkQueue(store.engine, "b", 1.5, PACE)
    add(store, "e1", "#c")
    store.update_ticket("generic:e1", status="posted")
    assert a.claim_edit() == "generic:e1" and b.claim_edit() is None
    a.heartbeat()
    time.sleep(1.0)
    a.heartbeat()  # a long LLM call: still a's
    time.sleep(1.0)
    assert b.claim_edit() is None
    time.sleep(2.0)  # a died
    assert b.claim_edit() == "generic:e1"
    a.later("generic:e1", 1.0)  # a failed edit: tried again later, by anyone
    assert b.claim_edit() is None
    time.sleep(1.25)
    assert b.claim_edit() == "generic:e1"


def test_a_lane_stranded_by_a_database_outage_is_given_back_once_it_answers(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database dies during a post, and the lane cannot be released (still down): the replica's heartbeat would
    renew that lease as long as it lives, so no ticket of the channel would ever post again. The worker gives the
    lane back first thing once the database answers, and the channel's tickets post."""
    from sqlalchemy.exc import DBAPIError

    from bot.delivery.workers import Workers

    down = DBAPIError("claim", {}, ConnectionError("database down"))
    queue = WorkQueue(store.engine, "a", 30, PACE)
    add(store, "t1", "#one")
    posted: list[str] = []

    class Poster:
        fail = True

        def post(self, claim: object) -> int:
            if Poster.fail:
                Poster.fail = False
                raise down
            posted.append(claim.key)  # type: ignore[attr-defined]
            return 1

        announce = post

    class Feeder:
        def retry_pending(self) -> None:
            pass

    workers = Workers(store, queue, Poster(), None, Feeder(), 0.01, 3600)  # type: ignore[arg-type]
    real_release = queue.release
    monkeypatch.setattr(queue, "release", lambda *a, **k: (_ for _ in ()).throw(down))
    with pytest.raises(DBAPIError):
        workers.post_one()  # the post fails and the lane stays leased to "a"
    queue.heartbeat()  # ... and renewed
    with pytest.raises(DBAPIError):
        workers.post_one()  # still down: nothing claimed
    monkeypatch.setattr(queue, "release", real_release)  # the database is back
    assert workers.post_one() is True
    assert posted == ["generic:t1"]
