"""The learned label decision: classifier probabilities, the neighbours' vote and the LLM's label, combined with
weights fitted on a time-ordered split of the history, calibrated, and with an abstention threshold.

Stacking: for every candidate label a small logistic model turns (classifier probability, vote share) into
P(candidate is right), fitted on out-of-fold predictions of older folds for newer ones. The LLM then moves that
probability by the likelihood ratio of its measured agreement on the field (`LLMAgreement`): a model no better than
chance gets no say, a strong one more, and nobody sets a weight by hand. A calibrator fitted on the same out-of-fold
predictions (isotonic from 1,000 rows, else Platt's sigmoid) maps the top score to a confidence that is right as often
as it says.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from bot.classifier import FieldClassifier
from bot.models import LabelDecision, TriageDraft
from bot.quality import Verdict

MULTI_KEEP = 0.5  # a further label of a multi-label field is kept at this probability
CANDIDATES_SHOWN = 3
ISOTONIC_MIN = 1000  # out-of-fold rows from which isotonic calibration is used instead of Platt's sigmoid
AGREEMENT_PRIOR = 10  # pseudo-observations at chance level: a model's word counts only once it has a record


def _pair(p: float, v: float) -> list[float]:
    # A base-rate feature was tried: it pulled sparse fields to their majority class (worse macro-F1 and ECE).
    return [p, v, p * v]


class Calibrator:
    """Top score -> P(the label is right), fitted on the out-of-fold top scores.

    Isotonic regression from ISOTONIC_MIN rows up; below that a sigmoid on the score's logit (Platt): isotonic
    regression overfits small calibration sets (scikit-learn's calibration guide says the same)."""

    def __init__(self, top: np.ndarray, ok: np.ndarray) -> None:
        self.iso: IsotonicRegression | None = None
        self.platt: LogisticRegression | None = None
        if len(set(ok.tolist())) < 2:
            return
        if len(top) >= ISOTONIC_MIN:
            self.iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(top, ok)
        else:
            self.platt = LogisticRegression(C=1.0).fit(_logit(top), ok)
            if self.platt.coef_[0][0] <= 0:  # a higher score was not more often right: the hit rate, flat
                self.platt.coef_[0][0] = 0.0
                self.platt.intercept_[0] = float(np.log(ok.mean() / (1 - ok.mean())))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        if self.iso is not None:
            return np.asarray(self.iso.predict(scores))
        if self.platt is not None:
            return self.platt.predict_proba(_logit(scores))[:, 1]
        return np.asarray(scores)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p)).reshape(-1, 1)


