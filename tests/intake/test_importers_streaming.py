"""A large source streams: an import holds one page of records at a time, whatever the source's size (the ids seen
are kept, not their text), and an interrupted one resumes at the first page not written."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.config import Settings
from bot.intake.importers import IMPORTERS
from bot.intake.importers.run import Outcome, run_import
from bot.models import HistoricalIncident
from tests.intake.test_importers import options

BODY = "x" * 2_000  # a post-mortem's worth of text per record, so that keeping records would show


class Sink:
    """A history that keeps nothing: what the import itself holds is all that is measured."""

    name = "sink"

    def __init__(self, fail_after: int | None = None, keep_ids: bool = False) -> None:
        self.written = 0
        self.ids: list[str] = []
        self.fail_after, self.keep_ids = fail_after, keep_ids

    def get(self, ids: Sequence[str]) -> list[HistoricalIncident]:
        return []

    def upsert(self, incidents: Sequence[HistoricalIncident], progress: Callable[[int], None] | None = None,
               embeddings: np.ndarray | None = None) -> int:  # fmt: skip
        if self.fail_after is not None and self.written >= self.fail_after:
            raise RuntimeError("history down")
        self.written += len(incidents)
        self.ids += [i.id for i in incidents] if self.keep_ids else []
        return len(incidents)


def postmortems(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"pm-{i:06d}.md").write_text(
            f"---\ndate: 2024-03-01T14:05:00Z\n---\n# Incident {i}\n\n## Summary\nErrors on chat-api {i}. {BODY}\n"
            f"\n## Resolution\nRolled back release {i}.\n"
        )
    return root


def peak_of(settings: Settings, root: Path) -> int:
    sink = Sink()
    tracemalloc.start()
    try:
        report = run_import(IMPORTERS["markdown"], options(settings, path=root), sink)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.counts[Outcome.IMPORTED] == sink.written == len(list(root.glob("*.md")))
    return peak


def test_memory_does_not_grow_with_the_sources_size(settings: Settings, tmp_path: Path) -> None:
    small = peak_of(settings, postmortems(tmp_path / "small", 500))
    large = peak_of(
        settings.model_copy(update={"data_dir": tmp_path / "d2"}), postmortems(tmp_path / "large", 2_500)
    )
    # 2,000 records more, 2 kB of text each: what grows is the ids seen and the file list (a few hundred bytes a
    # record), never the records' text; a page of text is all that is held at once
    assert (large - small) / 2_000 < len(BODY) / 2, (small, large)


def test_an_interrupted_import_resumes_and_writes_nothing_twice(settings: Settings, tmp_path: Path) -> None:
    root = postmortems(tmp_path / "pm", 450)
    s = settings.model_copy(update={"import_page_size": 100})
    first = Sink(fail_after=200, keep_ids=True)
    with pytest.raises(RuntimeError, match="history down"):
        run_import(IMPORTERS["markdown"], options(s, path=root), first)  # type: ignore[arg-type]
    second = Sink(keep_ids=True)
    report = run_import(IMPORTERS["markdown"], options(s, path=root), second)  # type: ignore[arg-type]
    assert report.resumed_from == "pm-000199.md"
    assert first.written == 200 and second.written == 250  # the rest, from the first page not written
    assert sorted(first.ids + second.ids) == sorted(f"markdown:pm-{i:06d}.md" for i in range(450))
