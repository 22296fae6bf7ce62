"""A fresh install: the classifier's first training comes before the first draft, and nothing aborts at exit.

Before: `incibot triage --no-llm` on a fresh data dir drafted "Other 0%" on every field (the training ran in a
daemon thread), then died at exit with the thread in native code (exit 134), and never saved the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from bot.config import Settings
from bot.models import HistoricalIncident
from bot.store.factory import open_history
from bot.taxonomy import Taxonomy
from bot.triage.trainer import Trainer, trainer_for
from tests.helpers import REPO
from tests.triage.test_learned_decision import synthetic, vectors

TICKET = {
    "id": "t1",
    "title": "5xx above 5% on chat-api",
    "text": "Error rate on chat completions rose to 7%.",
    "service": "chat-api",
}


def test_cli_triage_on_a_fresh_data_dir_trains_first_and_exits_cleanly(tmp_path: Path) -> None:
    ticket = tmp_path / "t.json"
    ticket.write_text(json.dumps(TICKET))
    env = {**os.environ, "INCIBOT_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "bot", "triage", "--ticket", str(ticket), "--no-llm", "--json"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    draft = json.loads(run.stdout)
    sources = {f: d["source"] for f, d in draft["labels"].items()}
    assert "default" not in sources.values(), sources  # learned labels, not "Other 0% from default"
    assert "classifier" in sources.values(), sources
    assert "first use of this history: classifier trained on" in run.stderr
    # saved: the next run loads it instead of training again
    settings = Settings(data_dir=tmp_path / "data")
    trainer = trainer_for(settings, open_history(settings), Taxonomy.load(settings.taxonomy_path))
    assert trainer.load(), trainer.status


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
