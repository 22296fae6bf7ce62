"""The order tickets are posted in: priority first (personal-data exposure), then arrival; per channel, a channel
whose Slack calls fail waits (Retry-After, else doubling backoff) with its tickets parked in their places while
the other channels go on. In memory: the durable record is the SQL store, from which a restart refills it."""

from __future__ import annotations

import itertools
import queue
import threading
import time

Item = tuple[int, int, str | None]  # (priority, arrival, ticket key); key None stops the worker
URGENT, NORMAL = 0, 1


class ChannelBackoff:
    """Per channel: after a Slack failure that channel waits (Retry-After, else 1 s doubling to `max_s`) while
    the others go on; a success clears it."""

    def __init__(self, max_s: float) -> None:
        self.max_s = max_s
        self._until: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._lock = threading.Lock()

    def blocked_for(self, channel: str) -> float:
        return max(0.0, self._until.get(channel, 0.0) - time.monotonic())

    def failed(self, channel: str, retry_after_s: float | None) -> float:
        with self._lock:
            delay = min(self._delay.get(channel, 0.5) * 2, self.max_s)
            self._delay[channel] = delay
            wait = retry_after_s or delay
            self._until[channel] = time.monotonic() + wait
            return wait

    def ok(self, channel: str) -> None:
        with self._lock:
            self._until.pop(channel, None)
            self._delay.pop(channel, None)


class Outbox:
    def __init__(self, backoff_max_s: float) -> None:
        self.backoff = ChannelBackoff(backoff_max_s)
        self._queue: queue.PriorityQueue[Item] = queue.PriorityQueue()
        self._arrivals = itertools.count()
        self._parked: list[tuple[Item, str]] = []  # only the worker thread touches it
        # Keys queued or parked: a ticket is in the outbox once, however often it is put (a restart re-queues
        # what it finds unposted, which may already be queued); duplicates would count against the backlog.
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def put(self, key: str, urgent: bool = False) -> None:
        with self._lock:
            if key in self._keys:
                return
            self._keys.add(key)
            self._queue.put((URGENT if urgent else NORMAL, next(self._arrivals), key))

    def close(self) -> None:
        self._queue.put((-1, 0, None))

    def __len__(self) -> int:
        return self._queue.qsize() + len(self._parked)

    def get(self) -> Item | None:
        """The next item whose channel may be tried, or None after waiting up to a second (idle)."""
        self._unpark()
        waits = [self.backoff.blocked_for(channel) for _, channel in self._parked]
        try:
            item = self._queue.get(timeout=max(0.05, min([1.0, *waits])))
        except queue.Empty:
            return None
        with self._lock:
            self._keys.discard(item[2] or "")
        return item

    def park(self, item: Item, channel: str) -> None:
        """Hold a ticket behind its channel's failing head; it keeps its place for when the channel recovers."""
        with self._lock:
            if item[2] in self._keys:  # put again meanwhile: that copy will come round
                return
            self._keys.add(item[2] or "")
        self._parked.append((item, channel))

    def _unpark(self) -> None:
        if not self._parked:
            return
        waiting = []
        for item, channel in self._parked:
            if self.backoff.blocked_for(channel) > 0:
                waiting.append((item, channel))
            else:
                self._queue.put(item)
        self._parked = waiting
