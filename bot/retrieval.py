"""Retrieval: the top-k past incidents most similar to a ticket, with how each was fixed."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from bot.history import Hit, HistoryStore
from bot.models import SimilarIncident

OVERFETCH = 3  # candidates per wanted result, so near-duplicates can be dropped and k still reached


def _to_similar(hit: Hit) -> SimilarIncident:
    inc = hit.incident
    return SimilarIncident(
        id=inc.id,
        title=inc.title or inc.text[:120],
        score=round(hit.score, 4),
        service=inc.service,
        created_at=inc.created_at,
        link=inc.link,
        resolution=inc.resolution,
        labels=inc.labels,
    )


def drop_near_duplicates(hits: list[Hit], threshold: float) -> list[Hit]:
    """Keep a hit only if it is not (almost) the same text as a better one already kept."""
    kept: list[Hit] = []
    for h in hits:
        if any(float(np.dot(h.embedding, k.embedding)) >= threshold for k in kept):
            continue
        kept.append(h)
    return kept


def retrieve(
    store: HistoryStore,
    text: str,
    *,
    k: int,
    exclude_ids: tuple[str, ...] = (),
    min_score: float = 0.0,
    near_duplicate: float = 0.97,
    service: str | None = None,
    before: datetime | None = None,
) -> list[SimilarIncident]:
    if store.count() == 0:
        return []
    hits = store.search(text, k * OVERFETCH, service=service, before=before, exclude_ids=exclude_ids)
    hits = [h for h in hits if h.score >= min_score]
    return [_to_similar(h) for h in drop_near_duplicates(hits, near_duplicate)[:k]]
