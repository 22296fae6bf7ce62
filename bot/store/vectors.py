"""The vector history as the rest of the bot sees it: past incidents with their embeddings, searched by cosine
similarity. `chroma.py` implements it; `factory.py` picks the implementation, so a new backend touches those two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

import numpy as np

from bot.config import Settings
from bot.models import HistoricalIncident


class HistoryError(RuntimeError):
    """The history store cannot be opened or used; the message says what to do."""


@dataclass
class Hit:
    incident: HistoricalIncident
    score: float  # cosine similarity
    embedding: np.ndarray  # unit length: retrieval compares hits by their dot product


def embed_text(incident: HistoricalIncident, max_chars: int) -> str:
    """What is embedded for an incident: what was known at triage time, never the resolution."""
    return incident.body[:max_chars]


@runtime_checkable
class VectorStore(Protocol):
    """One collection of past incidents. Failures of the backend raise `HistoryError` (the pipeline falls back
    on it); vectors are the MiniLM embeddings of `embed_text` (`bot.store.embeddings.get_embedder`)."""

    @property
    def name(self) -> str:
        """The collection: the trainer names its model file after it; only the default one is seeded."""
        ...

    @property
    def settings(self) -> Settings:
        """What it was opened with (seeding reads `seed_demo_history` and the default collection)."""
        ...

    def count(self) -> int: ...

    def upsert(
        self,
        incidents: Sequence[HistoricalIncident],
        progress: Callable[[int], None] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> int:
        """Insert or replace by id; `embeddings` (one row per incident) skip the embedding. Returns how many were
        written; `progress` is told each batch's size."""
        ...

    def get(self, ids: Iterable[str]) -> list[HistoricalIncident]: ...

    def all(self) -> tuple[list[HistoricalIncident], np.ndarray]:
        """Every incident with its stored vector, for training without re-embedding; `([], 0x0)` when empty."""
        ...

    def search(
        self,
        query: str | np.ndarray,
        k: int = 5,
        *,
        service: str | None = None,
        since: datetime | None = None,
        before: datetime | None = None,
        visible_at: datetime | None = None,
        exclude_ids: Iterable[str] = (),
    ) -> list[Hit]:
        """Top-k by cosine similarity, best first, within the filters (`since` inclusive, `before` exclusive) and
        without `exclude_ids`. Fewer than k only when fewer match: retrieval stops widening on that.
        `visible_at` keeps only incidents whose outcome was known strictly before it (`bot.visibility.visible_from`,
        with `settings.unresolved_visible_after_h`): replays of history pass the ticket's opening time."""
        ...


def by_id(store: VectorStore, incident_id: str) -> HistoricalIncident | None:
    """One incident by id; None when it is not (or no longer) in the history. Raises HistoryError."""
    return next((i for i in store.get([incident_id]) if i.id == incident_id), None)
