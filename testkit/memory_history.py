"""A `VectorStore` in a dict: exact cosine search by brute force. It shows what the interface asks of a backend,
and lets a test run the pipeline with no Chroma at all."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import numpy as np

from bot.config import Settings
from bot.models import HistoricalIncident
from bot.store.embeddings import get_embedder
from bot.store.vectors import Hit, embed_text
from bot.visibility import visible_at as seen_by


class MemoryHistory:
    def __init__(self, settings: Settings, collection: str | None = None) -> None:
        self.settings = settings
        self.name = collection or settings.collection
        self._rows: dict[str, tuple[HistoricalIncident, np.ndarray]] = {}

    def count(self) -> int:
        return len(self._rows)

    def upsert(
        self,
        incidents: Sequence[HistoricalIncident],
        progress: Callable[[int], None] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> int:
        if embeddings is None:
            embeddings = get_embedder().embed(
                [embed_text(i, self.settings.max_text_chars) for i in incidents]
            )
        for inc, vec in zip(incidents, embeddings, strict=True):
            self._rows[inc.id] = (inc, np.asarray(vec, dtype=np.float32))
        if progress and incidents:
            progress(len(incidents))
        return len(incidents)

    def get(self, ids: Iterable[str]) -> list[HistoricalIncident]:
        return [self._rows[i][0] for i in ids if i in self._rows]

    def all(self) -> tuple[list[HistoricalIncident], np.ndarray]:
        if not self._rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [inc for inc, _ in self._rows.values()], np.stack([vec for _, vec in self._rows.values()])

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
        vec = get_embedder().embed([query])[0] if isinstance(query, str) else np.asarray(query, np.float32)
        exclude = set(exclude_ids)
        delay = timedelta(hours=self.settings.unresolved_visible_after_h)
        hits = [
            Hit(inc, float(np.dot(vec, emb)), emb)
            for inc, emb in self._rows.values()
            if inc.id not in exclude
            and (not service or inc.service == service)
            and (not since or inc.created_at >= since)
            and (not before or inc.created_at < before)
            and (not visible_at or seen_by(inc, visible_at, delay))
        ]
        return sorted(hits, key=lambda h: h.score, reverse=True)[:k]
