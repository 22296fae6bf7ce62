"""Retrieval on the real embedded Chroma with the real embedding model: the ticket itself and near-duplicates are
left out, and what is shown records how it was fixed."""

from __future__ import annotations

from bot.store.vectors import VectorStore
from bot.triage.retrieval import retrieve_all
from tests.conftest import incident


def test_retrieval_excludes_the_ticket_and_near_duplicates(store: VectorStore) -> None:
    store.upsert([incident(7, "Elevated error rates on ChatGPT", resolution="duplicate page of h1")])
    similar = retrieve_all(store, "Elevated error rates on ChatGPT", k=4, exclude_ids=("h1",)).shown
    ids = [s.id for s in similar]
    assert "h1" not in ids and "h7" in ids
    similar = retrieve_all(store, "Elevated error rates on ChatGPT", k=4).shown
    assert len({"h1", "h7"} & {s.id for s in similar}) == 1  # the same text twice is shown once
    assert all(s.resolution for s in similar)
