"""One import: an importer's pages, each upserted into the history before its checkpoint moves on, so an
interrupted import resumes at the first page not written, and a record already stored as it is now is not
written (nor embedded) again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, Field

from bot.intake.importers.base import Importer, ImportOptions, Skipped
from bot.intake.importers.checkpoint import Checkpoints
from bot.models import HistoricalIncident
from bot.store.vectors import VectorStore


class Outcome(StrEnum):
    IMPORTED = "imported"  # new, or changed since the last import
    UNCHANGED = "unchanged"  # stored already, as it is now
    DUPLICATE = "duplicate"  # the same id earlier in this run (a page shifted by new incidents)
    SKIPPED = "skipped"


class ImportReport(BaseModel):
    source: str
    resumed_from: str | None = None
    counts: dict[Outcome, int] = Field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    skipped: list[Skipped] = Field(default_factory=list)

    def reasons(self) -> Counter[str]:
        return Counter(s.reason for s in self.skipped)


def kept(rec: HistoricalIncident, stored: HistoricalIncident) -> HistoricalIncident:
    """The source's record with what the bot added to the stored one since: the LLM's pre-labels, and the labels an
    engineer gave (`labelled_by`), which win over the source's for the fields they set. A re-import never undoes
    them."""
    update: dict[str, object] = {}
    if stored.llm_labels is not None and rec.llm_labels is None:
        update["llm_labels"] = stored.llm_labels
    if stored.labelled_by and not rec.labelled_by:
        update["labelled_by"] = stored.labelled_by
        update["labels"] = {**rec.labels, **stored.labels}
    return rec.model_copy(update=update) if update else rec


def _same(a: HistoricalIncident, b: HistoricalIncident) -> bool:
    return a.model_dump(mode="json", exclude={"raw"}) == b.model_dump(mode="json", exclude={"raw"})


def run_import(
    importer: Importer,
    options: ImportOptions,
    store: VectorStore,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    since = options.since.isoformat() if options.since else ""
    checkpoints = Checkpoints(
        options.settings.data_dir, importer.name, f"{store.name}|{since}|{options.path or ''}"
    )
    cursor = checkpoints.load()
    report = ImportReport(source=importer.name, resumed_from=cursor)
    seen: set[str] = set()  # ids only: bounded by the source's size, not its text
    for page in importer.pages(options, cursor):
        fresh: dict[str, HistoricalIncident] = {}
        for rec in page.records:
            if isinstance(rec, Skipped):
                report.counts[Outcome.SKIPPED] += 1
                report.skipped.append(rec)
            elif rec.id in seen or rec.id in fresh:
                report.counts[Outcome.DUPLICATE] += 1
            else:
                fresh[rec.id] = rec
        stored = {i.id: i for i in store.get(list(fresh))} if fresh else {}
        fresh = {i: kept(r, stored[i]) if i in stored else r for i, r in fresh.items()}
        write = [r for r in fresh.values() if not (r.id in stored and _same(r, stored[r.id]))]
        report.counts[Outcome.UNCHANGED] += len(fresh) - len(write)
        if write:
            report.counts[Outcome.IMPORTED] += store.upsert(write)
        seen.update(fresh)
        checkpoints.save(page.next_cursor)
        if progress:
            progress(len(page.records))
    return report
