"""Why-now evidence in the label decision, learned from verdicts, never set by hand.

A ticket's context (bot/models.Context: recent changes on its service, other tickets firing there) becomes a few
features: `change:deploy`, `change:config`, `change:flag`, `change:model`, `change:infra`, and `alert:<kind>` for
a concurrent ticket (`resource`, `quality` or `other`, by the taxonomy's `evidence_alerts` words). For each
feature, field and label the engineers' verdicts on drafts that had the feature are tallied as the LLM's say is
(`LLMAgreement`): how often the label was kept against the probability the calibrated decision gave it. The shrunk
odds ratio (EVIDENCE_PRIOR pseudo-observations at the prediction) then moves that label's probability on the next
ticket with the feature. Until verdicts show a relation the ratio is 1 and the decision is exactly the one without
context; a team that sends no changes and has no concurrent tickets gets no features at all.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.models import Context, LabelDecision, TriageDraft, Verdict
from bot.triage.decision import LLMAgreement, shifted

EVIDENCE_PRIOR = 10  # as AGREEMENT_PRIOR: a feature's word counts once it has a record
MIN_RATIO_SHOWN = 1.25  # an odds ratio at least this far from 1 is named as evidence on the draft


def features(ctx: Context | None, alert_words: Mapping[str, list[str]]) -> list[str]:
    """The context's evidence features, sorted (none without a context)."""
    if ctx is None:
        return []
    out = {f"change:{r.change.kind}" for r in ctx.changes}
    for s in ctx.concurrent:
        title = s.title.lower()
        kind = next((k for k, words in alert_words.items() if any(w in title for w in words)), "other")
        out.add(f"alert:{kind}")
    return sorted(out)


@dataclass
class EvidenceBook:
    """ "feature|field|label" -> [kept, predicted, n] over the verdicts on drafts that had the feature."""

    counts: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_verdicts(cls, verdicts: Iterable[Verdict]) -> EvidenceBook:
        """The newest labelled verdict per ticket counts (a confirm then a correction is one verdict)."""
        book = cls()
        for v in {v.ticket_key: v for v in verdicts if v.labels and v.draft is not None}.values():
            assert v.draft is not None and v.labels is not None
            book.observe(v.draft, v.labels)
        return book

    def observe(self, draft: TriageDraft, final: Mapping[str, list[str]]) -> None:
        """One verdict: per feature the draft had, per decided field, whether each label was kept against the
        probability the decision gave it before any evidence (a label it did not list counts as predicted 0)."""
        if not draft.evidence:
            return
        for fld, d in draft.labels.items():
            gold = final.get(fld)
            if not gold or not d.calibrated:
                continue  # no verdict on the field, or the vote decided it (no calibrated probabilities)
            for label in dict.fromkeys([*d.calibrated, *gold]):
                kept, predicted = label in gold, d.calibrated.get(label, 0.0)
                for feat in draft.evidence:
                    self._record(f"{feat}|{fld}|{label}", kept, predicted)

    def _record(self, key: str, kept: bool, predicted: float) -> None:
        with self._lock:
            k, p, n = self.counts.get(key, [0, 0.0, 0])
            self.counts[key] = [k + int(kept), p + predicted, n + 1]

    def ratio(self, feats: list[str], fld: str, label: str) -> float:
        """The product of the features' shrunk odds ratios for this label (1: no record)."""
        return math.prod(self._one(f"{f}|{fld}|{label}") for f in feats)

    def _one(self, key: str) -> float:
        return LLMAgreement.odds_ratio(*self.counts.get(key, [0, 0.0, 0]), prior=EVIDENCE_PRIOR)


def apply(d: LabelDecision, feats: list[str], book: EvidenceBook, threshold: float) -> LabelDecision:
    """The decision with its labels' probabilities moved by the features' measured odds ratios; unchanged (the same
    object) when there are no features, no calibrated probabilities or no ratio differs from 1."""
    if not feats or not d.calibrated:
        return d
    base = {**d.calibrated, d.label: d.confidence}  # the decided label keeps what the LLM's say made of it
    ratios = {c: book.ratio(feats, d.field, c) for c in base}
    if all(r == 1.0 for r in ratios.values()):
        return d
    moved = {c: shifted(p, ratios[c]) for c, p in base.items()}
    ranked = sorted(moved, key=lambda c: -moved[c])
    label, conf = ranked[0], moved[ranked[0]]
    labels = [label, *[x for x in d.labels if x != label]] if d.labels else [label]
    own = {f: book.ratio([f], d.field, label) for f in feats}  # each feature's say in the label chosen
    named = [f"{f} x{r:.2f}" for f, r in own.items() if abs(math.log(r)) >= math.log(MIN_RATIO_SHOWN)]
    return d.model_copy(
        update={
            "label": label,
            "labels": labels if len(d.labels) > 1 else [label],
            "confidence": round(conf, 3),
            "abstained": conf < threshold,
            "candidates": [c for c in ranked if c in d.candidates or c == label][: max(len(d.candidates), 1)],
            "evidence": named,
        }
    )


_READABLE = {"change": "a recent {} change", "alert": "a concurrent {} alert"}


def describe(named: list[str]) -> str:
    """ "change:deploy x2.10" -> "a recent deploy change (odds x2.1)", for the post and the terminal."""
    out = []
    for item in named:
        feat, _, ratio = item.partition(" x")
        kind, _, value = feat.partition(":")
        text = _READABLE.get(kind, "{}").format(value or kind)
        out.append(f"{text} (odds x{float(ratio):.1f})" if ratio else text)
    return ", ".join(out)
