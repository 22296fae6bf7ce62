"""End to end with the real embedded Chroma, the real embedding model and the real bundled local LLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.models import HistoricalIncident
from bot.store.factory import open_history
from bot.taxonomy import Taxonomy
from bot.triage.llm import build_chat_model
from bot.triage.pipeline import Triager
from bot.triage.playbooks import PlaybookLibrary
from evals.adapters import load_dataset, to_genai_labels
from tests.conftest import DATASETS, needs_datasets

pytestmark = [pytest.mark.e2e, needs_datasets]


@pytest.fixture(scope="module")
def real_history(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, list[HistoricalIncident]]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("e2e"), seed_demo_history=False, llm_backend="local")
    incidents = [
        to_genai_labels(i) for n in ("genai-status", "azure", "gcp") for i in load_dataset(n, DATASETS)
    ]
    open_history(settings).upsert(incidents)
    yield settings, incidents


def queries(incidents: list[HistoricalIncident], n: int) -> list[HistoricalIncident]:
    """n GenAI status incidents with a first update, evenly spread over time (none hand-picked); each is
    triaged as a new ticket against the history older than it."""
    genai = sorted(
        (i for i in incidents if i.source == "genai-status" and i.text), key=lambda i: i.created_at
    )
    return [genai[len(genai) * (j + 1) // (n + 1)] for j in range(n)]


def test_real_incident_is_triaged_against_older_history(
    real_history: tuple[Settings, list[HistoricalIncident]],
) -> None:
    settings, incidents = real_history
    store = open_history(settings)
    triager = Triager(settings, store, build_chat_model(settings))
    tax = Taxonomy.load(settings.taxonomy_path)
    playbook_ids = set(PlaybookLibrary.load(settings.playbooks_dir).ids)
    for q in queries(incidents, 3):
        ticket = q.model_copy(update={"labels": {}, "resolution": "", "later_text": ""})
        draft = triager.triage(ticket, before=q.created_at)
        assert draft.kind == "llm" and draft.llm.status in ("ok", "repaired"), draft.llm
        assert draft.llm.prompt_tokens > 0 and draft.llm.completion_tokens > 0
        for field, decision in draft.labels.items():
            assert tax.is_valid(field, decision.label), (field, decision)
            assert 0 <= decision.confidence <= 1
        assert q.id not in {s.id for s in draft.similar}
        assert all(s.created_at is not None and s.created_at < q.created_at for s in draft.similar)
        with_fix = [s for s in draft.similar if s.resolution.strip()]
        assert len(with_fix) >= 3, [s.title for s in draft.similar]
        assert draft.playbook.id in playbook_ids and draft.playbook.steps
        assert draft.triage_step.strip()


def test_cli_triage_with_default_local_model(tmp_path: Path) -> None:
    ticket = tmp_path / "ticket.json"
    ticket.write_text(json.dumps({"id": "INC-1", "title": "Claude API returns 529 overloaded errors",
                                  "text": "Many requests fail with overloaded_error since 09:10 UTC.",
                                  "service": "anthropic"}))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIBOT_")}
    env["INCIBOT_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "triage", "--ticket", str(ticket), "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    draft = json.loads(proc.stdout)
    assert draft["ticket_id"] == "INC-1" and draft["kind"] == "llm"
    assert "demo incidents" in proc.stderr and len(draft["similar"]) == 5