@dataclass
class FieldDecider:
    clf: FieldClassifier
    meta: (
        LogisticRegression | None
    )  # None when the folds gave too little to fit: classifier probability alone
    calibrator: Calibrator | None
    threshold: float  # confidence at which the label is posted as decided; below: "not sure"
    target_precision: float
    oof_n: int

    @property
    def field(self) -> str:
        return self.clf.field

    def candidates(self, votes: dict[str, float]) -> list[str]:
        return list(dict.fromkeys([*self.clf.classes, *votes]))

    def pairs(
        self, rows: list[tuple[np.ndarray, dict[str, float]]]
    ) -> tuple[list[list[str]], list[list[float]]]:
        """Each row's candidates, and the stacking features of every (row, candidate) in that order."""
        cands = [self.candidates(votes) for _, votes in rows]
        X = [
            _pair(p.get(c, 0.0), votes.get(c, 0.0))
            for (proba, votes), cs in zip(rows, cands, strict=True)
            for p in [dict(zip(self.clf.classes, proba.tolist(), strict=True))]
            for c in cs
        ]
        return cands, X

    def scores_many(self, rows: list[tuple[np.ndarray, dict[str, float]]]) -> list[dict[str, float]]:
        """P(right) per candidate for each (proba, votes) row, in one predict (single-label: sums to 1)."""
        cands, X = self.pairs(rows)
        raw = self.meta.predict_proba(X)[:, 1] if self.meta is not None else np.asarray([x[0] for x in X])
        out, pos = [], 0
        for cs in cands:
            seg = raw[pos : pos + len(cs)]
            pos += len(cs)
            if not self.clf.multi:
                seg = seg / (seg.sum() or 1.0)
            out.append(dict(zip(cs, seg.tolist(), strict=True)))
        return out

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        return self.calibrator(scores) if self.calibrator is not None else np.asarray(scores)

    def decide(
        self,
        proba: np.ndarray,
        votes: dict[str, float],
        llm_labels: list[str],
        llm_accuracy: float | None,
        n_classes: int,
    ) -> LabelDecision:
        s = self.scores_many([(proba, votes)])[0]
        if llm_labels and llm_accuracy is not None:
            s = with_llm(s, llm_labels, llm_accuracy, n_classes, self.clf.multi)
        ranked = sorted(s, key=lambda c: -s[c])
        label = ranked[0]
        conf = min(max(float(self.calibrated(np.asarray([s[label]]))[0]), 0.0), 1.0)
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
    d = FieldDecider(clf, None, None, 1.01, target_precision, len(oof))
    rows = [(proba, votes) for proba, votes, _ in oof]
    cands, X = d.pairs(rows)
    y = [int(c in gold) for cs, (_, _, gold) in zip(cands, oof, strict=True) for c in cs]
    if len(set(y)) == 2 and len(oof) >= 10:
        d.meta = LogisticRegression(C=1.0, max_iter=500).fit(X, y)
    scored = d.scores_many(rows)
    best = [max(s, key=lambda c: s[c]) if s else None for s in scored]
    top = np.asarray([s[b] if b is not None else 0.0 for s, b in zip(scored, best, strict=True)])
    ok = np.asarray([b in gold for b, (_, _, gold) in zip(best, oof, strict=True)])
    if len(top):
        d.calibrator = Calibrator(top, ok)
        d.threshold = threshold_for(d.calibrated(top), ok, target_precision)
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
    """How often each model's label for a field was the one engineers kept: the LLM's weight, measured.

    Counted from the verdicts in the database (`from_verdicts`, at every retraining: every replica sees the same
    verdicts, and a restart loses none), and kept current in between by `observe` as verdicts arrive here."""

    counts: dict[str, list[int]] = field(default_factory=dict)  # "model|field" -> [agreed, seen]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_verdicts(cls, verdicts: Iterable[Verdict]) -> LLMAgreement:
        """The newest labelled verdict per ticket counts (a confirm then a correction is one verdict)."""
        latest = {v.ticket_key: v for v in verdicts if v.labels and v.draft is not None}
        book = cls()
        for v in latest.values():
            assert v.draft is not None and v.labels is not None
            book.observe(v.draft, v.labels)
        return book

    def observe(self, draft: TriageDraft, final: dict[str, list[str]]) -> None:
        """One verdict: per field the LLM labelled, whether the engineer kept its (first) label."""
        if draft.llm.status not in ("ok", "repaired"):
            return
        for fld, d in draft.labels.items():
            llm = [d.llm_label] if isinstance(d.llm_label, str) else list(d.llm_label or [])
            if llm and final.get(fld):
                self.record(draft.llm.model, fld, llm[0] in final[fld])

    def record(self, model: str, fld: str, agreed: bool) -> None:
        with self._lock:
            a, n = self.counts.get(f"{model}|{fld}", [0, 0])
            self.counts[f"{model}|{fld}"] = [a + int(agreed), n + 1]

    def accuracy(self, model: str, fld: str, n_classes: int) -> float:
        """Smoothed towards chance (1/k), so an unmeasured model has no say."""
        a, n = self.counts.get(f"{model}|{fld}", [0, 0])
        chance = 1 / max(n_classes, 2)
        return (a + AGREEMENT_PRIOR * chance) / (n + AGREEMENT_PRIOR)
