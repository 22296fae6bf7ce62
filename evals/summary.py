"""An eval run's results -> metrics.json's report: scores per method and field, calibration, conformal sets, LLM
validity, playbook fit and agreement, latency; and cases.jsonl."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Settings
from evals import actions, metrics
from evals.cases import (
    EXACT_SET,
    LLM_METHODS,
    METHODS,
    PLAYBOOK_METHODS,
    TOP_IN_GOLD,
    CaseResult,
    EvalConfig,
)
from evals.datasets import Dataset


def _field_scores(ds: Dataset, results: list[CaseResult], method: str, f: str) -> dict[str, Any] | None:
    fld = ds.taxonomy.fields[f]
    rows = [r for r in results if f in r.gold and method in r.pred]
    if not rows:
        return None
    if fld.multi_label:
        gold = [r.gold[f] for r in rows]
        pred = [r.pred[method][f] for r in rows]
        scores = metrics.multi_label(gold, pred)
        scores["accuracy_definition"] = EXACT_SET
        # The looser reading the calibration numbers also use: the first (most confident) label is a gold one.
        top = [bool(p) and p[0] in g for g, p in zip(gold, pred, strict=True)]
        scores["top_in_gold"] = float(np.mean(top))
        scores["top_in_gold_ci"] = metrics.wilson_interval(sum(top), len(top))
        scores["macro_f1_ci"] = metrics.macro_f1_interval(gold, pred, 200)
    else:
        gold1 = [r.gold[f][0] for r in rows]
        pred1 = [(r.pred[method][f] or ["(none)"])[0] for r in rows]
        scores = metrics.single_label(gold1, pred1)
        scores["accuracy_definition"] = TOP_IN_GOLD  # one gold label: the same as the exact set
        scores["macro_f1_ci"] = metrics.macro_f1_interval([[g] for g in gold1], [[p] for p in pred1], 200)
        scores["confusion"] = metrics.confusion(gold1, pred1, [*fld.ids, "(none)"])
        if fld.ordinal:
            known = [(g, p) for g, p in zip(gold1, pred1, strict=True) if p in fld.categories]
            scores["within_one"] = metrics.within_one([g for g, _ in known], [p for _, p in known], fld.ids)
    scores["accuracy_ci"] = metrics.wilson_interval(round(scores["accuracy"] * len(rows)), len(rows))
    return scores


def summarise(ds: Dataset, cfg: EvalConfig, results: list[CaseResult], settings: Settings) -> dict[str, Any]:
    methods = [m for m in METHODS if m in cfg.methods]
    per_rep: dict[int, list[CaseResult]] = {}
    for r in results:
        per_rep.setdefault(r.rep, []).append(r)
    scores: dict[str, dict[str, Any]] = {}
    for m in methods:
        scores[m] = {}
        for f in ds.taxonomy.fields:
            reps = [s for rr in per_rep.values() if (s := _field_scores(ds, rr, m, f))]
            if not reps:
                continue
            best = dict(reps[0])
            if cfg.repeat > 1:
                best["accuracy_over_repeats"] = metrics.mean_spread([s["accuracy"] for s in reps])
                best["macro_f1_over_repeats"] = metrics.mean_spread([s["macro_f1"] for s in reps])
            scores[m][f] = best
    first = per_rep[0]
    # The same scores on the cases whose triage-time text states no cause, fix or end (evals.after_the_fact).
    clean = [r for r in first if not r.hindsight]
    unflagged = {
        m: {f: {k: s[k] for k in ("n", "accuracy", "accuracy_ci", "top_in_gold", "macro_f1") if k in s}
            for f in ds.taxonomy.fields if (s := _field_scores(ds, clean, m, f))}
        for m in methods
    }  # fmt: skip
    calibration = {m: c for m in methods if (c := _calibration(ds, first, m))}
    statuses: dict[str, Counter[str]] = {}
    for r in results:
        for m, s in r.llm_status.items():
            statuses.setdefault(m, Counter())[s] += 1
    validity = {
        m: {"counts": dict(c), "valid_first_try": c["ok"] / sum(c.values()),
            "valid_after_repair": (c["ok"] + c["repaired"]) / sum(c.values())}
        for m, c in statuses.items()
    }  # fmt: skip
    cos = [r.mitigation_cosine for r in first if r.mitigation_cosine is not None]
    rouge = [r.mitigation_rouge_l for r in first if r.mitigation_rouge_l is not None]
    report = {
        "dataset": ds.name,
        "source": ds.source,
        "taxonomy": ds.taxonomy.name,
        "model": triager_model_label(settings, cfg),
        "cases": len(first),
        "split": cfg.split,
        "case_selection": cfg.cases,
        "ticket_fields": ds.ticket_fields,
        "repeat": cfg.repeat,
        "k": cfg.k,
        "history_size": len(ds.incidents),
        "skipped": {"count": len(ds.skipped), "undated": ds.undated, "first": ds.skipped[:20]},
        # records merged into one per incident before the split (evals.datasets.merge_duplicates)
        "duplicates": {
            "groups": len(ds.duplicates),
            "records_merged": sum(len(d["merged"]) for d in ds.duplicates),
            "list": ds.duplicates,
        },
        "scores": scores,
        "after_the_fact": {
            "flagged": len(first) - len(clean),
            "by_kind": dict(Counter(h for r in first for h in r.hindsight)),
            "rule": "evals/after_the_fact.py (precision and recall on hand-checked samples: evals/README.md)",
            "scores_unflagged": unflagged,
        },
        "retrieval": metrics.retrieval([r.relevant for r in first], cfg.k),
        "calibration": calibration,
        # Per method and field: the conformal sets' empirical coverage (nominal `hypothesis_coverage`) and size.
        "label_sets": {
            m: actions.set_scores(first, m, ds.taxonomy, settings.hypothesis_coverage)
            for m in methods
            if any(m in r.label_sets for r in first)
        },
        "llm_validity": validity,
        "playbook_fit": {
            m: _rate([r.playbook_fit[m] for r in first if m in r.playbook_fit])
            for m in PLAYBOOK_METHODS
            if m in methods
        },
        # Per method: with the playbook the real resolution maps to, on the cases where it maps to one.
        "playbook_agreement": {m: _playbook_agreement(first, m) for m in PLAYBOOK_METHODS if m in methods},
        "mitigation": {
            "n": len(cos),
            "cosine": float(np.mean(cos)) if cos else None,
            "rouge_l": float(np.mean(rouge)) if rouge else None,
        },
        "tokens_per_triage": float(np.mean([r.tokens for r in first]))
        if any(r.tokens for r in first)
        else 0.0,
        "latency_s": {
            m: metrics.percentiles([r.latency_s[m] for r in first if m in r.latency_s]) for m in methods
        },
    }
    return {"report": report, "cases": results}


def _rate(ok: list[bool]) -> dict[str, Any]:
    hits = sum(ok)
    return {
        "n": len(ok),
        "rate": hits / len(ok) if ok else None,
        "interval": metrics.wilson_interval(hits, len(ok)),
    }


def _playbook_agreement(rows: list[CaseResult], method: str) -> dict[str, Any]:
    drafted = [r for r in rows if method in r.playbook]
    out = _rate([r.playbook[method] == r.playbook_real for r in drafted if r.playbook_real])
    out["with_resolution"] = sum(r.has_resolution for r in drafted)
    out["chosen"] = dict(Counter(r.playbook[method] for r in drafted).most_common())
    return out


def _calibration(ds: Dataset, rows: list[CaseResult], method: str) -> dict[str, Any]:
    """Per field: ECE, reliability and risk-coverage curves, and accuracy on the labels not abstained from, with
    "right" meaning the top label is a gold one (what the confidence is calibrated to); for multi-label fields the
    same again under `exact_set`, right meaning the exact label set, as in the accuracy table."""
    out: dict[str, Any] = {}
    for f in ds.taxonomy.fields:
        got = [r for r in rows if f in r.gold and f in r.confidence.get(method, {})]
        if not got:
            continue
        conf = [r.confidence[method][f] for r in got]
        abstained = [r.abstained[method][f] for r in got]
        top = [bool(r.pred[method][f]) and r.pred[method][f][0] in r.gold[f] for r in got]
        out[f] = _calibration_entry(conf, top, abstained, TOP_IN_GOLD)
        if ds.taxonomy.fields[f].multi_label:
            exact = [sorted(r.pred[method][f]) == sorted(r.gold[f]) for r in got]
            out[f]["exact_set"] = _calibration_entry(conf, exact, abstained, EXACT_SET)
    return out


def _calibration_entry(
    conf: list[float], ok: list[bool], abstained: list[bool], correct_if: str
) -> dict[str, Any]:
    sel = metrics.selective(ok, abstained)
    answered = round(sel["coverage"] * len(ok))
    sel["interval"] = metrics.wilson_interval(round(sel["accuracy"] * answered), answered)
    return {
        "correct_if": correct_if,
        "n": len(ok),
        "ece": metrics.ece(conf, ok),
        # resampled cases: how much of the ECE is the small test set (it is biased up on small sets)
        "ece_ci": metrics.bootstrap_interval(
            lambda ix: metrics.ece([conf[i] for i in ix], [ok[i] for i in ix]), len(ok), 200
        ),
        "reliability": metrics.reliability(conf, ok),
        "risk_coverage": metrics.risk_coverage(conf, ok),
        "selective": sel,
    }


def triager_model_label(settings: Settings, cfg: EvalConfig) -> str:
    if not LLM_METHODS & set(cfg.methods):
        return "none"
    if settings.llm_backend == "local":
        return str(settings.local_model_path or settings.local_model)
    return f"{settings.llm_backend}:{settings.azure_deployment or settings.openai_model}"


def write_cases(path: Path, cases: list[CaseResult]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c.__dict__, ensure_ascii=False) + "\n")
