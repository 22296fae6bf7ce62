"""Does any estimate of time to mitigate beat the overall median? `python -m evals.time_to_mitigate DATASET...`

For each case of the harness's time split (`evals.harness.select_cases`) with a known duration (resolved_at -
created_at), each method estimates it from the past incidents visible when the case opened (`Replay`, the one rule
of `bot.visibility`):
- base: every visible past incident (the overall median; what any method has to beat);
- neighbours: the k most similar, by the bot's own retrieval (`Triager.retrieve` with `before`/`visible_at`);
- action: those fixed by the action the neighbours' fixes point to (`bot.triage.mitigation`, `ttm.likely_action`);
- severity: those of the severity the bot decides at triage time (the neighbours' vote);
- service: those of the ticket's service.
`action*` and `severity*` group by the case's own (hindsight) action and severity: upper bounds, never shown.
A method with too few comparable incidents for a case gives the base estimate there (`answered` says how often it
had its own). Scores: MAE of log10 minutes, the share of durations inside the 80% range, and the paired
difference in MAE against base with a bootstrap 95% interval; a method "beats base" when that interval, widened for
the four methods tried (Bonferroni: 98.75%), is below 0 and its range still covers at least 75%. The JSON (`--out`) says which `ttm_estimator` to set: the best method
that beats base, else `none`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from bot.config import Settings
from bot.models import FixSummary, HistoricalIncident, LLMUsage, TimeEstimate
from bot.taxonomy import Taxonomy
from bot.triage.mitigation import MitigationExtractor
from bot.triage.pipeline import Triager
from bot.triage.trainer import Trainer
from bot.triage.ttm import SEVERITY, DurationBook, likely_action
from evals import datasets
from evals.cases import Replay
from evals.harness import eval_store, select_cases

METHODS = ("base", "neighbours", "action", "severity", "service")
HINDSIGHT = ("action*", "severity*")
MIN_COVERAGE = 0.75
BOOTSTRAP = 2000
ALPHA = 0.05 / (len(METHODS) - 1)  # four methods are tried against base: one of them would "win" by chance


class Scored(BaseModel):
    """One method's estimate for one case, in log10 minutes."""

    actual: float
    pred: float
    low: float
    high: float
    own: bool  # the method's own estimate (False: it had too few comparable incidents and gave base)


def _logs(t: TimeEstimate) -> tuple[float, float, float]:
    return float(np.log10(t.minutes)), float(np.log10(t.low)), float(np.log10(t.high))


def actions_of(incidents: list[HistoricalIncident], vocab: Taxonomy) -> dict[str, str | None]:
    """Each incident's action: its labels, else what its resolution text says (`bot.triage.mitigation`)."""
    fixes = MitigationExtractor(vocab).of_incidents(
        [i.labels for i in incidents], [i.resolution for i in incidents]
    )
    return {i.id: (f.action if f else None) for i, f in zip(incidents, fixes, strict=True)}


def run(ds: datasets.Dataset, settings: Settings, k: int, test_fraction: float, limit: int | None,
        split: str = "test") -> dict[str, Any]:  # fmt: skip
    settings = settings.model_copy(update={"retrieval_k": k, "learned_decision": False})
    replay = Replay(True, timedelta(hours=settings.unresolved_visible_after_h))
    cases = select_cases(ds, test_fraction, limit, split)
    vocab = ds.taxonomy if ds.taxonomy.mitigation else Taxonomy.load(settings.taxonomy_path)
    actions = actions_of(ds.incidents, vocab)
    book = DurationBook.from_incidents(ds.incidents, actions)
    known = {r.id: r for r in book.rows}
    incidents = {i.id: i for i in ds.incidents}
    store = eval_store(ds, settings)
    triager = Triager(settings, store, None, taxonomy=ds.taxonomy, trainer=Trainer(ds.taxonomy, None, None))
    scored: dict[str, list[Scored]] = {m: [] for m in (*METHODS, *HINDSIGHT)}
    for case in cases:
        me = known.get(case.id)
        if me is None:
            continue  # no duration to score
        t = case.created_at
        visible = DurationBook(r for r in book.rows if r.id != case.id and replay.known(incidents[r.id], t))
        base = visible.estimate("base")
        if base is None:
            continue
        ticket = case.ticket()
        red = triager.redactor.redact(triager.preparer.text(ticket)).text
        found = triager.retrieve(ticket, red, before=t, visible_at=replay.store_filter(t))
        severity = None
        if SEVERITY in ds.taxonomy.fields:
            usage = LLMUsage(model="none", status="skipped")
            labels = triager.labels.decide(ticket, red, found.neighbours, None, usage, found.query)
            severity = labels[SEVERITY].label
        similar = [s.model_copy(update={"fix": _fix(actions.get(s.id))}) for s in found.neighbours]
        est = {
            "base": base,
            "neighbours": visible.estimate("neighbours", neighbours=[s.id for s in found.neighbours]),
            "action": visible.estimate("action", action=likely_action(similar)),
            "severity": visible.estimate("severity", severity=severity),
            "service": visible.estimate("service", service=ticket.service),
            "action*": visible.estimate("action", action=me.action),
            "severity*": visible.estimate("severity", severity=me.severity),
        }
        actual = float(np.log10(me.minutes))
        for m, e in est.items():
            pred, lo, hi = _logs(e or base)
            scored[m].append(Scored(actual=actual, pred=pred, low=lo, high=hi, own=e is not None))
    return summarise(ds.name, scored, len(cases))


