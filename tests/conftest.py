from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import PROJECT_ROOT, Settings
from bot.models import HistoricalIncident
from bot.store.factory import open_history
from bot.store.vectors import VectorStore
from testkit.emulators import OpenAIEmulator, SlackEmulator

DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"
needs_datasets = pytest.mark.skipif(
    not DATASETS.is_dir(), reason="../shared/datasets is not beside the checkout"
)


# Tests run on two xdist workers on two cores: one llama.cpp thread per model server (its threads spin-wait, so
# more threads than cores stall each other), and an LLM timeout about outages, not about a busy CI machine (tests
# of the timeout set their own). Also set for the whole run, so module-scoped fixtures see them.
TEST_ENV = {"INCIBOT_LOCAL_THREADS": "1", "INCIBOT_LLM_TIMEOUT_S": "240"}


def pytest_configure(config: pytest.Config) -> None:
    for key in [k for k in os.environ if k.startswith("INCIBOT_")]:
        del os.environ[key]
    os.environ.update(TEST_ENV)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No test may touch the user's real history store or pick up their INCIBOT_* settings.
    for key in list(os.environ):
        if key.startswith("INCIBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INCIBOT_DATA_DIR", str(tmp_path / "data"))
    for key, value in TEST_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", seed_demo_history=False, llm_backend="none")


T0 = datetime(2024, 1, 1, tzinfo=UTC)


def incident(i: int, title: str, text: str = "", **kw: object) -> HistoricalIncident:
    defaults: dict[str, object] = {
        "id": f"h{i}",
        "title": title,
        "text": text,
        "service": "openai",
        "created_at": T0 + timedelta(days=i),
        "resolution": f"Fix {i}: rolled back the change.",
        "labels": {},
    }
    defaults.update(kw)
    return HistoricalIncident.model_validate(defaults)


SMALL_HISTORY = [
    incident(1, "Elevated error rates on ChatGPT", labels={"symptom": ["errors"], "root_cause": ["deployment"],
             "severity": ["sev2"]}),
    incident(2, "Increased 500 errors for GPT-4 API requests", labels={"symptom": ["errors"],
             "root_cause": ["deployment"], "severity": ["sev2"]}),
    incident(3, "ChatGPT unavailable for all users", labels={"symptom": ["unavailability"],
             "root_cause": ["infrastructure"], "severity": ["sev1"]}),
    incident(4, "Slow responses and timeouts for Claude API", service="anthropic",
             labels={"symptom": ["latency"], "root_cause": ["external_traffic"], "severity": ["sev3"]}),
    incident(5, "Image generation with DALL-E returns degraded, blurry images",
             labels={"symptom": ["quality_degradation"], "root_cause": ["deployment"], "severity": ["sev3"]}),
    incident(6, "Rate limit errors (429) for API customers due to GPU capacity",
             labels={"symptom": ["throttling_capacity"], "root_cause": ["infrastructure"], "severity": ["sev2"]}),
]  # fmt: skip


@pytest.fixture
def store(settings: Settings) -> Iterator[VectorStore]:
    s = open_history(settings)
    s.upsert(SMALL_HISTORY)
    yield s


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    """A Slack Web API emulator on 127.0.0.1."""
    emu = SlackEmulator()
    yield emu
    emu.close()


@pytest.fixture
def llm() -> Iterator[OpenAIEmulator]:
    """An OpenAI-compatible endpoint on 127.0.0.1 answering every request with a schema-valid triage answer."""
    from tests.helpers import tool_answer  # tests.helpers imports this module: not at the top

    emu = OpenAIEmulator(lambda request: tool_answer(request))
    yield emu
    emu.close()


@pytest.fixture(scope="module")
def pg() -> Iterator[object | None]:
    """A real PostgreSQL server for the module (None where its binaries are not installed)."""
    from benchmarks.backends import Postgres, postgres_bin

    if postgres_bin() is None:
        yield None
        return
    server = Postgres()
    yield server
    server.stop()
    server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path, pg: object | None) -> object:
    """The SQL store on SQLite, then on a fresh database of the module's PostgreSQL (skipped without one)."""
    import time

    from bot.store.sql import Store

    if request.param == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'incibot.db'}")
    if pg is None:
        pytest.skip("PostgreSQL server binaries not installed")
    return Store(pg.database(f"t{time.time_ns()}"))  # type: ignore[attr-defined]
