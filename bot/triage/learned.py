"""Train the learned decision on labelled history, and keep it on disk beside the history.

Time-ordered out-of-fold predictions: a classifier trained on the oldest incidents predicts the next slice of the
history, one trained on those too the slice after (`FOLD_STARTS_*`); the neighbours' vote for each of those incidents
only sees older incidents.
Those predictions fit the stacking weights, the calibration and the abstention threshold (`bot/triage/decision.py`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np

from bot.clock import utcnow
from bot.fileio import replace_atomically
from bot.models import HistoricalIncident
from bot.taxonomy import Taxonomy
from bot.triage.actions import ActionModel, fit_actions
from bot.triage.classifier import MIN_LABELLED, Featurizer, NotEnoughData, features_text, field_labels
from bot.triage.decision import FieldDecider
from bot.triage.folds import fit_field, neighbour_votes, thinned
from bot.triage.prelabels import PreLabelAgreement, prelabel_rows

log = logging.getLogger("incibot")
# Where each time-ordered fold starts (share of the history): a small history gets more folds, so the stacking and
# calibration see more out-of-fold rows; a large one two, and at most MAX_OOF_PER_FOLD rows each (thinned evenly),
# which is plenty for a few weights and keeps retraining at 10k incidents to seconds.
FOLD_STARTS_SMALL = (0.4, 0.55, 0.7, 0.85)
FOLD_STARTS_LARGE = (0.5, 0.75)
LARGE_HISTORY = 2000
MAX_OOF_PER_FOLD = 1000
# Bumped whenever the pickled classes change shape or the features their meaning (6: negation marks).
FORMAT = 6


def taxonomy_key(tax: Taxonomy) -> str:
    """Changes whenever a field or category changes, or the mitigation vocabulary: a model trained on another
    taxonomy is stale (retrained; the vote decides, and the hypotheses come from the neighbours, meanwhile)."""
    spec = {f: [fld.multi_label, fld.ids] for f, fld in sorted(tax.fields.items())}
    actions = tax.mitigation.ids if tax.mitigation else None
    return hashlib.sha256(json.dumps([tax.name, spec, actions]).encode()).hexdigest()[:16]


@dataclass
class LearnedModel:
    taxonomy_key: str
    featurizer: Featurizer
    fields: dict[str, FieldDecider]
    fallback: dict[str, str]  # field -> why the vote decides it
    n_history: int
    trained_at: datetime = field(default_factory=utcnow)
    train_s: float = 0.0
    actions: ActionModel | None = (
        None  # the mitigation action's decision (None: no vocabulary, too few actions)
    )
    actions_fallback: str = ""  # why there is none
    # share of each action among the history's incidents with a known fix: the prior of the hypotheses when no
    # action model could be trained (too few known fixes), so they rank by what usually fixed incidents here
    action_base: dict[str, float] = field(default_factory=dict)
    n_actions: int = 0  # history incidents with a known fix
    # per field, each model's measured agreement with the engineers and the weight its pre-labels trained at
    prelabels: dict[str, list[PreLabelAgreement]] = field(default_factory=dict)

    def features(self, text: str, service: str | None, source: str, vector: np.ndarray):  # type: ignore[no-untyped-def]
        """One ticket's features, computed once and shared by every field."""
        return self.featurizer.transform([features_text(text, service, source)], vector.reshape(1, -1))

    def proba(self, fld: str, X) -> np.ndarray:  # type: ignore[no-untyped-def]
        return self.fields[fld].clf.proba(X)[0]

    def describe(self) -> str:
        parts = [
            f"{f}: {d.clf.n_train} labelled{self._pre(f)}, threshold {d.threshold:.2f}"
            for f, d in self.fields.items()
        ]
        parts += [f"{f}: vote ({why})" for f, why in self.fallback.items()]
        if self.actions is not None:
            parts.append(self.actions.describe())
        elif self.actions_fallback:
            parts.append(f"mitigation: base rate and neighbours' fixes ({self.actions_fallback})")
        return "; ".join(parts)

    def _pre(self, fld: str) -> str:
        said = getattr(self, "prelabels", {}).get(fld, [])  # a model file from before pre-labels has none
        return "".join(f" + {a.describe()}" for a in said)


