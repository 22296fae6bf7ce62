"""Incident storms: one outage pages many times. A new ticket this similar to an incident already posted in the
same channel, while that incident is still active, joins it instead of getting a post of its own."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass
class OpenIncident:
    key: str
    channel: str
    service: str | None
    vector: np.ndarray  # unit-length embedding of the posted (redacted) ticket text
    last_seen: float  # epoch seconds of its newest ticket: a storm stays open while tickets keep coming


class StormGrouper:
    def __init__(self, similarity: float, window_s: float) -> None:
        self.similarity = similarity
        self.window_s = window_s
        self._open: dict[str, OpenIncident] = {}
        self._lock = threading.Lock()

    def match(self, channel: str, service: str | None, vector: np.ndarray, now: float) -> str | None:
        """The open incident this ticket belongs to, if any (its window is extended)."""
        with self._lock:
            self._expire(now)
            best, best_score = None, self.similarity
            for inc in self._open.values():
                if inc.channel != channel or (service and inc.service and service != inc.service):
                    continue
                score = float(np.dot(inc.vector, vector))
                if score >= best_score:
                    best, best_score = inc, score
            if best is None:
                return None
            best.last_seen = max(best.last_seen, now)
            return best.key

    def open(self, key: str, channel: str, service: str | None, vector: np.ndarray, now: float) -> None:
        with self._lock:
            self._open[key] = OpenIncident(key, channel, service, vector, now)

    def close(self, key: str) -> None:
        with self._lock:
            self._open.pop(key, None)

    def _expire(self, now: float) -> None:
        for key in [k for k, inc in self._open.items() if now - inc.last_seen > self.window_s]:
            del self._open[key]

    def __len__(self) -> int:
        return len(self._open)
