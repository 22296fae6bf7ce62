"""A search filtered by service runs exactly in memory (bot/store/exact.py): the same ids and scores as the exact
answer (every vector scored, then filtered) and as Chroma's own `where` filter, kept in step with upserts."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest

from bot.config import Settings
from bot.models import HistoricalIncident
from bot.store.chroma import ChromaHistory
from bot.visibility import visible_from
from tests.conftest import T0, incident

SERVICES = ["chat", "images", "speech"]
N = 240


def _history() -> tuple[list[HistoricalIncident], np.ndarray]:
    rng = np.random.default_rng(7)
    incs = [
        incident(i, f"incident {i}", service=SERVICES[i % 3], created_at=T0 + timedelta(hours=i))
        for i in range(N)
    ]
    vecs = rng.normal(size=(N, 384)).astype(np.float32)
    return incs, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def _build_in_the_foreground(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.store.chroma.BACKGROUND_BUILD", False)


@pytest.fixture
def filled(settings: Settings) -> tuple[ChromaHistory, list[HistoricalIncident], np.ndarray]:
    store = ChromaHistory(settings, "exact-search")
    incs, vecs = _history()
    store.upsert(incs, embeddings=vecs)
    return store, incs, vecs


def _exact(
    incs: list[HistoricalIncident], vecs: np.ndarray, q: np.ndarray, k: int, keep: list[bool]
) -> list[tuple[str, float]]:
    scores = vecs @ (q / np.linalg.norm(q))
    rows = [r for r in np.argsort(-scores, kind="stable") if keep[r]][:k]
    return [(incs[r].id, float(scores[r])) for r in rows]


def _got(hits: list) -> list[tuple[str, float]]:
    return [(h.incident.id, h.score) for h in hits]


def _same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> None:
    assert [i for i, _ in a] == [i for i, _ in b]
    assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)


def test_filtered_search_is_the_exact_filtered_answer(filled) -> None:
    store, incs, vecs = filled
    rng = np.random.default_rng(1)
    settings = store.settings
    delay = timedelta(hours=settings.unresolved_visible_after_h)
    for _ in range(20):
        q = rng.normal(size=384).astype(np.float32)  # not unit length: normalised like Chroma's cosine space
        service = SERVICES[int(rng.integers(3))]
        for k in (1, 5, 30, 200):
            keep = [i.service == service for i in incs]
            _same(_got(store.search(q, k, service=service)), _exact(incs, vecs, q, k, keep))
        since, before = T0 + timedelta(hours=30), T0 + timedelta(hours=150)
        keep = [i.service == service and since <= i.created_at < before for i in incs]
        _same(
            _got(store.search(q, 5, service=service, since=since, before=before)),
            _exact(incs, vecs, q, 5, keep),
        )
        at = T0 + timedelta(hours=100)
        keep = [i.service == service and visible_from(i, delay) < at for i in incs]
        _same(_got(store.search(q, 5, service=service, visible_at=at)), _exact(incs, vecs, q, 5, keep))
        excluded = {h.incident.id for h in store.search(q, 3, service=service)}
        keep = [i.service == service and i.id not in excluded for i in incs]
        _same(_got(store.search(q, 5, service=service, exclude_ids=excluded)), _exact(incs, vecs, q, 5, keep))


def test_filtered_search_matches_chroma_s_own_where_filter(filled) -> None:
    store, incs, vecs = filled
    q = vecs[17] + 0.3 * vecs[40]
    for service in SERVICES:
        res = store.collection.query(query_embeddings=[q], n_results=8, where={"service": service})
        want = [(id_, 1.0 - d) for id_, d in zip(res["ids"][0], res["distances"][0], strict=True)]
        hits = store.search(q, 8, service=service)
        _same(_got(hits), want)
        by_id = {i.id: i for i in incs}
        for h in hits:  # the whole record and its stored vector, as an unfiltered search returns them
            assert h.incident == by_id[h.incident.id]
            assert h.embedding == pytest.approx(vecs[incs.index(by_id[h.incident.id])], abs=1e-6)


def test_the_index_follows_this_process_s_upserts(filled) -> None:
    store, incs, vecs = filled
    q = vecs[0]
    assert store.search(q, 1, service="chat")[0].incident.id == "h0"  # builds the index of "chat"
    assert store.search(q, 1, service="images")[0].incident.id != "h0"
    # a new incident in "chat", the closest to a query of its own
    new = incident(999, "new one", service="chat", created_at=T0)
    r = np.random.default_rng(3).normal(size=384).astype(np.float32)
    store.upsert([new], embeddings=(r / np.linalg.norm(r))[None, :])
    assert store.search(r, 1, service="chat")[0].incident.id == "h999"
    # h0 moves to "images": gone from "chat" at once, found in "images" (built before the move)
    store.upsert([incs[0].model_copy(update={"service": "images"})], embeddings=vecs[:1])
    assert "h0" not in {h.incident.id for h in store.search(q, 200, service="chat")}
    assert store.search(q, 1, service="images")[0].incident.id == "h0"
    # a changed vector replaces the old one
    store.upsert([new], embeddings=-(r / np.linalg.norm(r))[None, :])
    assert store.search(r, 1, service="chat")[0].incident.id != "h999"
    assert store.search(-r, 1, service="chat")[0].incident.id == "h999"


def test_another_process_s_writes_show_after_the_refresh(filled, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, vecs = filled
    q = vecs[3]
    store.search(q, 1, service="chat")
    other = ChromaHistory(store.settings, store.name)  # another writer on the same collection
    other.upsert([incident(1000, "elsewhere", service="chat", created_at=T0)], embeddings=-q[None, :])
    assert store.search(-q, 1, service="chat")[0].incident.id != "h1000"  # not yet: the index is recent
    monkeypatch.setattr("bot.store.chroma.REFRESH_S", 0.0)
    assert store.search(-q, 1, service="chat")[0].incident.id == "h1000"


def test_an_unknown_service_finds_nothing(filled) -> None:
    store, _, vecs = filled
    assert store.search(vecs[0], 5, service="no-such-service") == []


def test_an_index_read_while_this_process_writes_is_not_kept(filled, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, vecs = filled
    get = store.collection.get

    def get_then_write(*args: object, **kw: object) -> object:
        res = get(*args, **kw)
        if kw.get("where"):  # the index's read: an upsert by this process lands right after it
            monkeypatch.setattr(store.collection, "get", get)
            late = incident(2000, "late", service="chat", created_at=T0)
            store.upsert([late], embeddings=-vecs[5][None, :])
        return res

    monkeypatch.setattr(store.collection, "get", get_then_write)
    store.search(vecs[5], 1, service="chat")
    assert store.search(-vecs[5], 1, service="chat")[0].incident.id == "h2000"


def test_the_first_search_goes_to_chroma_while_the_index_is_read(
    filled, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, incs, vecs = filled
    monkeypatch.setattr("bot.store.chroma.BACKGROUND_BUILD", True)
    q = vecs[11]
    want = _exact(incs, vecs, q, 5, [i.service == "images" for i in incs])
    _same(_got(store.search(q, 5, service="images")), want)  # Chroma's where filter (exact at this size)
    for t in threading.enumerate():
        if t.name == "history-index":
            t.join(10)
    assert "images" in store._by_service
    _same(_got(store.search(q, 5, service="images")), want)  # from the index