def train(
    history: list[HistoricalIncident],
    vectors: np.ndarray,
    tax: Taxonomy,
    *,
    k: int,
    target_precision: float,
    actions: list[str | None] | None = None,
) -> LearnedModel:
    """`actions`: each history incident's mitigation action (`bot.triage.mitigation`, None: not known), aligned
    with `history`; the action is then decided by the same machinery as a field (`bot.triage.actions`)."""
    t0 = time.perf_counter()
    idx = sorted(range(len(history)), key=lambda i: history[i].created_at)
    order = [history[i] for i in idx]
    vecs = vectors[idx] if len(idx) else vectors
    texts = [features_text(i.body, i.service, i.source) for i in order]
    labels = {f: [field_labels(tax, f, i) for i in order] for f in tax.fields}
    acts = [actions[i] for i in idx] if actions is not None and tax.mitigation is not None else None
    n = len(order)
    feats = Featurizer()
    counts = {f: sum(1 for labs in labels[f] if labs) for f in tax.fields}
    n_acts = sum(1 for a in acts or [] if a)
    base = {a: c / n_acts for a, c in Counter(a for a in acts or [] if a).most_common()} if n_acts else {}
    no_actions = "no mitigation vocabulary" if tax.mitigation is None else "no actions given"
    if max([*counts.values(), n_acts], default=0) < MIN_LABELLED:
        why = {f: f"{c} labelled incidents (< {MIN_LABELLED})" for f, c in counts.items()}
        return LearnedModel(taxonomy_key(tax), feats, {}, why, n, train_s=time.perf_counter() - t0,
                            actions_fallback=f"{n_acts} incidents with a known fix (< {MIN_LABELLED})",
                            action_base=base, n_actions=n_acts)  # fmt: skip
    try:
        X = feats.fit_transform(texts, vecs)
    except ValueError as e:  # e.g. no words at all
        why = {f: f"no usable text features: {e}" for f in tax.fields}
        return LearnedModel(taxonomy_key(tax), feats, {}, why, n, train_s=time.perf_counter() - t0,
                            actions_fallback=f"no usable text features: {e}", action_base=base,
                            n_actions=n_acts)  # fmt: skip
    starts = FOLD_STARTS_LARGE if n >= LARGE_HISTORY else FOLD_STARTS_SMALL
    bounds = [int(n * b) for b in starts] + [n]
    folds = [
        thinned([r for r in range(lo, hi) if any(labels[f][r] for f in tax.fields)], MAX_OOF_PER_FOLD)
        for lo, hi in itertools.pairwise(bounds)
    ]
    predicted = [r for fold in folds for r in fold]
    votes = neighbour_votes(order, vecs, predicted, k, tax) if predicted else {}
    fields: dict[str, FieldDecider] = {}
    fallback: dict[str, str] = {}
    said: dict[str, list[PreLabelAgreement]] = {}
    for f, fld in tax.fields.items():
        pre, said[f] = prelabel_rows(order, tax, f)
        try:
            field_votes = {r: v[f] for r, v in votes.items()}
            fields[f] = fit_field(
                f, fld.multi_label, X, labels[f], bounds, folds, field_votes, target_precision,
                pre if any(pre.weights) else None,
            )  # fmt: skip
        except NotEnoughData as e:
            fallback[f] = str(e)
    said = {f: a for f, a in said.items() if a}
    model = LearnedModel(taxonomy_key(tax), feats, fields, fallback, n, action_base=base, n_actions=n_acts,
                         prelabels=said)  # fmt: skip
    if acts is not None:
        fit = fit_actions(tax, order, vecs, X, acts, bounds, fields, k=k, target_precision=target_precision,
                          per_fold=MAX_OOF_PER_FOLD)  # fmt: skip
        model.actions, model.actions_fallback = (fit, "") if isinstance(fit, ActionModel) else (None, fit)
    else:
        model.actions_fallback = no_actions
    model.train_s = time.perf_counter() - t0
    return model


class ModelFileError(RuntimeError):
    """A model file that cannot be used (corrupt, another format or taxonomy): retrain, vote meanwhile."""


def save(model: LearnedModel, path: Path) -> None:
    replace_atomically(path, lambda tmp: joblib.dump({"format": FORMAT, "model": model}, tmp))


def load(path: Path, tax: Taxonomy) -> LearnedModel:
    try:
        blob = joblib.load(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # joblib/pickle raise many types for a corrupt file
        raise ModelFileError(f"model file {path} is unreadable: {e}") from e
    if (
        not isinstance(blob, dict)
        or blob.get("format") != FORMAT
        or not isinstance(blob.get("model"), LearnedModel)
    ):
        raise ModelFileError(f"model file {path} has another format")
    if blob["model"].taxonomy_key != taxonomy_key(tax):
        raise ModelFileError(f"model file {path} was trained on another version of taxonomy {tax.name}")
    return blob["model"]
