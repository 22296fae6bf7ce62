"""Retrieval: the top-k past incidents most similar to a ticket, with how each was fixed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from bot.models import HistoricalIncident, SimilarIncident
from bot.store.embeddings import get_embedder
from bot.store.vectors import Hit, VectorStore

OVERFETCH = 3  # candidates per wanted result, so near-duplicates can be dropped and k still reached
MAX_CANDIDATES = 400


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
        source=inc.source,
    )


SAME_INCIDENT = timedelta(hours=1)


def same_incident(a: HistoricalIncident, b: HistoricalIncident) -> bool:
    """One incident imported from two tools (a PagerDuty incident and the Jira ticket opened for it): different
    sources, the same title, opened within the hour. Both records are kept; retrieval shows it once."""
    title = _words(a.title)
    return (
        a.source != b.source
        and bool(title)
        and title == _words(b.title)
        and abs(a.created_at - b.created_at) <= SAME_INCIDENT
    )


def _words(title: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", title.lower()))


def drop_near_duplicates(hits: list[Hit], threshold: float) -> list[Hit]:
    """Keep a hit only if it is not (almost) the same text as a better one already kept, nor the same incident
    from another source (`same_incident`). Within a group of duplicates, one that records how it was fixed
    replaces one that does not."""
    kept: list[Hit] = []
    for h in hits:
        dup = next(
            (
                i
                for i, k in enumerate(kept)
                if float(np.dot(h.embedding, k.embedding)) >= threshold
                or same_incident(h.incident, k.incident)
            ),
            None,
        )
        if dup is None:
            kept.append(h)
        elif not kept[dup].incident.resolution.strip() and h.incident.resolution.strip():
            kept[dup] = h
    return kept


@dataclass
class Retrieved:
    shown: list[SimilarIncident]  # for the engineer: distinct, similar enough, enough of them with a fix
    neighbours: list[SimilarIncident] = field(default_factory=list)  # the plain top k: what the vote counts
    query: np.ndarray | None = None  # the ticket's one embedding, reused by the classifiers


def retrieve_all(
    store: VectorStore,
    text: str,
    *,
    k: int,
    exclude_ids: tuple[str, ...] = (),
    min_score: float = 0.0,
    near_duplicate: float = 0.97,
    min_with_fix: int = 0,
    service: str | None = None,
    before: datetime | None = None,
    visible_at: datetime | None = None,
    query: np.ndarray | None = None,
) -> Retrieved:
    if query is None:
        query = get_embedder().embed([text])[0]  # once, however often the net is widened
    n = k * OVERFETCH
    plain: list[SimilarIncident] | None = None
    while True:
        hits = store.search(
            query, n, service=service, before=before, visible_at=visible_at, exclude_ids=exclude_ids
        )
        plain = plain if plain is not None else [_to_similar(h) for h in hits[:k]]
        hits = [h for h in hits if h.score >= min_score]
        kept = drop_near_duplicates(hits, near_duplicate)
        fixed = [h for h in kept if h.incident.resolution.strip()]
        # Stock status-page texts make many near-identical records, and many records say nothing about the
        # fix: widen the net until k distinct incidents, enough of them with a fix, are in hand.
        enough = len(kept) >= k and len(fixed) >= min(min_with_fix, k)
        if enough or len(hits) < n or n >= MAX_CANDIDATES:  # fewer hits than asked for: that was all of it
            return Retrieved([_to_similar(h) for h in pick(kept, fixed, k, min_with_fix)], plain, query)
        n = min(n * 4, MAX_CANDIDATES)


def pick(kept: list[Hit], fixed: list[Hit], k: int, min_with_fix: int) -> list[Hit]:
    """The k most similar, except that up to `min_with_fix` slots go to the most similar incidents that
    record how they were fixed: an engineer needs the fixes, not only the look-alikes."""
    chosen = {id(h): h for h in fixed[: min(min_with_fix, k)]}
    for h in kept:
        if len(chosen) >= k:
            break
        chosen.setdefault(id(h), h)
    return sorted(chosen.values(), key=lambda h: h.score, reverse=True)
