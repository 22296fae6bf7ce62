"""Two `incibot serve` replicas on one PostgreSQL database and one Chroma server, over HTTP against the Slack
emulator, through faults (the rest of test_replicas.py, in a file of its own so that the two xdist workers share
them): PostgreSQL restarted mid-burst, one replica SIGKILLed mid-burst, and an urgent ticket behind a backlog.
Black-box: webhooks in, emulator calls out."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator

import pytest

from benchmarks.backends import postgres_bin
from benchmarks.serving import deliveries
from bot.config import Settings
from bot.taxonomy import Taxonomy
from testkit.emulators import SlackEmulator
from tests.helpers import wait_until
from tests.replicas import (
    FAST,
    Backends,
    Pair,
    Sender,
    distinct,
    doubled,
    running_backends,
    running_pair,
    start_replicas,
    stop_all,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries not installed"),
]


# One rig per module (tests/replicas.py): each test's tickets have their own ids, and its checks look at those only.
@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    with running_backends(tmp_path_factory.mktemp("replicas")) as b:
        yield b


@pytest.fixture(scope="module")
def emu() -> Iterator[SlackEmulator]:
    e = SlackEmulator()
    yield e
    e.close()


@pytest.fixture(scope="module")
def pair(backends: Backends, emu: SlackEmulator) -> Iterator[Pair]:
    with running_pair(backends, emu) as p:
        yield p


# ---- 3. PostgreSQL restarted mid-burst ------------------------------------------------------------------------
def test_postgres_restarted_mid_burst_503_with_retry_after_then_every_accepted_ticket_posted_once(
    backends: Backends, emu: SlackEmulator, pair: Pair
) -> None:
    payloads = distinct(300, "pg")
    sender = Sender(pair.servers)
    burst = threading.Thread(target=sender.burst, args=(payloads, 30.0))
    burst.start()
    try:
        wait_until(lambda: len(sender.accepted) >= 60, 60, "tickets accepted before the restart")
        backends.pg.stop()
        time.sleep(6.0)
        during = list(sender.statuses)
    finally:
        backends.pg.start()
    burst.join()
    accepted = set(sender.accepted)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: accepted <= set(deliveries(emu)), 60, "every accepted ticket in Slack")
    time.sleep(3.0)
    keys = {f"generic:{p['id']}" for p in payloads}
    dup = doubled(emu, accepted)
    health = [s.http.get("/healthz").status_code for s in pair.servers]
    counts = {s: sender.statuses.count(s) for s in sorted(set(sender.statuses))}
    print(f"\npostgres restart: answers {counts}, 503s while down: {during.count(503)}, "
          f"Retry-After values {sorted({str(v) for v in sender.retry_after})}, "
          f"not posted exactly once: {len(dup)} ({sorted(set(dup.values()))})")  # fmt: skip
    assert set(sender.statuses) <= {202, 503}  # never a 500 (nor a 429 here)
    assert during.count(503) > 0 and all(v and int(v) > 0 for v in sender.retry_after)
    assert accepted == keys  # the senders' retries got every ticket in
    assert dup == {}
    assert health == [200, 200]


# ---- 2. one replica SIGKILLed mid-burst -----------------------------------------------------------------------
def test_sigkill_one_replica_mid_burst_the_other_finishes_its_tickets_exactly_once(
    backends: Backends, emu: SlackEmulator, pair: Pair
) -> None:
    payloads = distinct(300, "kill")
    keys = {f"generic:{p['id']}" for p in payloads}

    def posted() -> set[str]:
        return keys & set(deliveries(emu))

    emu.delay_s = 0.05  # Slack records the post, then answers: the kill can land in between
    try:
        sender = Sender(pair.servers)
        burst = threading.Thread(target=sender.burst, args=(payloads, 10.0))
        burst.start()
        wait_until(lambda: len(posted()) >= 40, 60, "posts before the kill")
        pair.servers[1].kill()
        t_kill = time.monotonic()
        burst.join()
        accepted = set(sender.accepted)
        at_kill = len(accepted - posted())
        # The survivor takes over the dead replica's claimed and waiting tickets once their leases expire.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: accepted <= posted(), 90, "every accepted ticket from the survivor")
        missing = sorted(accepted - posted())
        took = time.monotonic() - t_kill
        pair.servers[1] = start_replicas(backends, emu, "", FAST, n=1, url=pair.url)[0]  # restarted
        with contextlib.suppress(AssertionError):
            wait_until(lambda: accepted <= posted(), 60, "every accepted ticket after the restart")
        time.sleep(5.0)  # more than a lease: anything redone would show by now
    finally:
        emu.delay_s = 0.0
    dup = doubled(emu, accepted)
    print(f"\nkill: {len(accepted)} accepted, {at_kill} unposted at the kill, {len(missing)} still unposted "
          f"{took:.0f} s after the kill with the killed replica down, {len(dup)} not posted exactly once after "
          f"its restart ({sorted(set(dup.values()))})")  # fmt: skip
    assert accepted == keys
    assert at_kill > 0  # the kill really landed mid-burst
    assert (missing, dup) == ([], {})


# ---- 6a. urgent first -------------------------------------------------------------------------------------
PRIVACY_TEXT = "Customer emails and API keys visible in other users' chat completions since the 14:00 deploy."


def test_a_privacy_ticket_behind_500_waiting_is_posted_next(backends: Backends, emu: SlackEmulator) -> None:
    """Urgent first, as an order, not a clock (a loaded CI machine slows both): of the ~500 tickets waiting when
    it arrived, only the few already on their way to Slack are posted before it (FIFO would post all of them first,
    at 2 a second). The seconds are printed; `incibot bench --replicas` measures them."""
    slow = FAST | {"INCIBOT_SLACK_CHANNEL_RATE": "2", "INCIBOT_SLACK_CHANNEL_BURST": "1",
                   "INCIBOT_CHANNEL_ROUTES": json.dumps({"slowsvc": "#slow"})}  # fmt: skip
    tax = Taxonomy.load(Settings(seed_demo_history=False).taxonomy_path)
    assert tax.privacy_match(PRIVACY_TEXT) is not None
    waiting_tickets = distinct(500, "wait", services=["slowsvc"])
    keys = {f"generic:{p['id']}" for p in waiting_tickets}
    servers = start_replicas(backends, emu, "urgent", slow)
    try:
        sender = Sender(servers)
        sender.burst(waiting_tickets, 10.0)
        waiting = len(keys - set(deliveries(emu)))
        urgent = {"id": "privacy-1", "title": "Other users' data in chat completions", "text": PRIVACY_TEXT,
                  "service": "slowsvc"}  # fmt: skip
        assert sender.send(urgent, 0) == 202
        accepted_at = sender.accepted["generic:privacy-1"]
        got = wait_until(lambda: deliveries(emu).get("generic:privacy-1"), 60, "the urgent post")
        posted_at = got[0][0]
        shown = deliveries(emu)
        ahead = sum(1 for k in keys if (d := shown.get(k)) and accepted_at < d[0][0] < posted_at)
    finally:
        stop_all(servers)
    print(f"\nurgent: {waiting} waiting when it arrived; posted {posted_at - accepted_at:.2f} s after it was "
          f"accepted, {ahead} waiting tickets posted before it")  # fmt: skip
    assert waiting >= 300
    assert ahead <= 10
