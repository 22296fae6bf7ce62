"""Scores: pure functions over gold and predicted labels (scikit-learn where it has the metric)."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.preprocessing import MultiLabelBinarizer


def single_label(gold: list[str], pred: list[str]) -> dict[str, Any]:
    labels = sorted(set(gold) | set(pred))
    return {
        "n": len(gold),
        "accuracy": float(accuracy_score(gold, pred)),
        "micro_f1": float(f1_score(gold, pred, labels=labels, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0)),
        "macro_f1_labels": sorted(
            set(gold)
        ),  # macro over the labels in gold: a label only predicted is not one
    }


def multi_label(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    mlb = MultiLabelBinarizer()
    mlb.fit(gold + pred)
    g, p = mlb.transform(gold), mlb.transform(pred)
    if g.shape[1] < 2:
        # one label in all (a small resample): sklearn would read one column as binary and refuse "samples"; an
        # all-zero column changes no count
        g, p = (np.hstack([m, np.zeros((m.shape[0], 2 - m.shape[1]), dtype=m.dtype)]) for m in (g, p))
    present = np.asarray(g).sum(axis=0) > 0  # macro over labels that occur in gold
    # per label, then the mean over those in gold (a one-column slice would be read as binary, averaging in "absent")
    macro = f1_score(g, p, average=None, zero_division=0)[present].mean() if present.any() else 0.0
    return {
        "n": len(gold),
        "accuracy": float(accuracy_score(g, p)),  # exact set match
        "micro_f1": float(f1_score(g, p, average="micro", zero_division=0)),
        "macro_f1": float(macro),
        "samples_f1": float(f1_score(g, p, average="samples", zero_division=0)),
        "macro_f1_labels": [str(c) for c in mlb.classes_[present[: len(mlb.classes_)]]],  # labels in gold
    }


def within_one(gold: list[str], pred: list[str], order: list[str]) -> float:
    rank = {lab: i for i, lab in enumerate(order)}
    return (
        float(np.mean([abs(rank[g] - rank[p]) <= 1 for g, p in zip(gold, pred, strict=True)]))
        if gold
        else 0.0
    )


def confusion(gold: list[str], pred: list[str], order: list[str]) -> dict[str, object]:
    labels = [lab for lab in order if lab in set(gold) | set(pred)]
    return {"labels": labels, "matrix": confusion_matrix(gold, pred, labels=labels).tolist()}


def retrieval(relevant_flags: list[list[bool]], k: int) -> dict[str, float]:
    """hit@k and MRR from, per query, the relevance of each retrieved item in rank order."""
    if not relevant_flags:
        return {"n": 0, "hit_at_k": 0.0, "mrr": 0.0}
    hits, rr = [], []
    for flags in relevant_flags:
        top = flags[:k]
        hits.append(any(top))
        rr.append(next((1 / (i + 1) for i, f in enumerate(top) if f), 0.0))
    return {"n": len(relevant_flags), "hit_at_k": float(np.mean(hits)), "mrr": float(np.mean(rr))}


def ece(confidences: list[float], correct: list[bool], bins: int = 10) -> float:
    """Expected calibration error: |accuracy - confidence| per confidence bin, weighted by bin size."""
    if not confidences:
        return 0.0
    conf, ok = np.asarray(confidences), np.asarray(correct, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        mask = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if mask.any():
            total += mask.mean() * abs(ok[mask].mean() - conf[mask].mean())
    return float(total)


def _bin_masks(conf: np.ndarray, bins: int) -> list[tuple[float, float, np.ndarray]]:
    """Equal-width bins over [0, 1] as in `ece`: (lo, hi], the first bin [0, hi]."""
    edges = np.linspace(0, 1, bins + 1)
    return [
        (float(lo), float(hi), (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi))
        for lo, hi in itertools.pairwise(edges)
    ]


def reliability(confidences: list[float], correct: list[bool], bins: int = 10) -> list[dict[str, float]]:
    """Reliability-diagram points: per non-empty bin its edges, size, mean confidence and accuracy."""
    if not confidences:
        return []
    conf, ok = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    return [
        {
            "lo": lo,
            "hi": hi,
            "n": int(mask.sum()),
            "confidence": float(conf[mask].mean()),
            "accuracy": float(ok[mask].mean()),
        }
        for lo, hi, mask in _bin_masks(conf, bins)
        if mask.any()
    ]


def risk_coverage(confidences: list[float], correct: list[bool]) -> list[dict[str, float]]:
    """Per distinct confidence threshold t (descending): coverage of conf >= t and accuracy among them."""
    if not confidences:
        return []
    conf, ok = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    points = []
    for t in sorted(set(conf.tolist()), reverse=True):
        mask = conf >= t
        points.append(
            {"threshold": float(t), "coverage": float(mask.mean()), "accuracy": float(ok[mask].mean())}
        )
    return points


def selective(correct: list[bool], abstained: list[bool]) -> dict[str, float]:
    """Selective prediction: share answered (not abstained) and accuracy on the answered ones."""
    answered = [c for c, a in zip(correct, abstained, strict=True) if not a]
    return {
        "n": len(correct),
        "coverage": len(answered) / len(correct) if correct else 0.0,
        "accuracy": float(np.mean(answered)) if answered else 0.0,
    }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> list[float]:
    """Wilson score interval [lo, hi] for a binomial proportion; [0, 1] when n == 0."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    margin = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [float(max(0.0, centre - margin)), float(min(1.0, centre + margin))]


def bootstrap_interval(
    values_fn: Callable[[np.ndarray], float], n_items: int, n_boot: int = 500, seed: int = 0
) -> list[float]:
    """Percentile 95% interval of values_fn(indices) over bootstrap resamples of range(n_items)."""
    if n_items == 0:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    values = [float(values_fn(rng.integers(0, n_items, size=n_items))) for _ in range(n_boot)]
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def macro_f1_interval(
    gold: list[list[str]], pred: list[list[str]], n_boot: int = 200, seed: int = 0
) -> list[float]:
    """`bootstrap_interval` of the macro-F1 over the labels in each resample's gold (as `single_label` and
    `multi_label` score it; a single-label field is one label per row), with the same resamples, counted in one
    matrix product instead of 2 x n_boot calls into scikit-learn (most of a small eval's time)."""
    if not gold:
        return [0.0, 0.0]
    mlb = MultiLabelBinarizer().fit(gold + pred)
    g, p = mlb.transform(gold).astype(bool), mlb.transform(pred).astype(bool)
    n = len(gold)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # the draws bootstrap_interval makes
    counts = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)  # n_boot x n
    tp, fp, fn = counts @ (g & p), counts @ (~g & p), counts @ (g & ~p)
    present = counts @ g > 0
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=present)
    values = f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0}
    arr = np.asarray(values)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "mean": float(arr.mean()),
    }


def mean_spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def rouge_l(reference: str, candidate: str) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(scorer.score(reference, candidate)["rougeL"].fmeasure)
