"""Why-now evidence in the label decision: the operators' sourced priors on day one, then moved by verdicts.

A ticket's context (bot/models.Context: recent changes on its service, other tickets firing there, the metrics that
moved) becomes a few features: `change:deploy`, `change:config`, `change:flag`, `change:model`, `change:infra`,
`alert:<kind>` for a concurrent ticket (`resource`, `quality` or `other`, by the taxonomy's `evidence_alerts` words)
and `signal:<kind>:<up|down>` for a moved signal (`errors`, `latency`, `saturation`...). For each
feature, field and label the engineers' verdicts on drafts that had the feature are tallied as the LLM's say is
(`LLMAgreement`): how often the label was kept against the probability the calibrated decision gave it. The shrunk
odds ratio then moves that label's probability on the next ticket with the feature.

Day one is not blank: the operators' priors (`evidence_priors_path`, taxonomies/evidence-priors.yaml) give a
feature odds per label and a weight in pseudo-verdicts, each with its published source. The prior is a Beta prior on
the keep rate: `weight` pseudo-verdicts kept at the rate its odds make of the decision's own prediction, added to the
counted verdicts; with no prior, EVIDENCE_PRIOR pseudo-verdicts at the prediction (odds 1: no say until verdicts show
a relation). A team that sends no changes, has no concurrent tickets and no telemetry gets no features at all.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, PositiveFloat, ValidationError

from bot.config import Settings
from bot.fileio import read_yaml
from bot.models import Context, LabelDecision, TriageDraft, Verdict
from bot.taxonomy import MITIGATION, Taxonomy, TaxonomyError
from bot.triage.decision import shifted

log = logging.getLogger("incibot")
EVIDENCE_PRIOR = 10  # as AGREEMENT_PRIOR: a feature's word counts once it has a record
MIN_RATIO_SHOWN = 1.25  # an odds ratio at least this far from 1 is named as evidence on the draft
FEATURE = re.compile(r"^(change:[a-z_]+|alert:[a-z_]+|signal:[a-z_]+:(up|down))$")


class PriorsError(TaxonomyError):
    """An evidence-priors file that cannot be used: one line, naming the file and the entry (a TaxonomyError, so
    the command line reports it as it reports a bad taxonomy)."""


class FeaturePrior(BaseModel):
    """One feature's day-one say: odds ratio per field and label, worth `weight` verdicts."""

    weight: PositiveFloat = Field(description="Pseudo-verdicts the prior is worth against counted ones.")
    sources: list[str] = Field(min_length=1, description="Ids in `sources`: what the numbers rest on.")
    odds: dict[str, dict[str, PositiveFloat]] = Field(description="field -> label -> odds ratio (1: no say).")


class EvidencePriors(BaseModel):
    sources: dict[str, str] = Field(default_factory=dict)
    features: dict[str, FeaturePrior] = Field(default_factory=dict)

    def of(self, feat: str, fld: str, label: str) -> tuple[float, float]:
        """(odds ratio, weight) of a feature for a label: (1, EVIDENCE_PRIOR) where the file says nothing."""
        p = self.features.get(feat)
        odds = p.odds.get(fld, {}).get(label) if p is not None else None
        return (odds, p.weight) if p is not None and odds is not None else (1.0, EVIDENCE_PRIOR)

    def check(self, taxonomy: Taxonomy) -> None:
        """Every feature well named, every source declared, every field and label the taxonomy's."""
        fields = taxonomy.label_fields
        for feat, p in self.features.items():
            if not FEATURE.match(feat):
                raise ValueError(f"{feat}: not a feature (change:KIND, alert:KIND, signal:KIND:up|down)")
            if missing := [s for s in p.sources if s not in self.sources]:
                raise ValueError(f"{feat}: source {missing[0]!r} is not in `sources`")
            for fld, odds in p.odds.items():
                if fld not in fields:
                    raise ValueError(f"{feat}: {fld!r} is not a field of taxonomy {taxonomy.name!r}")
                if bad := [x for x in odds if x not in fields[fld].categories]:
                    raise ValueError(
                        f"{feat}: {fld} label {bad[0]!r} is not in taxonomy {taxonomy.name!r} "
                        f"({', '.join(fields[fld].ids)})"
                    )


