"""Conformal prediction sets over a field's (or the mitigation action's) stacked scores, with crepes.

Nonconformity of a class = 1 - its stacked score (scores of one row sum to 1). Fitted on the out-of-fold rows the
calibration uses (older folds predicting newer ones): a new ticket's set at coverage c holds every class whose
p-value is at least 1 - c, so it holds the right one about c of the time, as many classes as that takes. The
guarantee assumes the folds and new tickets are exchangeable; time drift breaks it a little, the eval measures how
much (`evals/actions.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from crepes import ConformalClassifier

MIN_CALIBRATION = 20  # fewer out-of-fold rows than this: no set (its coverage would be a guess)
SEED = 0  # smoothed p-values break ties at random: a fixed seed keeps a ticket's set the same on every run


@dataclass
class ConformalSet:
    classes: list[str]  # the vocabulary the set is drawn from, in a fixed order
    model: ConformalClassifier
    n: int

    @classmethod
    def fit(cls, classes: list[str], true_scores: list[float]) -> ConformalSet | None:
        """From each out-of-fold row's stacked score of its true class (0 when it was no candidate)."""
        if len(true_scores) < MIN_CALIBRATION:
            return None
        alphas = 1.0 - np.clip(np.asarray(true_scores, dtype=float), 0.0, 1.0)
        return cls([str(c) for c in classes], ConformalClassifier().fit(alphas, seed=SEED), len(alphas))

    def predict(self, scores: dict[str, float], coverage: float) -> list[str]:
        """The classes in the set at `coverage`, best score first (may be empty: nothing is plausible enough)."""
        alphas = np.asarray([[1.0 - min(max(scores.get(c, 0.0), 0.0), 1.0) for c in self.classes]])
        member = self.model.predict_set(alphas, confidence=coverage, seed=SEED)[0]
        chosen = [c for c, m in zip(self.classes, member, strict=True) if m]
        return sorted(chosen, key=lambda c: -scores.get(c, 0.0))


def ordinal_range(chosen: list[str], ordered: list[str]) -> list[str]:
    """An ordinal field's set as the contiguous levels from its most to its least severe member."""
    idx = [ordered.index(c) for c in chosen if c in ordered]
    return ordered[min(idx) : max(idx) + 1] if idx else []
