"""The eval of the recommended mitigation action: per method, top-1 and top-3 accuracy against each case's own action
(its labels, else what its resolution text says was done: `bot.triage.mitigation`), ECE of the top action's
confidence, accuracy when confident and coverage, and the conformal sets' empirical coverage and mean size.

Methods: `majority` (the most common actions of the incidents visible at the case), `knn` (the neighbours' mapped
fixes, as the draft's vote), `classifier` / `combined` (the draft's hypotheses). A case whose action is unknown (no
label, no fix sentence) is not scored. The case's own action is only ever the answer key: what the bot sees of
the history goes through the harness's visibility rule.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bot.models import HistoricalIncident, MitigationHypotheses
from bot.taxonomy import MITIGATION, Taxonomy
from evals import metrics

TOP = 3
# Fewer cases with a known action than this: the targets are reported but not judged (a 95% interval on a rate from
# 20 cases spans about +-0.2, wider than every margin the targets ask for).
ENOUGH = 30
ACTION_METHODS = ("majority", "knn", "classifier", "combined")


def with_vocabulary(tax: Taxonomy, default_path: Path) -> tuple[Taxonomy, str]:
    """The dataset's taxonomy with a mitigation vocabulary: its own, else the default taxonomy's (eval sets bring
    their own taxonomy, mostly without one; its playbooks need not exist), and where it came from."""
    if tax.mitigation is not None:
        return tax, f"{tax.name} (the dataset's taxonomy)"
    default = Taxonomy.load(default_path)
    if default.mitigation is None or MITIGATION in tax.fields:
        return tax, "none"
    return tax.model_copy(update={"mitigation": default.mitigation}), f"{default.name} ({default_path.name})"


def majority_actions(
    actions: dict[str, str | None], history: list[HistoricalIncident], known: Any, t: datetime
) -> dict[str, Any]:
    """The most common actions of the incidents whose outcome was known at `t` (`known(inc, t)`), with the share of
    the first as its confidence."""
    counts = Counter(a for i in history if (a := actions.get(i.id)) and known(i, t))
    total = sum(counts.values())
    ranked = [a for a, _ in counts.most_common(TOP)]
    return {"ranked": ranked, "confidence": counts[ranked[0]] / total if ranked else 0.0, "abstained": False}


def from_votes(votes: dict[str, float]) -> dict[str, Any]:
    ranked = sorted(votes, key=lambda a: -votes[a])[:TOP]
    return {"ranked": ranked, "confidence": votes[ranked[0]] if ranked else 0.0, "abstained": False}


def from_draft(m: MitigationHypotheses) -> dict[str, Any]:
    """The draft's hypotheses: its three likeliest, the top one's calibrated probability, its conformal set."""
    return {
        "ranked": list(m.candidates[:TOP]),
        "confidence": m.confidence,
        "abstained": m.abstained,
        "set": list(m.conformal_set) if m.coverage is not None else None,
        "source": m.source,
    }


def scores(rows: list[tuple[str, dict[str, Any]]], coverage: float) -> dict[str, Any]:
    """One method's scores over (gold action, prediction) pairs."""
    n = len(rows)
    top1 = [bool(p["ranked"]) and p["ranked"][0] == g for g, p in rows]
    top3 = [g in p["ranked"][:TOP] for g, p in rows]
    conf = [float(p["confidence"]) for _, p in rows]
    sel = metrics.selective(top1, [bool(p["abstained"]) for _, p in rows])
    answered = round(sel["coverage"] * n)
    sel["interval"] = metrics.wilson_interval(round(sel["accuracy"] * answered), answered)
    out: dict[str, Any] = {
        "n": n,
        "top1": float(np.mean(top1)),
        "top1_ci": metrics.wilson_interval(sum(top1), n),
        "top3": float(np.mean(top3)),
        "top3_ci": metrics.wilson_interval(sum(top3), n),
        "ece": metrics.ece(conf, top1),
        "ece_ci": metrics.bootstrap_interval(
            lambda ix: metrics.ece([conf[i] for i in ix], [top1[i] for i in ix]), n, 200
        ),
        "selective": sel,
    }
    sets = [(g, p["set"]) for g, p in rows if p.get("set") is not None]
    if sets:
        hit = [g in s for g, s in sets]
        out["conformal"] = {
            "nominal": coverage,
            "n": len(sets),
            "coverage": float(np.mean(hit)),
            "coverage_ci": metrics.wilson_interval(sum(hit), len(hit)),
            "mean_size": float(np.mean([len(s) for _, s in sets])),
            "mean_shown": float(np.mean([min(len(s), TOP) or 1 for _, s in sets])),
            "empty": sum(1 for _, s in sets if not s),
        }
    return out


