"""A fresh install: the classifier's first training comes before the first draft, and nothing aborts at exit.

Before: `incibot triage --no-llm` on a fresh data dir drafted "Other 0%" on every field (the training ran in a
daemon thread), then died at exit with the thread in native code (exit 134), and never saved the model. The CLI
itself, in a process of its own: tests/test_cli.py::test_triage_text_seeds_demo_history_trains_and_exits_cleanly.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from bot.models import HistoricalIncident
from bot.taxonomy import Taxonomy
from bot.triage.trainer import Trainer
from tests.helpers import REPO
from tests.triage.test_learned_decision import synthetic, vectors

TICKET = {
    "id": "t1",
    "title": "5xx above 5% on chat-api",
    "text": "Error rate on chat completions rose to 7%.",
    "service": "chat-api",
}


def _source(history: list[HistoricalIncident], vecs: np.ndarray, gate: threading.Event):  # type: ignore[no-untyped-def]
    def read() -> tuple[list[HistoricalIncident], np.ndarray]:
        gate.wait(30)  # a slow history read: the training is still running while the test looks
        return history, vecs

    return read


def test_the_first_posts_wait_for_the_first_training_and_exit_waits_for_the_thread(tmp_path: Path) -> None:
    tax = Taxonomy.load(REPO / "taxonomies" / "genai.yaml")
    history = synthetic(60)
    gate = threading.Event()
    trainer = Trainer(tax, tmp_path / "m.joblib", _source(history, vectors(history), gate))
    assert trainer.wait_first(0)  # nothing under way: no wait
    trainer.request()
    assert "training the classifier (first start)" in trainer.status  # what a post drafted meanwhile says
    assert (
        trainer._thread is not None and not trainer._thread.daemon
    )  # exit joins it: no abort in native code
    assert not trainer.wait_first(0.2)  # still training: a post would wait (bounded)
    gate.set()
    assert trainer.wait_first(60)
    assert trainer.current is not None and (tmp_path / "m.joblib").is_file()
    trainer.join(60)


def test_a_failed_first_training_releases_the_waiting_posts(tmp_path: Path) -> None:
    tax = Taxonomy.load(REPO / "taxonomies" / "genai.yaml")

    def broken() -> tuple[list[HistoricalIncident], np.ndarray]:
        raise RuntimeError("history unreadable")

    trainer = Trainer(tax, tmp_path / "m.joblib", broken)
    trainer.request()
    assert trainer.wait_first(30)  # the posts go on with the vote, and the status says why
    trainer.join(30)
    assert trainer.current is None and "retraining failed" in trainer.status
