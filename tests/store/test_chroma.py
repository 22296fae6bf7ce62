"""The history store on the real embedded Chroma with the real embedding model (retrieval on it:
tests/triage/test_retrieval.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config import Settings
from bot.store.factory import open_history
from bot.store.vectors import HistoryError, VectorStore
from tests.conftest import SMALL_HISTORY, T0


def test_search_finds_the_semantically_closest_incident(store: VectorStore) -> None:
    hits = store.search("ChatGPT is returning many server errors", 3)
    assert hits[0].incident.id in {"h1", "h2"} and hits[0].score > hits[-1].score
    assert store.search("GPU capacity exhausted, customers throttled", 1)[0].incident.id == "h6"


def test_upsert_is_idempotent_by_id(store: VectorStore) -> None:
    store.upsert(SMALL_HISTORY)
    assert store.count() == len(SMALL_HISTORY)
    changed = SMALL_HISTORY[0].model_copy(update={"resolution": "new fix"})
    store.upsert([changed])
    assert store.count() == len(SMALL_HISTORY) and store.get(["h1"])[0].resolution == "new fix"


def test_metadata_filters_service_and_time(store: VectorStore) -> None:
    assert {h.incident.id for h in store.search("errors", 10, service="anthropic")} == {"h4"}
    before = {h.incident.id for h in store.search("errors", 10, before=T0 + timedelta(days=3))}
    assert before == {"h1", "h2"}
    since = {h.incident.id for h in store.search("errors", 10, since=T0 + timedelta(days=5))}
    assert since == {"h5", "h6"}


def test_persists_on_disk(settings: Settings, store: VectorStore) -> None:
    assert open_history(settings).count() == len(SMALL_HISTORY)


def test_writes_are_batched(settings: Settings) -> None:
    store = open_history(settings.model_copy(update={"import_batch_size": 2}))
    batches: list[int] = []
    store.upsert(SMALL_HISTORY, progress=batches.append)
    assert batches == [2, 2, 2] and store.count() == 6


def test_the_whole_history_is_read_in_pages(store: VectorStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # one read of a whole large collection fails in the embedded store (too many SQL variables): pages instead
    monkeypatch.setattr("bot.store.chroma.READ_PAGE", 4)
    incs, vecs = store.all()
    assert sorted(i.id for i in incs) == sorted(i.id for i in SMALL_HISTORY) and vecs.shape == (6, 384)
    by_id = dict(zip((i.id for i in incs), vecs, strict=True))
    for hit in store.search(
        "GPU capacity exhausted, customers throttled", 6
    ):  # each vector is its incident's
        assert by_id[hit.incident.id] == pytest.approx(hit.embedding, abs=1e-6)


def test_store_path_that_is_a_file_is_a_clear_error(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "chroma").write_text("not a directory")
    with pytest.raises(HistoryError, match="is a file"):
        open_history(settings)


def test_corrupt_store_is_a_clear_error(settings: Settings) -> None:
    d = settings.chroma_dir
    d.mkdir(parents=True)
    (d / "chroma.sqlite3").write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(HistoryError, match="move it aside"):
        open_history(settings)
