"""A model file replaced by many writers at once (replicas or trainings sharing a data dir) is always whole."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pytest

from bot.config import Settings
from bot.fileio import replace_atomically
from bot.taxonomy import Taxonomy
from bot.triage.learned import LearnedModel, load, save, taxonomy_key


def _model(tax: Taxonomy, n: int) -> LearnedModel:
    # Large enough that a write takes a while: fallback text stands in for the fitted parts.
    return LearnedModel(taxonomy_key(tax), None, {}, {"severity": "x" * 200_000}, n_history=n)  # type: ignore[arg-type]


def _save_in_process(path: str, n: int) -> None:
    tax = Taxonomy.load(Settings().taxonomy_path)
    for _ in range(5):
        save(_model(tax, n), Path(path))


def test_concurrent_saves_from_threads_and_processes_leave_one_whole_model(tmp_path: Path) -> None:
    tax = Taxonomy.load(Settings().taxonomy_path)
    path = tmp_path / "models" / "replicas-genai.joblib"
    errors: list[BaseException] = []

    def saver(n: int) -> None:
        try:
            for _ in range(5):
                save(_model(tax, n), path)
        except BaseException as e:  # a failed rename or a half file is what this test looks for
            errors.append(e)

    threads = [threading.Thread(target=saver, args=(n,)) for n in range(8)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_save_in_process, args=(str(path), 100 + n)) for n in range(3)]
    for t in (*threads, *procs):
        t.start()
    for t in (*threads, *procs):
        t.join(120)
    assert not errors, errors
    assert all(p.exitcode == 0 for p in procs)
    model = load(path, tax)
    assert model.n_history in {*range(8), 100, 101, 102}
    assert model.fallback["severity"] == "x" * 200_000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def broken(tmp: Path) -> None:
        tmp.write_bytes(np.zeros(10).tobytes())
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(path, broken)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
