"""Time-ordered out-of-fold predictions, shared by the label fields and the mitigation action (`learned.py`,
`actions.py`): a classifier trained on the oldest incidents predicts the next slice of the history, one trained on
those too the slice after; the neighbours' vote for each of those incidents only sees older incidents."""

from __future__ import annotations

import numpy as np

from bot.models import HistoricalIncident, SimilarIncident
from bot.taxonomy import Taxonomy
from bot.triage.classifier import FieldClassifier, NotEnoughData, PreLabelRows
from bot.triage.decision import FieldDecider, fit_decider
from bot.triage.vote import knn_votes


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


def thinned(rows: list[int], most: int) -> list[int]:
    """At most `most` of the rows, evenly spread over them (they are in time order)."""
    if len(rows) <= most:
        return rows
    return [rows[int(j * len(rows) / most)] for j in range(most)]


def aligned(fold: FieldClassifier, classes: list[str], proba: np.ndarray) -> np.ndarray:
    """A fold's probabilities in the final model's class order (labels the fold never saw: 0)."""
    out = np.zeros((proba.shape[0], len(classes)))
    for j, c in enumerate(fold.classes):
        if c in classes:
            out[:, classes.index(c)] = proba[:, j]
    return out


def fit_field(
    name: str,
    multi: bool,
    X,  # type: ignore[no-untyped-def]
    labels: list[list[str]],
    bounds: list[int],
    folds: list[list[int]],
    votes: dict[int, dict[str, float]],
    target_precision: float,
    pre: PreLabelRows | None = None,
) -> FieldDecider:
    """One field's decider: the classifier on every labelled row, the stacking, calibration, threshold and conformal
    set on the folds' out-of-fold rows (`votes`: each predicted row's neighbours' vote). NotEnoughData: too few.

    `pre` (LLM pre-labels at their measured weight) trains the classifiers, the folds' too (their older rows only),
    but the out-of-fold rows are scored against the engineers' labels alone: a pre-label is never the truth."""
    clf = FieldClassifier.fit(name, multi, X, labels, pre)
    oof: list[tuple[np.ndarray, dict[str, float], list[str]]] = []
    for lo, fold_rows in zip(bounds, folds, strict=False):
        rows = [r for r in fold_rows if labels[r]]
        if not rows:
            continue
        try:
            fold = FieldClassifier.fit(
                name, multi, X[:lo], labels[:lo], pre.head(lo) if pre is not None else None
            )
        except NotEnoughData:
            continue
        proba = aligned(fold, clf.classes, fold.proba(X[rows]))
        oof += [(proba[i], votes[r], labels[r]) for i, r in enumerate(rows)]
    return fit_decider(clf, oof, target_precision)
