"""Evaluation datasets: where the records come from, which taxonomy they declare, what counts as relevant."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import PROJECT_ROOT
from bot.intake.files import InputError, read_history
from bot.models import HistoricalIncident, SimilarIncident
from bot.taxonomy import Taxonomy, TaxonomyError
from evals import adapters

DEFAULT_ROOT = PROJECT_ROOT.parent / "shared" / "datasets"
Relevance = Callable[[HistoricalIncident, SimilarIncident], bool]


def _shares(field_name: str) -> Relevance:
    def rel(q: HistoricalIncident, s: SimilarIncident) -> bool:
        return bool(set(q.labels.get(field_name, [])) & set(s.labels.get(field_name, [])))

    return rel


def _cloud_relevance(q: HistoricalIncident, s: SimilarIncident) -> bool:
    """Same root cause where both are labelled, else a shared symptom."""
    if q.labels.get("root_cause") and s.labels.get("root_cause"):
        return _shares("root_cause")(q, s)
    return _shares("symptom")(q, s)


def _status_relevance(q: HistoricalIncident, s: SimilarIncident) -> bool:
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


SPECS: dict[str, tuple[list[str], str, Relevance]] = {
    "genai-status": (["genai-status"], "genai-status", _status_relevance),
    "cloud-labeled": (["azure", "gcp"], "cloud-labeled", _cloud_relevance),
    "azure": (["azure"], "cloud-labeled", _cloud_relevance),
    "gcp": (["gcp"], "cloud-labeled", _cloud_relevance),
    "github-status": (["github-status"], "github-status", _status_relevance),
}


def _records(names: list[str], root: Path) -> Iterator[tuple[str, int, HistoricalIncident]]:
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


def clean_labels(
    ds_name: str, taxonomy: Taxonomy, rows: Iterator[tuple[str, int, HistoricalIncident]]
) -> Dataset:
    """Normalise labels to the taxonomy; a label that is not in it is dropped and reported, never kept."""
    incidents, skipped = [], []
    for path, n, inc in rows:
        labels: dict[str, list[str]] = {}
        for f, values in inc.labels.items():
            if f not in taxonomy.fields:
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
    return Dataset(ds_name, taxonomy, incidents, _status_relevance, "", skipped)


def load(name_or_path: str, root: Path = DEFAULT_ROOT, taxonomy_path: Path | None = None) -> Dataset:
    """A named dataset from ../shared/datasets, or a canonical JSONL file with its taxonomy."""
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
    rows = ((str(path), i, inc) for i, inc in enumerate(read_history(path, "jsonl"), 1))
    ds = clean_labels(path.stem, taxonomy, rows)
    first = next(iter(taxonomy.fields))
    ds.relevance, ds.source = _shares(first), str(path)
    return ds
