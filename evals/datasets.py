"""Evaluation datasets: where the records come from, which taxonomy they declare, what counts as relevant."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import PROJECT_ROOT
from bot.intake.files import InputError, read_history
from bot.models import HistoricalIncident, SimilarIncident
from bot.taxonomy import Taxonomy, TaxonomyError
from evals import adapters

DEFAULT_ROOT = PROJECT_ROOT.parent / "shared" / "datasets"
Relevance = Callable[[HistoricalIncident, HistoricalIncident | SimilarIncident], bool]
# What a case's ticket (and every history record) carries besides its title and text:
# - "published": the fields the source itself published with the incident (a status page's provider and affected
#   components, Google's product name). Where such a field coincides with a label (github-status `component`, GCP's
#   product -> `service_category`), this is what a real ticket has, and what the label is partly read from.
# - "text": title and text only, for every method alike (the classifier reads `service` and `source` too; kNN and
#   the LLM read the text): each label must be read from the words.
TICKET_FIELDS = ("published", "text")


def _shares(field_name: str) -> Relevance:
    def rel(q: HistoricalIncident, s: HistoricalIncident | SimilarIncident) -> bool:
        return bool(set(q.labels.get(field_name, [])) & set(s.labels.get(field_name, [])))

    return rel


def _cloud_relevance(q: HistoricalIncident, s: HistoricalIncident | SimilarIncident) -> bool:
    """Same root cause where both are labelled, else a shared symptom."""
    if q.labels.get("root_cause") and s.labels.get("root_cause"):
        return _shares("root_cause")(q, s)
    return _shares("symptom")(q, s)


def _status_relevance(q: HistoricalIncident, s: HistoricalIncident | SimilarIncident) -> bool:
    """Same provider and a shared component; without components, same provider and severity."""
    if q.service and s.service and q.service != s.service:
        return False
    if q.labels.get("component") and s.labels.get("component"):
        return _shares("component")(q, s)
    return _shares("severity")(q, s)


@dataclass
class Dataset:
    name: str
    taxonomy: Taxonomy
    incidents: list[HistoricalIncident]
    relevance: Relevance
    source: str
    skipped: list[str] = field(default_factory=list)  # one line per dropped label or unscored record
    undated: int = 0  # records dropped: no readable opening time (also listed in `skipped`)
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # merged groups (`merge_duplicates`)
    ticket_fields: str = "published"  # TICKET_FIELDS
    # The records as the dataset has them (with every field), for scoring relevance; `incidents` may lack fields.
    records: dict[str, HistoricalIncident] = field(default_factory=dict)

    def relevant(self, case: HistoricalIncident, retrieved: SimilarIncident) -> bool:
        return self.relevance(self.records.get(case.id, case), self.records.get(retrieved.id, retrieved))


SPECS: dict[str, tuple[list[str], str, Relevance]] = {
    "genai-status": (["genai-status"], "genai-status", _status_relevance),
    "cloud-labeled": (["azure", "gcp"], "cloud-labeled", _cloud_relevance),
    # the same cases, with Google's unlabelled status feed 2016-2022 as bulk history (what a deployed bot would hold)
    "cloud-bulk": (["azure", "gcp", "gcp-feed"], "cloud-labeled", _cloud_relevance),
    "azure": (["azure"], "cloud-labeled", _cloud_relevance),
    "gcp": (["gcp"], "cloud-labeled", _cloud_relevance),
    "github-status": (["github-status"], "github-status", _status_relevance),
}


Record = HistoricalIncident | adapters.Skipped


def _records(names: list[str], root: Path) -> Iterator[tuple[str, int, Record]]:
    for n in names:
        rel, adapter = adapters.DATASETS[n]
        path = root / rel
        if not path.is_file():
            raise InputError(f"dataset file {path} not found")
        try:
            for i, inc in enumerate(adapter(path), 1):
                yield str(path), i, inc
        except (ValueError, KeyError, SyntaxError) as e:
            raise InputError(f"{path}: cannot parse ({type(e).__name__}: {e})") from e


def clean_labels(ds_name: str, taxonomy: Taxonomy, rows: Iterator[tuple[str, int, Record]]) -> Dataset:
    """Normalise labels to the taxonomy; a label that is not in it is dropped and reported, never kept. A record
    without a readable opening time is dropped and reported (a made-up date would put it on the wrong side of the
    time split)."""
    incidents, skipped, undated = [], [], 0
    for path, n, inc in rows:
        if isinstance(inc, adapters.Skipped):
            skipped.append(f"{path} record {n} ({inc.id}): {inc.reason}; dropped")
            undated += 1
            continue
        labels: dict[str, list[str]] = {}
        for f, values in inc.labels.items():
            if f not in taxonomy.label_fields:  # the label fields and the mitigation action
                continue
            good = []
            for v in values:
                norm = taxonomy.normalise(f, v)
                if norm is None:
                    skipped.append(f"{path} record {n} ({inc.id}): unknown {f} value {v!r} dropped")
                elif norm not in good:
                    good.append(norm)
            if good:
                labels[f] = good
        if not labels:
            skipped.append(
                f"{path} record {n} ({inc.id}): no label of {', '.join(taxonomy.fields)}; history only"
            )
        incidents.append(inc.model_copy(update={"labels": labels, "taxonomy": taxonomy.name}))
    return Dataset(ds_name, taxonomy, incidents, _status_relevance, "", skipped, undated)


def same_text(inc: HistoricalIncident) -> str:
    """The triage-time text (title and first update) compared for duplicates: case, spacing and punctuation
    folded, nothing else."""
    return re.sub(r"[\W_]+", " ", inc.body.lower()).strip()


def merge_duplicates(
    incidents: list[HistoricalIncident],
) -> tuple[list[HistoricalIncident], list[dict[str, Any]]]:
    """One record per incident. Two records are the same incident when they come from the same source, their
    times overlap ([created_at, resolved_at], an unresolved one just its opening) and their triage-time text is
    the same (`same_text`): the same report posted twice, or under two products. Near-identical texts that name
    different products or regions are kept apart. A group becomes its earliest record, with the group's latest
    resolution time (its outcome is known once all are resolved) and the labels its other records add for fields it
    lacks; the merged ids and any label disagreement are returned for the report."""
    order = sorted(range(len(incidents)), key=lambda i: (incidents[i].created_at, i))
    parent = list(range(len(incidents)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    texts = [same_text(i) for i in incidents]
    for pos, a in enumerate(order):
        end = incidents[a].resolved_at or incidents[a].created_at
        for b in order[pos + 1 :]:
            if incidents[b].created_at > end:
                break
            if incidents[a].source == incidents[b].source and texts[a] and texts[a] == texts[b]:
                parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(root(i), []).append(i)
    kept, merged = [], []
    for members in sorted(groups.values(), key=lambda g: g[0]):
        first = incidents[members[0]]
        if len(members) == 1:
            kept.append(first)
            continue
        rest = [incidents[i] for i in members[1:]]
        labels = dict(first.labels)
        for other in rest:
            for f, v in other.labels.items():
                labels.setdefault(f, v)
        ends = [i.resolved_at for i in (first, *rest) if i.resolved_at]
        kept.append(
            first.model_copy(
                update={
                    "labels": labels,
                    "resolved_at": max(ends) if ends else None,
                    "resolution": first.resolution or next((o.resolution for o in rest if o.resolution), ""),
                    "later_text": first.later_text or next((o.later_text for o in rest if o.later_text), ""),
                }
            )
        )
        conflicts: dict[str, dict[str, list[str]]] = {}
        for f in sorted({f for i in (first, *rest) for f in i.labels}):
            values = {i.id: i.labels[f] for i in (first, *rest) if f in i.labels}
            if len({tuple(v) for v in values.values()}) > 1:
                conflicts[f] = values
        merged.append({"kept": first.id, "merged": [i.id for i in rest], "label_conflicts": conflicts})
    return kept, merged


def load(
    name_or_path: str,
    root: Path = DEFAULT_ROOT,
    taxonomy_path: Path | None = None,
    merge: bool = True,
    ticket_fields: str = "published",
) -> Dataset:
    """A named dataset from ../shared/datasets, or a canonical JSONL file with its taxonomy; with `merge`, one record
    per incident (`merge_duplicates`, before any split: twins on both sides of it would score each other);
    `ticket_fields` (TICKET_FIELDS) says which fields besides title and text every record keeps."""
    if ticket_fields not in TICKET_FIELDS:
        raise InputError(f"--ticket-fields {ticket_fields!r}: use one of {', '.join(TICKET_FIELDS)}")
    ds = _load(name_or_path, root, taxonomy_path)
    if merge:
        ds.incidents, ds.duplicates = merge_duplicates(ds.incidents)
    ds.records = {i.id: i for i in ds.incidents}
    ds.ticket_fields = ticket_fields
    if ticket_fields == "text":
        # History too: the classifier trains on the fields it will be given. `source` is the same for every record
        # of a status page; for cloud-labeled it names the provider, which the text names as well.
        blank = {"service": None, "component": None, "source": "eval"}
        ds.incidents = [i.model_copy(update=blank) for i in ds.incidents]
    return ds


def _load(name_or_path: str, root: Path, taxonomy_path: Path | None) -> Dataset:
    if name_or_path in SPECS:
        parts, tax_name, relevance = SPECS[name_or_path]
        taxonomy = adapters.dataset_taxonomy(tax_name)
        ds = clean_labels(name_or_path, taxonomy, _records(parts, root))
        ds.relevance, ds.source = relevance, ", ".join(str(root / adapters.DATASETS[p][0]) for p in parts)
        return ds
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError(f"no dataset named {name_or_path!r} and no such file (names: {', '.join(SPECS)})")
    if taxonomy_path is None:
        raise TaxonomyError(f"{path}: a canonical JSONL dataset needs --taxonomy FILE (its label taxonomy)")
    taxonomy = Taxonomy.load(taxonomy_path)
    rows = (
        (
            str(path),
            i,
            inc if "created_at" in inc.model_fields_set else adapters.Skipped(inc.id, "no created_at"),
        )
        for i, inc in enumerate(read_history(path, "jsonl"), 1)
    )  # a record without its time would be dated now by the model's default
    ds = clean_labels(path.stem, taxonomy, rows)
    first = next(iter(taxonomy.fields))
    ds.relevance, ds.source = _shares(first), str(path)
    return ds
