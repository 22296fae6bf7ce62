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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np

from bot.clock import utcnow
from bot.fileio import replace_atomically
from bot.models import HistoricalIncident, SimilarIncident
from bot.taxonomy import Taxonomy
from bot.triage.classifier import (
    MIN_LABELLED,
    Featurizer,
    FieldClassifier,
    NotEnoughData,
    features_text,
    field_labels,
)
from bot.triage.decision import FieldDecider, fit_decider
from bot.triage.vote import knn_votes

log = logging.getLogger("incibot")
# Where each time-ordered fold starts (share of the history): a small history gets more folds, so the stacking and
# calibration see more out-of-fold rows; a large one two, and at most MAX_OOF_PER_FOLD rows each (thinned evenly),
# which is plenty for a few weights and keeps retraining at 10k incidents to seconds.
FOLD_STARTS_SMALL = (0.4, 0.55, 0.7, 0.85)
FOLD_STARTS_LARGE = (0.5, 0.75)
LARGE_HISTORY = 2000
MAX_OOF_PER_FOLD = 1000
FORMAT = 3  # bumped whenever the pickled classes change shape


def taxonomy_key(tax: Taxonomy) -> str:
    """Changes whenever a field or category changes: a model trained on another taxonomy is stale."""
    spec = {f: [fld.multi_label, fld.ids] for f, fld in sorted(tax.fields.items())}
    return hashlib.sha256(json.dumps([tax.name, spec]).encode()).hexdigest()[:16]


@dataclass
class LearnedModel:
    taxonomy_key: str
    featurizer: Featurizer
    fields: dict[str, FieldDecider]
    fallback: dict[str, str]  # field -> why the vote decides it
    n_history: int
    trained_at: datetime = field(default_factory=utcnow)
    train_s: float = 0.0

    def features(self, text: str, service: str | None, source: str, vector: np.ndarray):  # type: ignore[no-untyped-def]
        """One ticket's features, computed once and shared by every field."""
        return self.featurizer.transform([features_text(text, service, source)], vector.reshape(1, -1))

    def proba(self, fld: str, X) -> np.ndarray:  # type: ignore[no-untyped-def]
        return self.fields[fld].clf.proba(X)[0]

    def describe(self) -> str:
        parts = [
            f"{f}: {d.clf.n_train} labelled, threshold {d.threshold:.2f}" for f, d in self.fields.items()
        ]
        parts += [f"{f}: vote ({why})" for f, why in self.fallback.items()]
        return "; ".join(parts)


def neighbour_votes(
    order: list[HistoricalIncident], vecs: np.ndarray, rows: list[int], k: int, tax: Taxonomy
) -> dict[int, dict[str, dict[str, float]]]:
    """For each row: the vote per field of its k most similar strictly older incidents (as the bot's query)."""
    ts = np.asarray([i.created_at.timestamp() for i in order])
    out: dict[int, dict[str, dict[str, float]]] = {}
    for start in range(0, len(rows), 512):
        chunk = rows[start : start + 512]
        sims = vecs[chunk] @ vecs.T
        sims[ts[None, :] >= ts[chunk][:, None]] = -np.inf
        kk = min(k, sims.shape[1])
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        for row, (r, idx) in enumerate(zip(chunk, part, strict=True)):
            idx = idx[np.argsort(-sims[row, idx])]
            similar = [
                SimilarIncident(id=order[j].id, title="", score=float(sims[row, j]), labels=order[j].labels)
                for j in idx
                if np.isfinite(sims[row, j])
            ]
            out[r] = {f: knn_votes(similar, f, tax) for f in tax.fields}
    return out


def train(
    history: list[HistoricalIncident],
    vectors: np.ndarray,
    tax: Taxonomy,
    *,
    k: int,
    target_precision: float,
) -> LearnedModel:
    t0 = time.perf_counter()
    idx = sorted(range(len(history)), key=lambda i: history[i].created_at)
    order = [history[i] for i in idx]
    vecs = vectors[idx] if len(idx) else vectors
    texts = [features_text(i.body, i.service, i.source) for i in order]
    labels = {f: [field_labels(tax, f, i) for i in order] for f in tax.fields}
    n = len(order)
    feats = Featurizer()
    counts = {f: sum(1 for labs in labels[f] if labs) for f in tax.fields}
    if max(counts.values(), default=0) < MIN_LABELLED:
        why = {f: f"{c} labelled incidents (< {MIN_LABELLED})" for f, c in counts.items()}
        return LearnedModel(taxonomy_key(tax), feats, {}, why, n, train_s=time.perf_counter() - t0)
    try:
        X = feats.fit_transform(texts, vecs)
    except ValueError as e:  # e.g. no words at all
        why = {f: f"no usable text features: {e}" for f in tax.fields}
        return LearnedModel(taxonomy_key(tax), feats, {}, why, n, train_s=time.perf_counter() - t0)
    starts = FOLD_STARTS_LARGE if n >= LARGE_HISTORY else FOLD_STARTS_SMALL
    bounds = [int(n * b) for b in starts] + [n]
    folds = [
        _thinned([r for r in range(lo, hi) if any(labels[f][r] for f in tax.fields)], MAX_OOF_PER_FOLD)
        for lo, hi in itertools.pairwise(bounds)
    ]
    predicted = [r for fold in folds for r in fold]
    votes = neighbour_votes(order, vecs, predicted, k, tax) if predicted else {}
    fields: dict[str, FieldDecider] = {}
    fallback: dict[str, str] = {}
    for f, fld in tax.fields.items():
        try:
            clf = FieldClassifier.fit(f, fld.multi_label, X, labels[f])
        except NotEnoughData as e:
            fallback[f] = str(e)
            continue
        oof: list[tuple[np.ndarray, dict[str, float], list[str]]] = []
        for lo, fold_rows in zip(bounds, folds, strict=False):
            rows = [r for r in fold_rows if labels[f][r]]
            if not rows:
                continue
            try:
                fold = FieldClassifier.fit(f, fld.multi_label, X[:lo], labels[f][:lo])
            except NotEnoughData:
                continue
            proba = _aligned(fold, clf.classes, fold.proba(X[rows]))
            oof += [(proba[i], votes[r][f], labels[f][r]) for i, r in enumerate(rows)]
        fields[f] = fit_decider(clf, oof, target_precision)
    return LearnedModel(taxonomy_key(tax), feats, fields, fallback, n, train_s=time.perf_counter() - t0)


def _thinned(rows: list[int], most: int) -> list[int]:
    """At most `most` of the rows, evenly spread over them (they are in time order)."""
    if len(rows) <= most:
        return rows
    return [rows[int(j * len(rows) / most)] for j in range(most)]


def _aligned(fold: FieldClassifier, classes: list[str], proba: np.ndarray) -> np.ndarray:
    """A fold's probabilities in the final model's class order (labels the fold never saw: 0)."""
    out = np.zeros((proba.shape[0], len(classes)))
    for j, c in enumerate(fold.classes):
        if c in classes:
            out[:, classes.index(c)] = proba[:, j]
    return out


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
