"""The SQL store on real PostgreSQL and the history on a real Chroma server, selected by settings only; schema
versions with Alembic, safe when replicas start at once (the SQLite migrations: test_migrations.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from starlette.testclient import TestClient

from benchmarks.backends import ChromaServer, Postgres, postgres_bin
from bot.config import Settings
from bot.models import Feedback, Ticket
from bot.server import create
from bot.store.factory import open_history
from bot.store.migrations import current, head
from bot.store.sql import Store
from bot.store.vectors import HistoryError
from bot.triage.pipeline import Triager
from testkit.emulators import SlackEmulator
from tests.conftest import SMALL_HISTORY
from tests.helpers import receive

needs_postgres = pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries not installed")


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    server = Postgres()
    yield server
    server.stop()
    server.remove()


@needs_postgres
def test_the_store_works_on_postgres(pg: Postgres) -> None:
    store = Store(pg.database("roundtrip"))
    ticket = {"id": 1, "title": "GPU capacity exhausted", "text": "429s in us-west", "service": "openai"}
    assert receive(store, ticket, "#incidents") == "accepted"
    assert receive(store, ticket, "#incidents") == "duplicate"  # a duplicate delivery
    store.update_ticket("generic:1", status="posted", message_ts="1.0", channel="C1")
    store.add_feedback("generic:1", Feedback(action="correct", user_id="U1", labels={"symptom": ["errors"]}, fix="scaled out"))  # fmt: skip
    row = store.get("generic:1")
    assert row is not None and row.status == "posted" and row.ticket.title == "GPU capacity exhausted"
    incident = store.labelled_incident("generic:1")
    assert (
        incident is not None
        and incident.labels == {"symptom": ["errors"]}
        and "scaled out" in incident.resolution
    )
    assert store.counts() == {"posted": 1}
    assert current(store.engine) == head()


@needs_postgres
def test_replicas_starting_at_once_make_one_schema(pg: Postgres) -> None:
    url = pg.database("race")
    barrier, errors = threading.Barrier(4), []

    def replica() -> None:
        barrier.wait()
        try:
            Store(url)
        except Exception as e:  # pragma: no cover - the assertion below reports it
            errors.append(e)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    engine = create_engine(url)
    assert current(engine) == head()
    assert {"tickets", "feedback", "alembic_version"} <= set(inspect(engine).get_table_names())


@needs_postgres
def test_a_webhook_with_nul_characters_is_stored_on_postgres(pg: Postgres, tmp_path: Path) -> None:
    emu = SlackEmulator()
    try:
        settings = Settings(data_dir=tmp_path, seed_demo_history=False, llm_backend="none",
                            database_url=pg.database("nul"), slack_bot_token="xoxb-test", slack_signing_secret="s",
                            slack_api_url=emu.url)  # fmt: skip
        service, _, server = create(settings)
        payload = {"id": "n\u00001", "title": "Errors\u0000 on chat", "text": "since 14:05\u0000"}
        resp = TestClient(server).post("/webhooks/generic", content=json.dumps(payload),
                                       headers={"content-type": "application/json"})  # fmt: skip
        assert resp.status_code == 202, resp.text
        assert resp.json()["key"] == "generic:n1"
        row = service.store.get("generic:n1")
        assert row is not None and row.ticket.title == "Errors on chat"
    finally:
        emu.close()


def test_history_on_a_chroma_server_and_through_its_outage(tmp_path: Path) -> None:
    chroma = ChromaServer(tmp_path / "chroma")
    try:
        settings = Settings(data_dir=tmp_path / "d", seed_demo_history=False, llm_backend="none",
                            chroma_host="127.0.0.1", chroma_port=chroma.port)  # fmt: skip
        store = open_history(settings)
        store.upsert(SMALL_HISTORY)
        triager = Triager(settings, store, None)
        ticket = Ticket(id="t", title="Elevated 500 errors on ChatGPT")
        assert triager.triage(ticket).similar[0].id == "h1"

        chroma.stop()
        draft = triager.triage(ticket, history_required=False)
        assert draft.similar == [] and any("History store unavailable" in w for w in draft.warnings)
        with pytest.raises(HistoryError):
            triager.triage(ticket)

        chroma.start()  # same data directory, new process (and port)
        settings = settings.model_copy(update={"chroma_port": chroma.port})
        again = Triager(settings, open_history(settings), None).triage(ticket)
        assert again.similar and again.similar[0].id == "h1" and not again.warnings
    finally:
        chroma.stop()


def test_replicas_starting_together_import_the_demo_history_once(tmp_path: Path) -> None:
    """Two replicas on an empty collection: the first imports the demo history, the other finds it there (the
    import itself stands in for the real store here: what is tested is the turn-taking)."""
    from bot.store.demo import seed_if_empty

    class Collection:
        def __init__(self) -> None:
            self.settings = Settings(data_dir=tmp_path, llm_backend="none")
            self.name, self.rows, self.imports = self.settings.collection, 0, 0
            self.lock = threading.Lock()

        def count(self) -> int:
            return self.rows

        def upsert(self, incidents: list[object]) -> int:
            with self.lock:
                self.imports += 1
            time.sleep(0.5)  # a slow import: the other replica would look meanwhile
            self.rows = len(incidents)
            return len(incidents)

    shared, engine = Collection(), Store(f"sqlite:///{tmp_path / 'seed.db'}").engine
    added: list[int] = []
    replicas = [
        threading.Thread(target=lambda: added.append(seed_if_empty(shared, engine))) for _ in range(2)
    ]  # type: ignore[arg-type]
    for t in replicas:
        t.start()
    for t in replicas:
        t.join(timeout=60)
    assert shared.imports == 1 and sorted(added)[0] == 0 and sorted(added)[1] > 0
