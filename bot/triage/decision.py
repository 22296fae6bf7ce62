"""The learned label decision: classifier probabilities, the neighbours' vote and the LLM's label, combined with
weights fitted on a time-ordered split of the history, calibrated, and with an abstention threshold.

Stacking: for every candidate label a small logistic model turns (classifier probability, vote share) into
P(candidate is right), fitted on out-of-fold predictions of older folds for newer ones. A calibrator fitted on the
same out-of-fold predictions (isotonic from 1,000 rows, else Platt's sigmoid) maps the top score to a confidence that
is right as often as it says. The LLM's label then moves that confidence by the odds ratio measured on the verdicts
of earlier LLM-assisted drafts (`LLMAgreement`), apart for when it agrees with the classifier and when it names
another label: a model no better than the classifier gets no say, a strong one more, and nobody sets a weight by hand.
(It is not an independent witness: it reads the same neighbours, so counting its agreement at its overall accuracy
would count that evidence twice.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from bot.models import LabelDecision, TriageDraft, Verdict
from bot.triage.classifier import FieldClassifier
from bot.triage.conformal import ConformalSet

MULTI_KEEP = 0.5  # a further label of a multi-label field is kept at this probability
CANDIDATES_SHOWN = 3
ISOTONIC_MIN = 1000  # out-of-fold rows from which isotonic calibration is used instead of Platt's sigmoid
# Pseudo-observations at the classifier's own prediction: the LLM's word counts once it has a record.
AGREEMENT_PRIOR = 10
PLAYBOOK = "_playbook"  # the LLM's playbook pick is measured like a field, under this name
STEP = "_step"  # the LLM's phrasing of the first step: whether the drafts showing it are kept, against the rule's


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
    conformal: ConformalSet | None = None  # single-label fields: sets at a coverage, fitted on the same rows

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

    def prediction_set(self, scores: dict[str, float], coverage: float) -> list[str]:
        """The conformal set of a row's stacked scores at `coverage` ([] when none was fitted)."""
        return self.conformal.predict(scores, coverage) if self.conformal is not None else []

    def _calibrated(self, cands: list[str], s: dict[str, float], known: dict[str, float]) -> dict[str, float]:
        """Calibrated P(right) of the candidates (the calibrator maps any candidate's stacked score, not only the
        top's), before the LLM's say: what why-now evidence is measured against."""
        rest = [c for c in cands if c not in known and c in s]
        more = self.calibrated(np.asarray([s[c] for c in rest])) if rest else []
        out = {**{c: known[c] for c in cands if c in known}, **dict(zip(rest, map(float, more), strict=True))}
        return {c: round(min(max(out[c], 0.0), 1.0), 4) for c in cands if c in out}

    def decide(
        self,
        proba: np.ndarray,
        votes: dict[str, float],
        llm_labels: list[str],
        witness: dict[Situation, float] | None,
        coverage: float | None = None,
    ) -> LabelDecision:
        """The label and its confidence; `witness` is the LLM's measured odds ratio per situation (None: no say);
        with `coverage`, the conformal set of the same stacked scores at it (`label_set`)."""
        s = self.scores_many([(proba, votes)])[0]
        label_set = self.prediction_set(s, coverage) if coverage is not None else []
        ranked = sorted(s, key=lambda c: -s[c])
        top = ranked[0]
        # calibrated once, for the labels the decision can use: the top one and the LLM's
        need = [top, *[c for c in llm_labels if c in s]]
        cal = {
            c: min(max(float(x), 0.0), 1.0)
            for c, x in zip(need, self.calibrated(np.asarray([s[c] for c in need])), strict=True)
        }
        label, conf = top, cal[top]
        llm0 = llm_labels[0] if llm_labels else None
        extra: list[str] = []
        if llm0 is not None and witness is not None:
            if llm0 == top:
                conf = shifted(conf, witness[Situation.AGREES])
            else:
                c_top = shifted(conf, witness[Situation.TOP_OTHER])
                c_llm = shifted(cal.get(llm0, 0.0), witness[Situation.LLM_OTHER])
                label, conf = (llm0, c_llm) if c_llm > c_top else (top, c_top)
            extra = [
                c
                for c in llm_labels
                if c != label and shifted(cal.get(c, 0.0), witness[Situation.LLM_OTHER]) >= MULTI_KEEP
            ]
        ranked = [label, *[c for c in ranked if c != label]]
        labels = [label]
        if self.clf.multi:
            labels += [c for c in ranked[1:] if s.get(c, 0.0) >= MULTI_KEEP or c in extra]
        in_llm = label in llm_labels
        return LabelDecision(
            field=self.field,
            label=label,
            labels=labels,
            confidence=round(conf, 3),
            source="classifier+llm" if in_llm and witness is not None else "classifier",
            llm_label=llm_labels[0] if len(llm_labels) == 1 else (llm_labels or None),
            retrieval_label=next(iter(votes), None),
            retrieval_votes={k: round(v, 3) for k, v in votes.items()},
            abstained=conf < self.threshold,
            candidates=ranked[:CANDIDATES_SHOWN],
            scores={c: round(s[c], 3) for c in ranked[:CANDIDATES_SHOWN] if c in s},
            prior_label=top,
            prior_confidence=round(cal[top], 4),
            calibrated=self._calibrated(ranked, s, cal),  # every candidate: evidence may lift any
            label_set=label_set,
            set_coverage=coverage if label_set else None,
            llm_prior_confidence=round(cal.get(llm0, 0.0), 4) if llm0 is not None else None,
        )


