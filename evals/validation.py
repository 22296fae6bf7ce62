"""Design choices re-made on the validation split (the 20% of each dataset just older than the test cases), never on
the test cases the README reports.

    python -m evals.validation labels [dataset ...]   # the decision's constants, no LLM
    python -m evals.validation mapper                 # the resolution mapper's threshold, dev rows outside test

`labels` changes one choice at a time from the shipped value, runs `incibot eval --split validation` (majority, knn,
classifier) for each, and prints per dataset the mean over fields of the classifier's accuracy (multi-label: exact
set) and macro-F1, and the plain draft's playbook agreement (the measure `FIXES_WEIGHT` is for). A choice is kept
unless another value is better on the mean over datasets by more than `MARGIN` (smaller differences are within the
noise of a few hundred cases). `mapper` scores the mapper's `min_score` grid on the hand-labelled dev rows whose
incidents are not test cases.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from bot.config import Settings
from bot.triage import classifier, decision, playbook_choice
from bot.triage.playbooks import PlaybookLibrary
from bot.triage.resolutions import ResolutionMapper
from evals import datasets
from evals.harness import EvalConfig, run_eval, select_cases

DATASETS = ("genai-status", "cloud-labeled", "github-status")
MARGIN = 0.01
# (where, name, shipped value, alternatives). `k`: the neighbours retrieved (the vote and the classifier's
# neighbour features); VECTOR_DIMS: principal components of the embedding the classifier reads; MULTI_KEEP: the
# probability at which a further label of a multi-label field is kept; FIXES_WEIGHT: the say of the neighbours'
# fixes in the playbook choice.
CHOICES: list[tuple[Any, str, float, tuple[float, ...]]] = [
    (None, "k", 5, (3, 10)),
    (classifier, "VECTOR_DIMS", 64, (32, 128)),
    (decision, "MULTI_KEEP", 0.5, (0.4, 0.6)),
    (playbook_choice, "FIXES_WEIGHT", 1.9, (1.0, 3.0)),
]


@contextmanager
def _set(module: Any, name: str, value: float) -> Iterator[None]:
    if module is None:
        yield
        return
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def _score(report: dict[str, Any]) -> dict[str, float | None]:
    clf = report["scores"].get("classifier", {})
    pb = report["playbook_agreement"].get("classifier", {})
    return {
        "accuracy": round(sum(s["accuracy"] for s in clf.values()) / len(clf), 4) if clf else None,
        "macro_f1": round(sum(s["macro_f1"] for s in clf.values()) / len(clf), 4) if clf else None,
        "playbook": pb.get("rate"),
        "playbook_n": pb.get("n"),
        "cases": report["cases"],
    }


def labels(names: tuple[str, ...] = DATASETS) -> dict[str, Any]:
    console = Console(stderr=True)
    loaded = {n: datasets.load(n) for n in names}
    out: dict[str, Any] = {}
    for module, name, shipped, others in CHOICES:
        out[name] = {}
        for value in (shipped, *others):
            per = {}
            for n, ds in loaded.items():
                cfg = EvalConfig(
                    methods=("majority", "knn", "classifier"),
                    split="validation",
                    k=int(value) if name == "k" else 5,
                    out=Path("/dev/null"),
                )
                with _set(module, name, value):
                    per[n] = _score(run_eval(ds, Settings(), cfg, console)["report"])
            out[name][str(value)] = per
            console.print(f"{name}={value}: {json.dumps(per)}")
    return out


def mapper() -> dict[str, Any]:
    """The mapper's min_score grid on the dev rows that are not test cases of any dataset."""
    from evals.playbook_agreement import DEV, _rows

    test = {c.id for n in DATASETS for c in select_cases(datasets.load(n), 0.3, None)}
    rows = [r for path in DEV for r in _rows(path) if r["id"] not in test]
    lib = PlaybookLibrary.load(Settings().playbooks_dir)
    out: dict[str, Any] = {"dev_rows_outside_test": len(rows)}
    for min_score in (0.45, 0.5, 0.55, 0.6, 0.65):
        got = ResolutionMapper(lib, min_score=min_score).map_many([r["resolution"] for r in rows])
        agree = sum((m.playbook_id if m else None) == r["playbook"] for m, r in zip(got, rows, strict=True))
        out[str(min_score)] = round(agree / len(rows), 3)
    return out


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "labels"
    result = mapper() if what == "mapper" else labels(tuple(sys.argv[2:]) or DATASETS)
    print(json.dumps(result, indent=1))