def _fix(action: str | None) -> FixSummary | None:
    return FixSummary(action=action, source="label") if action else None


def summarise(name: str, scored: dict[str, list[Scored]], n_cases: int) -> dict[str, Any]:
    base_err = np.asarray([abs(s.pred - s.actual) for s in scored["base"]])
    out: dict[str, Any] = {"dataset": name, "cases": n_cases, "scored": len(base_err), "methods": {}}
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(base_err), size=(BOOTSTRAP, len(base_err))) if len(base_err) else None
    for m, rows in scored.items():
        if not rows:
            continue
        err = np.asarray([abs(s.pred - s.actual) for s in rows])
        inside = np.asarray([s.low <= s.actual <= s.high for s in rows])
        own = np.asarray([s.own for s in rows])
        diff = err - base_err
        means = diff[idx].mean(axis=1) if idx is not None else np.zeros(1)
        lo, hi, adj_hi = np.quantile(means, [0.025, 0.975, 1 - ALPHA / 2])
        out["methods"][m] = {
            "mae_log10_min": round(float(err.mean()), 3),
            "coverage80": round(float(inside.mean()), 3),
            "answered": round(float(own.mean()), 3),
            "mae_when_answered": round(float(err[own].mean()), 3) if own.any() else None,
            "base_mae_when_answered": round(float(base_err[own].mean()), 3) if own.any() else None,
            "range_width_log10": round(float(np.mean([s.high - s.low for s in rows])), 3),
            "mae_minus_base": round(float(diff.mean()), 3),
            "mae_minus_base_ci95": [round(float(lo), 3), round(float(hi), 3)],
            "beats_base": bool(m != "base" and adj_hi < 0 and inside.mean() >= MIN_COVERAGE),
        }
    usable = [m for m in METHODS if out["methods"].get(m, {}).get("beats_base")]
    best = min(usable, key=lambda m: out["methods"][m]["mae_log10_min"]) if usable else "none"
    out["ttm_estimator"] = best
    return out


def table(r: dict[str, Any]) -> str:
    lines = [
        f"{r['dataset']}: {r['scored']} of {r['cases']} test cases with a duration; ttm_estimator -> {r['ttm_estimator']}",
        f"  {'method':<11} {'MAE':>6} {'cov80':>6} {'answered':>8} {'MAE-base [95% CI]':>26} beats",
    ]
    for m, s in r["methods"].items():
        ci = s["mae_minus_base_ci95"]
        lines.append(
            f"  {m:<11} {s['mae_log10_min']:>6.3f} {s['coverage80']:>6.2f} {s['answered']:>8.2f} "
            f"{s['mae_minus_base']:>+8.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]   {'yes' if s['beats_base'] else 'no'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m evals.time_to_mitigate", description=__doc__.splitlines()[0])
    ap.add_argument(
        "datasets", nargs="+", metavar="DATASET", help="a named dataset or a canonical JSONL file"
    )
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--split", default="test", choices=("test", "validation"))
    ap.add_argument("--taxonomy", type=Path, default=None, help="a canonical JSONL dataset's label taxonomy")
    ap.add_argument("--datasets-root", type=Path, default=datasets.DEFAULT_ROOT)
    ap.add_argument("--out", type=Path, default=Path("eval-results") / "time-to-mitigate")
    a = ap.parse_args(argv)
    settings = Settings()
    a.out.mkdir(parents=True, exist_ok=True)
    for name in a.datasets:
        ds = datasets.load(name, a.datasets_root, a.taxonomy)
        r = run(ds, settings, a.k, a.test_fraction, a.limit, a.split)
        (a.out / f"{ds.name}.json").write_text(json.dumps(r, indent=2), encoding="utf-8")
        print(table(r))


if __name__ == "__main__":
    main(sys.argv[1:])