NO_PRIORS = EvidencePriors()


def load_priors(path: Path | str, taxonomy: Taxonomy) -> EvidencePriors:
    """The priors file, checked against the taxonomy; PriorsError (one line) where it cannot be used."""
    path = Path(path)
    data = read_yaml(path, "evidence priors file", PriorsError)
    try:
        priors = EvidencePriors.model_validate(data or {})
        priors.check(taxonomy)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise PriorsError(f"evidence priors file {path} is invalid: {where}: {first['msg']}") from e
    except ValueError as e:
        raise PriorsError(f"evidence priors file {path} is invalid: {e}") from e
    return priors


@lru_cache(maxsize=4)
def _cached(path: str, taxonomy_path: str, mtime: float) -> EvidencePriors:
    try:
        taxonomy = Taxonomy.load(taxonomy_path)
    except TaxonomyError as e:
        raise PriorsError(f"evidence priors not checked: {e}") from e
    return load_priors(path, taxonomy)


_last_good: dict[str, EvidencePriors] = {}


def configured_priors() -> EvidencePriors:
    """The priors `evidence_priors_path` names, checked against `taxonomy_path`; none when the setting is empty.
    Read again when the file changes: a bad edit is refused at start, while running it keeps the last good file
    (a warning) rather than failing every retraining."""
    s = Settings()
    if s.evidence_priors_path is None or str(s.evidence_priors_path).strip() in ("", "."):
        return NO_PRIORS  # unset, or set empty (which pydantic reads as ".")
    path = Path(s.evidence_priors_path)
    mtime = path.stat().st_mtime if path.is_file() else 0.0
    try:
        priors = _cached(str(path), str(s.taxonomy_path), mtime)
    except PriorsError as e:
        if str(path) not in _last_good:
            raise
        log.warning("%s; the previous priors are kept", e)
        return _last_good[str(path)]
    _last_good[str(path)] = priors
    return priors


def features(ctx: Context | None, alert_words: Mapping[str, list[str]]) -> list[str]:
    """The context's evidence features, sorted (none without a context)."""
    if ctx is None:
        return []
    out = {f"change:{r.change.kind}" for r in ctx.changes}
    telemetry = getattr(ctx, "telemetry", None)  # None: no metrics source, or not read yet
    out |= {f"signal:{m.kind}:{m.direction}" for m in getattr(telemetry, "moved", None) or []}
    for s in ctx.concurrent:
        title = s.title.lower()
        kind = next((k for k, words in alert_words.items() if any(w in title for w in words)), "other")
        out.add(f"alert:{kind}")
    return sorted(out)


