"""The history behind its interface: a dict-backed `VectorStore` (testkit) is enough for retrieval and triage, so
nothing outside bot/store/chroma.py depends on Chroma."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.config import Settings
from bot.models import Ticket
from bot.store.chroma import ChromaHistory
from bot.store.vectors import VectorStore
from bot.triage.pipeline import Triager
from bot.triage.retrieval import retrieve_all
from testkit.memory_history import MemoryHistory
from tests.conftest import SMALL_HISTORY, T0, incident

MEMBERS = sorted(n for n in vars(VectorStore) if not n.startswith("_"))


@pytest.fixture
def memory(settings: Settings) -> MemoryHistory:
    m = MemoryHistory(settings)
    m.upsert(SMALL_HISTORY)
    return m


def _shape(method: Callable[..., object]) -> list[tuple[str, object, object]]:
    """A signature without annotations: names, kinds and defaults are what callers rely on."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()]


@pytest.mark.parametrize("cls", [ChromaHistory, MemoryHistory])
def test_both_implementations_have_the_interface_s_signatures(cls: type) -> None:
    assert MEMBERS == ["all", "count", "get", "name", "search", "settings", "upsert"]
    for name in MEMBERS:
        wanted = getattr(VectorStore, name)
        if isinstance(wanted, property):
            continue  # plain attributes, checked on instances below
        assert _shape(getattr(cls, name)) == _shape(wanted), name


def test_the_memory_store_is_a_vector_store(memory: MemoryHistory, store: VectorStore) -> None:
    for s in (memory, store):
        assert isinstance(s, VectorStore)
    assert memory.name == store.name and memory.count() == store.count() == len(SMALL_HISTORY)


def test_the_memory_store_keeps_the_contract(memory: MemoryHistory) -> None:
    memory.upsert([SMALL_HISTORY[0].model_copy(update={"resolution": "new fix"})])
    assert memory.count() == len(SMALL_HISTORY) and memory.get(["h1"])[0].resolution == "new fix"
    assert memory.search("GPU capacity exhausted, customers throttled", 1)[0].incident.id == "h6"
    assert {h.incident.id for h in memory.search("errors", 10, service="anthropic")} == {"h4"}
    assert {h.incident.id for h in memory.search("errors", 10, before=T0 + timedelta(days=3))} == {"h1", "h2"}
    assert {h.incident.id for h in memory.search("errors", 10, since=T0 + timedelta(days=5))} == {"h5", "h6"}
    incs, vecs = memory.all()
    assert len(incs) == len(SMALL_HISTORY) and vecs.shape == (len(SMALL_HISTORY), 384)


def test_retrieval_works_on_any_vector_store(memory: MemoryHistory, store: VectorStore) -> None:
    dup = incident(7, "Elevated error rates on ChatGPT", resolution="duplicate page of h1")
    results = []
    for s in (memory, store):
        s.upsert([dup])
        excluded = retrieve_all(s, "Elevated error rates on ChatGPT", k=4, exclude_ids=("h1",))
        assert "h1" not in {x.id for x in excluded.shown} and "h7" in {x.id for x in excluded.shown}
        r = retrieve_all(s, "Elevated error rates on ChatGPT", k=4)
        assert len({"h1", "h7"} & {x.id for x in r.shown}) == 1  # the same text twice is shown once
        results.append(r)
    in_memory, in_chroma = results  # exact search and Chroma's agree on this small history
    assert [x.id for x in in_memory.neighbours] == [x.id for x in in_chroma.neighbours]
    assert [x.score for x in in_memory.neighbours] == pytest.approx(
        [x.score for x in in_chroma.neighbours], abs=1e-3
    )


def test_a_triage_runs_on_the_memory_store(settings: Settings, memory: MemoryHistory) -> None:
    ticket = Ticket(id="t1", title="ChatGPT returns many 500 errors", service="openai")
    draft = Triager(settings, memory, None).triage(ticket)
    assert draft.kind == "retrieval-only" and draft.similar and draft.similar[0].id in {"h1", "h2"}


def test_the_pipeline_does_not_load_chroma() -> None:
    # Only the factory, when it opens a history, imports the Chroma implementation.
    code = (
        "import sys, bot.triage.pipeline, bot.service, bot.feedback.history_feeder, bot.store.factory; "
        "print('chromadb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
