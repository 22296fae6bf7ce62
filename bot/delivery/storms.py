"""Incident storms: one outage pages many times. A new ticket this similar to an incident already posted in the
same channel, while that incident is still active, joins it instead of getting a post of its own.

The open incidents are the posted tickets themselves (their embedding and when their newest ticket came are
stored with them), so every replica groups against the same storms. Matching runs while the replica holds the
channel's lane (bot/delivery/queue.py), so two tickets of one storm are never both posted by racing replicas.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import ColumnElement, Engine, func, select, update

from bot.clock import utcnow
from bot.store.schema import tickets
from bot.store.tickets import TicketState

OPEN = (TicketState.POSTED.value, TicketState.DRAFTED.value)


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


class StormGrouper:
    def __init__(self, engine: Engine, similarity: float, window_s: float) -> None:
        self.engine, self.similarity, self.window = engine, similarity, timedelta(seconds=window_s)

    def _open(self, now: datetime) -> tuple[ColumnElement[bool], ...]:
        return (
            tickets.c.storm_vector.is_not(None),
            tickets.c.status.in_(OPEN),
            func.coalesce(tickets.c.resolved, 0) == 0,
            tickets.c.last_seen >= now - self.window,
        )

    def match(
        self, route: str, service: str | None, vector: np.ndarray, now: datetime | None = None
    ) -> str | None:
        """The open incident in this channel this ticket belongs to, if any (its window is extended)."""
        if self.similarity > 1.0:
            return None
        now = now or utcnow()
        with self.engine.begin() as c:
            rows = c.execute(
                select(tickets.c.key, tickets.c.storm_vector, tickets.c.ticket["service"].as_string()).where(
                    tickets.c.route == route, *self._open(now)
                )
            ).all()
            best, best_score = None, self.similarity
            for key, blob, other in rows:
                if service and other and service != other:
                    continue
                score = float(np.dot(_vector(blob), vector))
                if score >= best_score:
                    best, best_score = key, score
            if best is not None:
                c.execute(update(tickets).where(tickets.c.key == best).values(last_seen=now))
        return best

    @staticmethod
    def opened(vector: np.ndarray, now: datetime | None = None) -> dict[str, object]:
        """The column values that make a posted ticket an open incident (stored with its `posted` state)."""
        return {
            "storm_vector": np.asarray(vector, dtype=np.float32).tobytes(),
            "last_seen": now or utcnow(),
        }

    def vector(self, key: str) -> np.ndarray | None:
        """The embedding stored with a posted ticket, so a later stage (the LLM edit) does not embed it again."""
        with self.engine.connect() as c:
            blob = c.execute(select(tickets.c.storm_vector).where(tickets.c.key == key)).scalar()
        return _vector(blob) if blob else None

    def count(self) -> int:
        """Incidents open for grouping now (on /healthz)."""
        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).where(*self._open(utcnow()))).scalar() or 0)