class Situation(StrEnum):
    """Where the LLM's label stands against the classifier's own top label: its worth is measured in each apart,
    since it reads the same neighbours and mostly agrees with the classifier when the classifier is right."""

    # it named the classifier's top label: how much more (or less) often that label is right
    AGREES = "agrees"
    # it named another label: how often that label is right, against what was predicted ...
    LLM_OTHER = "llm-other"
    # ... and how often the classifier's top label is right then
    TOP_OTHER = "top-other"


def shifted(p: float, ratio: float) -> float:
    """`p` with its odds multiplied by `ratio`."""
    p = min(max(p, 1e-4), 1 - 1e-4)
    o = p / (1 - p) * ratio
    return o / (1 + o)


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
    if not clf.multi:
        true = [
            max((s.get(g, 0.0) for g in gold), default=0.0)
            for s, (_, _, gold) in zip(scored, oof, strict=True)
        ]
        d.conformal = ConformalSet.fit(
            list(dict.fromkeys([*clf.classes, *(c for s in scored for c in s)])), true
        )
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
    """How often each model's label for a field was the one engineers kept, against how often the classifier
    predicted it would be, per `Situation`: the LLM's weight, measured.

    From each verdict on an LLM-assisted draft: in its situation, whether the label was kept and the classifier's
    calibrated confidence in it. The odds ratio observed/predicted (shrunk towards 1 by AGREEMENT_PRIOR
    pseudo-observations) moves the classifier's confidence: an unmeasured or useless model changes nothing, a model
    that is right where the classifier doubted gets its label chosen, and agreement that adds nothing leaves the
    confidence where the calibration put it. Counted from the verdicts in the database (`from_verdicts`, at every
    retraining: every replica sees the same verdicts, and a restart loses none), kept current by `observe`."""

    # "model|field|situation" -> [kept, predicted, n]
    counts: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_verdicts(cls, verdicts: Iterable[Verdict]) -> LLMAgreement:
        """The newest labelled verdict per ticket counts (a confirm then a correction is one verdict)."""
        verdicts = list(verdicts)
        latest = {v.ticket_key: v for v in verdicts if v.labels and v.draft is not None}
        book = cls()
        for v in {v.ticket_key: v for v in verdicts if v.draft is not None}.values():
            book.observe_step(v.draft, v.action)  # type: ignore[arg-type]
        for v in latest.values():
            assert v.draft is not None and v.labels is not None
            book.observe(v.draft, v.labels, v.fix_playbook)
        return book

    def observe(
        self, draft: TriageDraft, final: dict[str, list[str]], fix_playbook: str | None = None
    ) -> None:
        """One verdict: per field the LLM labelled beside a classifier, whose label the engineer kept; and, where
        the engineer said how it was fixed, whether the LLM's playbook or the one chosen without it fits that fix."""
        if draft.llm.status not in ("ok", "repaired"):
            return
        pb, model = draft.playbook, draft.llm.model
        if fix_playbook and pb.llm_choice and pb.rule_choice:
            # no calibrated prediction here: both start from an even chance, so only the record tells them apart
            self._tally(model, PLAYBOOK, pb.llm_choice, pb.rule_choice, [fix_playbook], 0.5, 0.5)
        for fld, d in draft.labels.items():
            llm = [d.llm_label] if isinstance(d.llm_label, str) else list(d.llm_label or [])
            gold = final.get(fld)
            if not llm or not gold or d.prior_label is None or d.prior_confidence is None:
                continue  # no LLM label, no verdict on the field, or the vote decided it (no classifier)
            self._tally(
                model, fld, llm[0], d.prior_label, gold, d.llm_prior_confidence or 0.0, d.prior_confidence
            )

    def observe_step(self, draft: TriageDraft, action: str) -> None:
        """One verdict (any, a reject too) on a draft the LLM answered: kept (confirmed or corrected) or rejected,
        by who wrote the first step it showed. The rule's steps are the baseline, pooled over models."""
        if draft.llm.status not in ("ok", "repaired"):
            return
        by_llm = draft.triage_step_source == "llm"
        self.record(
            draft.llm.model if by_llm else "*", STEP, "llm" if by_llm else "rule", action != "reject", 0.0
        )

    def step_witness(self, model: str) -> float:
        """The odds ratio of a draft being kept when it showed this model's step, against the rule's keep rate
        (shrunk towards it by AGREEMENT_PRIOR): above 1 only once verdicts show its phrasing is kept more often."""
        kept, _, n = self.counts.get(f"{model}|{STEP}|llm", [0, 0.0, 0])
        k0, _, n0 = self.counts.get(f"*|{STEP}|rule", [0, 0.0, 0])
        return self.odds_ratio(kept, n * (k0 + 1) / (n0 + 2), n)

    def _tally(
        self, model: str, fld: str, llm: str, top: str, kept: list[str], p_llm: float, p_top: float
    ) -> None:
        """One verdict in its situation: the LLM named the top choice, or another one (then both are counted)."""
        if llm == top:
            self.record(model, fld, Situation.AGREES, top in kept, p_top)
        else:
            self.record(model, fld, Situation.LLM_OTHER, llm in kept, p_llm)
            self.record(model, fld, Situation.TOP_OTHER, top in kept, p_top)

    def record(self, model: str, fld: str, where: Situation | str, kept: bool, predicted: float) -> None:
        with self._lock:
            k, p, n = self.counts.get(f"{model}|{fld}|{where}", [0, 0.0, 0])
            self.counts[f"{model}|{fld}|{where}"] = [k + int(kept), p + predicted, n + 1]

    def witness(self, model: str, fld: str) -> dict[Situation, float]:
        """Per situation, the odds ratio by which this model's word moves the classifier's confidence."""
        return {
            where: self.odds_ratio(*self.counts.get(f"{model}|{fld}|{where}", [0, 0.0, 0]))
            for where in Situation
        }

    @staticmethod
    def odds_ratio(kept: float, predicted: float, n: float, prior: float = AGREEMENT_PRIOR) -> float:
        """Observed over predicted odds of being kept, the observed rate shrunk towards the prediction by `prior`
        pseudo-observations (1 with no record)."""
        if not n:
            return 1.0
        q = min(max(predicted / n, 0.01), 0.99)  # what the classifier predicted, on average
        r = (kept + prior * q) / (n + prior)  # what happened, shrunk towards it
        r = min(max(r, 0.005), 0.995)
        return (r / (1 - r)) / (q / (1 - q))
