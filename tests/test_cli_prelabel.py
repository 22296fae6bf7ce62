"""`incibot history prelabel`: the configured endpoint pre-labels the history (Chroma), the counts per outcome and
the measured weight are printed, and the classifier is retrained; without a capable endpoint it says what it wants."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import Settings
from bot.store.factory import open_history
from testkit.emulators import OpenAIEmulator
from tests.triage.test_prelabels import agreeing, answer, history

runner = CliRunner()


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIEmulator]:
    emu = OpenAIEmulator(answer(agreeing))
    for key, value in {
        "INCIBOT_LLM_BACKEND": "openai",
        "INCIBOT_OPENAI_BASE_URL": emu.url,
        "INCIBOT_OPENAI_MODEL": "emulated",
        "INCIBOT_LLM_RETRIES": "1",
        "INCIBOT_SEED_DEMO_HISTORY": "false",
    }.items():
        monkeypatch.setenv(key, value)
    yield emu
    emu.close()


def test_prelabel_stores_the_llms_labels_apart_and_retrains(endpoint: OpenAIEmulator) -> None:
    open_history(Settings()).upsert(history(60, every=2))  # 30 labelled: enough to train
    endpoint.failures = [(503, {})]
    result = runner.invoke(app, ["history", "prelabel", "--field", "symptom", "-n", "40", "--measure", "20"])
    assert result.exit_code == 0, result.output
    assert (
        "emulated on 'incidents': labelled 39, skipped 0, invalid 0, rejected 0, unavailable 1"
        in result.output
    )
    assert "symptom: 20 LLM pre-labels (emulated) at weight" in result.output  # 19 of 20 measured, 20 to add
    assert "classifier: trained on 60 incidents" in result.output and "LLM pre-labels" in result.output
    stored = open_history(Settings()).all()[0]
    done = [i for i in stored if i.llm_labels is not None]
    assert len(done) == 39 and all(i.llm_labels.model == "emulated" for i in done)  # type: ignore[union-attr]
    again = runner.invoke(app, ["history", "prelabel", "--field", "symptom", "-n", "40", "--measure", "20"])
    assert "labelled 11, skipped 39" in again.output, again.output  # the failed one, then the budget


def test_prelabel_wants_a_capable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for backend, words in (("none", "wants a capable OpenAI-compatible endpoint"), ("local", "--local uses")):
        monkeypatch.setenv("INCIBOT_LLM_BACKEND", backend)
        result = runner.invoke(app, ["history", "prelabel"])
        assert result.exit_code == 2 and words in result.output, result.output