@dataclass
class EvidenceBook:
    """ "feature|field|label" -> [kept, predicted, n] over the verdicts on drafts that had the feature, on top of the
    operators' priors (`configured_priors()` unless given)."""

    counts: dict[str, list[float]] = field(default_factory=dict)
    priors: EvidencePriors = field(default_factory=configured_priors)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_verdicts(cls, verdicts: Iterable[Verdict], priors: EvidencePriors | None = None) -> EvidenceBook:
        """The newest labelled verdict per ticket counts (a confirm then a correction is one verdict)."""
        book = cls() if priors is None else cls(priors=priors)
        for v in {v.ticket_key: v for v in verdicts if v.labels and v.draft is not None}.values():
            assert v.draft is not None and v.labels is not None
            book.observe(v.draft, v.labels)
        return book

    def observe(self, draft: TriageDraft, final: Mapping[str, list[str]]) -> None:
        """One verdict: per feature the draft had, per decided field, whether each label was kept against the
        probability the decision gave it before any evidence (a label it did not list counts as predicted 0); and
        the action that fixed it (`labels.mitigation`) against the hypotheses' odds before evidence."""
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
        m, fixed = draft.mitigation, final.get(MITIGATION)
        if (
            m is not None and m.calibrated and fixed
        ):  # what fixed it, against the actions' odds before evidence
            for action in dict.fromkeys([*m.calibrated, *fixed]):
                for feat in draft.evidence:
                    self._record(
                        f"{feat}|{MITIGATION}|{action}", action in fixed, m.calibrated.get(action, 0.0)
                    )

    def _record(self, key: str, kept: bool, predicted: float) -> None:
        with self._lock:
            k, p, n = self.counts.get(key, [0, 0.0, 0])
            self.counts[key] = [k + int(kept), p + predicted, n + 1]

    def ratio(self, feats: list[str], fld: str, label: str) -> float:
        """The product of the features' odds ratios for this label: each its prior moved by its verdicts."""
        return math.prod(self._one(f, fld, label) for f in feats)

    def _one(self, feat: str, fld: str, label: str) -> float:
        kept, predicted, n = self.counts.get(f"{feat}|{fld}|{label}", [0, 0.0, 0])
        return posterior_ratio(kept, predicted, n, *self.priors.of(feat, fld, label))


def posterior_ratio(kept: float, predicted: float, n: float, odds: float, weight: float) -> float:
    """Observed over predicted odds of a label being kept, after `weight` pseudo-verdicts kept at the rate `odds`
    makes of the prediction (a Beta prior on the keep rate): the prior's odds with no verdict; with odds 1, exactly
    LLMAgreement.odds_ratio (the learned odds of before)."""
    if not n:
        return odds
    q = min(max(predicted / n, 0.01), 0.99)  # what the decision predicted, on average
    r = (kept + weight * shifted(q, odds)) / (n + weight)
    r = min(max(r, 0.005), 0.995)
    return (r / (1 - r)) / (q / (1 - q))


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
    named = _named(feats, book, d.field, label)  # each feature's say in the label chosen
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


def move(
    probs: Mapping[str, float], feats: list[str], book: EvidenceBook, fld: str
) -> tuple[dict[str, float], dict[str, list[str]]] | None:
    """Probabilities over one field's labels (the mitigation actions) moved by the features' odds ratios, scaled
    down where together they would pass 1, with the features named per label; None when no ratio differs from 1."""
    if not feats or not probs:
        return None
    ratios = {c: book.ratio(feats, fld, c) for c in probs}
    if all(r == 1.0 for r in ratios.values()):
        return None
    moved = {c: shifted(p, ratios[c]) if p > 0 else 0.0 for c, p in probs.items()}
    total = sum(moved.values())
    if total > 1:
        moved = {c: p / total for c, p in moved.items()}
    named = {c: _named(feats, book, fld, c) for c in probs}
    return moved, {c: n for c, n in named.items() if n}


def _named(feats: list[str], book: EvidenceBook, fld: str, label: str) -> list[str]:
    """Each feature whose own odds ratio for the label is far enough from 1 to name: "change:deploy x2.10"."""
    own = {f: book.ratio([f], fld, label) for f in feats}
    return [f"{f} x{r:.2f}" for f, r in own.items() if abs(math.log(r)) >= math.log(MIN_RATIO_SHOWN)]


_READABLE = {"change": "a recent {} change", "alert": "a concurrent {} alert", "signal": "{} moving {}"}


def describe(named: list[str]) -> str:
    """ "change:deploy x2.10" -> "a recent deploy change (odds x2.1)", for the post and the terminal."""
    out = []
    for item in named:
        feat, _, ratio = item.partition(" x")
        kind, _, value = feat.partition(":")
        text = _READABLE.get(kind, "{}").format(*[*value.split(":"), ""][:2]) if value else kind
        out.append(f"{text} (odds x{float(ratio):.1f})" if ratio else text)
    return ", ".join(out)
