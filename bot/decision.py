"""The learned label decision: classifier probabilities, the neighbours' vote and the LLM's label, combined with
weights fitted on a time-ordered split of the history, calibrated, and with an abstention threshold.

Stacking: for every candidate label a small logistic model turns (classifier probability, vote share) into
P(candidate is right), fitted on out-of-fold predictions of older folds for newer ones. The LLM then moves that
probability by the likelihood ratio of its measured agreement on the field (`LLMAgreement`): a model no better than
chance gets no say, a strong one more, and nobody sets a weight by hand. Isotonic regression on the same out-of-fold
predictions maps the top score to a confidence that is right as often as it says.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from bot.classifier import FieldClassifier
from bot.models import LabelDecision

MULTI_KEEP = 0.5  # a further label of a multi-label field is kept at this probability
CANDIDATES_SHOWN = 3
AGREEMENT_PRIOR = 10  # pseudo-observations at chance level: a model's word counts only once it has a record


def _pair(p: float, v: float) -> list[float]:
    # A base-rate feature was tried: it pulled sparse fields to their majority class (worse macro-F1 and ECE).
    return [p, v, p * v]


@dataclass
class FieldDecider:
    clf: FieldClassifier
    meta: (
        LogisticRegression | None
    )  # None when the folds gave too little to fit: classifier probability alone
    iso: IsotonicRegression | None
    threshold: float  # confidence at which the label is posted as decided; below: "not sure"
    target_precision: float
    oof_n: int

    @property
    def field(self) -> str:
        return self.clf.field

    def scores(self, proba: np.ndarray, votes: dict[str, float]) -> dict[str, float]:
        """P(right) per candidate (single-label: normalised to sum to 1)."""
        cands = list(dict.fromkeys([*self.clf.classes, *votes]))
        p = dict(zip(self.clf.classes, proba.tolist(), strict=True))
        if self.meta is not None:
            s = self.meta.predict_proba([_pair(p.get(c, 0.0), votes.get(c, 0.0)) for c in cands])[:, 1]
        else:
            s = np.asarray([p.get(c, 0.0) for c in cands])
        out = dict(zip(cands, s.tolist(), strict=True))
        if not self.clf.multi:
            total = sum(out.values()) or 1.0
            out = {c: v / total for c, v in out.items()}
        return out

    def calibrated(self, score: float) -> float:
        return float(self.iso.predict([score])[0]) if self.iso is not None else score

    def decide(
        self,
        proba: np.ndarray,
        votes: dict[str, float],
        llm_labels: list[str],
        llm_accuracy: float | None,
        n_classes: int,
    ) -> LabelDecision:
        s = self.scores(proba, votes)
        if llm_labels and llm_accuracy is not None:
            s = with_llm(s, llm_labels, llm_accuracy, n_classes, self.clf.multi)
        ranked = sorted(s, key=lambda c: -s[c])
        label = ranked[0]
        conf = min(max(self.calibrated(s[label]), 0.0), 1.0)
        labels = [label]
        if self.clf.multi:
            labels += [c for c in ranked[1:] if s[c] >= MULTI_KEEP]
        in_llm = label in llm_labels
        return LabelDecision(
            field=self.field,
            label=label,
            labels=labels,
            confidence=round(conf, 3),
            source="classifier+llm" if in_llm and llm_accuracy is not None else "classifier",
            llm_label=llm_labels[0] if len(llm_labels) == 1 else (llm_labels or None),
            retrieval_label=next(iter(votes), None),
            retrieval_votes={k: round(v, 3) for k, v in votes.items()},
            abstained=conf < self.threshold,
            candidates=ranked[:CANDIDATES_SHOWN],
        )


def with_llm(s: dict[str, float], llm: list[str], acc: float, k: int, multi: bool) -> dict[str, float]:
    """Bayes' rule with the LLM as one more witness whose accuracy on this field is `acc` among `k` labels."""
    k = max(k, 2)
    acc = min(max(acc, 1e-3), 1 - 1e-3)
    ratio = acc / ((1 - acc) / (k - 1))  # P(says c | c right) / P(says c | c wrong)
    out = dict(s)
    for c in llm:
        p = out.get(c, 1e-3)
        out[c] = p * ratio / (p * ratio + (1 - p)) if multi else p * ratio
    if not multi:
        total = sum(out.values())
        out = {c: v / total for c, v in out.items()}
    return out


def fit_decider(
    clf: FieldClassifier,
    oof: list[tuple[np.ndarray, dict[str, float], list[str]]],
    target_precision: float,
) -> FieldDecider:
    """Fit the stacking model, calibration and threshold on out-of-fold rows (proba, votes, gold labels)."""
    X, y, cands = [], [], []
    for proba, votes, gold in oof:
        p = dict(zip(clf.classes, proba.tolist(), strict=True))
        cands.append(list(dict.fromkeys([*clf.classes, *votes])))  # the order `scores` uses
        for c in cands[-1]:
            X.append(_pair(p.get(c, 0.0), votes.get(c, 0.0)))
            y.append(int(c in gold))
    meta = None
    if len(set(y)) == 2 and len(oof) >= 10:
        meta = LogisticRegression(C=1.0, max_iter=500).fit(X, y)
    d = FieldDecider(clf, meta, None, 1.01, target_precision, len(oof))
    raw = meta.predict_proba(X)[:, 1] if meta is not None else np.asarray([x[0] for x in X])
    top, ok, pos = [], [], 0
    for (_, _, gold), cs in zip(oof, cands, strict=True):  # `scores`, batched: one predict for all rows
        seg = raw[pos : pos + len(cs)]
        pos += len(cs)
        if not clf.multi:
            seg = seg / (seg.sum() or 1.0)
        j = int(np.argmax(seg))
        top.append(float(seg[j]))
        ok.append(cs[j] in gold)
    if len(set(ok)) == 2:
        d.iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(top, ok)
    d.threshold = threshold_for(np.asarray([d.calibrated(t) for t in top]), np.asarray(ok), target_precision)
    return d


def threshold_for(conf: np.ndarray, ok: np.ndarray, target: float, min_support: int = 5) -> float:
    """The lowest confidence at which the labels at or above it reach `target` precision (above 1: never)."""
    best = 1.01
    order = np.argsort(-conf)
    hits = np.cumsum(ok[order])
    for i, idx in enumerate(order):
        n = i + 1
        if (
            n >= min_support
            and hits[i] / n >= target
            and (i + 1 == len(order) or conf[order[i + 1]] < conf[idx])
        ):
            best = float(conf[idx])
    return best


@dataclass
class LLMAgreement:
    """How often each model's label for a field was the one engineers kept: the LLM's weight, measured."""

    path: Path | None = None
    counts: dict[str, list[int]] = field(default_factory=dict)  # "model|field" -> [agreed, seen]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: Path) -> LLMAgreement:
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):
            counts = {}
        return cls(
            path, {k: [int(a), int(n)] for k, (a, n) in counts.items()} if isinstance(counts, dict) else {}
        )

    def record(self, model: str, fld: str, agreed: bool) -> None:
        with self._lock:
            a, n = self.counts.get(f"{model}|{fld}", [0, 0])
            self.counts[f"{model}|{fld}"] = [a + int(agreed), n + 1]
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.counts))
                tmp.replace(self.path)

    def accuracy(self, model: str, fld: str, n_classes: int) -> float:
        """Smoothed towards chance (1/k), so an unmeasured model has no say."""
        a, n = self.counts.get(f"{model}|{fld}", [0, 0])
        chance = 1 / max(n_classes, 2)
        return (a + AGREEMENT_PRIOR * chance) / (n + AGREEMENT_PRIOR)