def summarise(cases: list[Any], methods: list[str], coverage: float, vocabulary: str) -> dict[str, Any]:
    """metrics.json's `action`: per method over the cases whose own action is known, and the targets' verdicts."""
    known = [c for c in cases if c.action_gold]
    per = {
        m: scores([(c.action_gold, c.action[m]) for c in known if m in c.action], coverage)
        for m in methods
        if m in ACTION_METHODS and any(m in c.action for c in known)
    }
    out: dict[str, Any] = {
        "vocabulary": vocabulary,
        "cases": len(cases),
        "with_action": len(known),
        "gold_from": dict(Counter(c.action_source for c in known)),
        "gold_actions": dict(Counter(c.action_gold for c in known).most_common()),
        "methods": per,
    }
    if per:
        out["targets"] = _targets(per, coverage)
    return out


def _targets(per: dict[str, dict[str, Any]], coverage: float) -> dict[str, Any]:
    """The issue's targets for the product's method (combined if run, else classifier), measured against the
    baselines run beside it."""
    m = "combined" if "combined" in per else "classifier"
    s = per.get(m)
    if s is None:
        return {}
    out: dict[str, Any] = {"method": m, "judged": s["n"] >= ENOUGH}
    if "majority" in per:
        out["top3_vs_majority_plus_0.15"] = s["top3"] >= per["majority"]["top3"] + 0.15
    if "knn" in per:
        out["top1_vs_knn_plus_0.1"] = s["top1"] >= per["knn"]["top1"] + 0.1
    out["ece_at_most_0.08"] = s["ece"] <= 0.08
    out["accuracy_when_confident_0.85"] = (
        s["selective"]["coverage"] > 0 and s["selective"]["accuracy"] >= 0.85
    )
    if "conformal" in s:
        out["conformal_within_0.05"] = abs(s["conformal"]["coverage"] - coverage) <= 0.05
    return out


def set_scores(cases: list[Any], method: str, tax: Taxonomy, coverage: float) -> dict[str, Any]:
    """Per single-label field: how often its conformal set (an ordinal field's range) held the gold label, and its
    mean size, on all cases and on those the field abstained on (where the draft shows it)."""
    out: dict[str, Any] = {}
    for f in tax.fields:
        rows = [(c.gold[f][0], c.label_sets[method][f], c.abstained.get(method, {}).get(f, False))
                for c in cases if c.gold.get(f) and f in c.label_sets.get(method, {})]  # fmt: skip
        if not rows:
            continue
        out[f] = {"nominal": coverage}
        for name, part in (("all", rows), ("abstained", [r for r in rows if r[2]])):
            if part:
                hit = [g in s for g, s, _ in part]
                out[f][name] = {"n": len(part), "coverage": float(np.mean(hit)),
                                "coverage_ci": metrics.wilson_interval(sum(hit), len(hit)),
                                "mean_size": float(np.mean([len(s) for _, s, _ in part]))}  # fmt: skip
    return out


def markdown_lines(action: dict[str, Any] | None) -> list[str]:
    """summary.md's lines for the action."""
    if not isinstance(action, dict) or not action.get("methods"):
        return []
    lines = [
        f"- mitigation action (vocabulary: {action['vocabulary']}): known for {action['with_action']} of"
        f" {action['cases']} cases (from {', '.join(f'{k} {v}' for k, v in action['gold_from'].items())});"
        " top-1 / top-3 / ECE / accuracy when confident @ coverage / conformal coverage (nominal) and mean size:"
    ]
    for m, s in action["methods"].items():
        sel = s["selective"]
        cell = (
            f"  - {m}: top-1 {s['top1']:.3f} [{s['top1_ci'][0]:.2f}, {s['top1_ci'][1]:.2f}], top-3 {s['top3']:.3f}"
            f" [{s['top3_ci'][0]:.2f}, {s['top3_ci'][1]:.2f}], ECE {s['ece']:.3f},"
            f" {sel['accuracy']:.3f} @ {sel['coverage']:.0%}"
        )
        if c := s.get("conformal"):
            cell += f", set coverage {c['coverage']:.3f} ({c['nominal']:.2f}), size {c['mean_size']:.2f}"
        lines.append(cell + f" (n {s['n']})")
    for m, per in (action.get("label_sets") or {}).items():
        for f, e in per.items():
            if a := e.get("all"):
                ab = e.get("abstained") or {}
                lines.append(
                    f"  - {m}/{f} conformal set ({e['nominal']:.2f}): coverage {a['coverage']:.3f}, size"
                    f" {a['mean_size']:.2f} (n {a['n']})"
                    + (
                        f"; where it abstained {ab['coverage']:.3f}, size {ab['mean_size']:.2f} (n {ab['n']})"
                        if ab
                        else ""
                    )
                )
    if t := action.get("targets"):
        judged = t.get("judged", True)
        lines.append(
            f"  - targets ({t['method']}{'' if judged else f'; too few cases to judge, n < {ENOUGH}'}): "
            + ", ".join(
                f"{k} {'met' if v else 'NOT met'}" for k, v in t.items() if k not in ("method", "judged")
            )
        )
    return lines
