"""The mitigation action learned like a label field: each history incident's action (`bot.triage.mitigation`: its
labels, else an engineer's verdict, else its resolution text) is its label in a taxonomy view where the action is a
field, and the label machinery does the rest (`folds.fit_field`: classifier, the neighbours' mapped fixes stacked on
time-ordered folds, Platt/isotonic calibration, the abstention threshold, the conformal set).

Features: the ticket's (the label model's featurizer) and the root-cause probabilities. Those come from the label
model's root-cause classifier at triage time; for the history they are cross-fitted (each half of the labelled
incidents predicted by a classifier trained on the other half), so the action model does not learn to trust
in-sample probabilities it will never see on a new ticket.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix, hstack

from bot.models import HistoricalIncident
from bot.taxonomy import MITIGATION, Category, LabelField, Taxonomy
from bot.triage.classifier import MIN_LABELLED, FieldClassifier, NotEnoughData, field_labels
from bot.triage.decision import FieldDecider
from bot.triage.folds import aligned, fit_field, neighbour_votes, thinned

ROOT_CAUSE = "root_cause"  # the label field whose probabilities are features of the action


@dataclass
class ActionModel:
    decider: FieldDecider
    vocabulary: list[str]  # the mitigation ids when trained
    root_cause: list[str] | None  # the root-cause classes whose probabilities are features (None: not used)
    n_known: int  # history incidents with a known action

    def features(self, X, rc_proba: np.ndarray | None):  # type: ignore[no-untyped-def]
        """The ticket's features, with its root-cause probabilities when the model was trained on them."""
        if self.root_cause is None:
            return X
        rc = (
            np.zeros((X.shape[0], len(self.root_cause)))
            if rc_proba is None
            else rc_proba.reshape(X.shape[0], -1)
        )
        return hstack([X, csr_matrix(rc)]).tocsr()

    def describe(self) -> str:
        d = self.decider
        return f"mitigation: {self.n_known} with a known fix, threshold {d.threshold:.2f}"


def action_view(tax: Taxonomy) -> Taxonomy:
    """The taxonomy's mitigation vocabulary as the one field of a taxonomy (what the label machinery trains on)."""
    assert tax.mitigation is not None
    cats = {
        cid: Category(title=c.title, description=c.description)
        for cid, c in tax.mitigation.categories.items()
    }
    return Taxonomy(name=f"{tax.name}:{MITIGATION}", fields={MITIGATION: LabelField(categories=cats)})


def fit_actions(
    tax: Taxonomy,
    order: list[HistoricalIncident],
    vecs: np.ndarray,
    X,  # type: ignore[no-untyped-def]
    actions: list[str | None],
    bounds: list[int],
    fields: dict[str, FieldDecider],
    *,
    k: int,
    target_precision: float,
    per_fold: int,
) -> ActionModel | str:
    """The action's decision on the history in time order (`actions` aligned with `order`), or why there is none."""
    view = action_view(tax)
    labels = [[a] if a and view.is_valid(MITIGATION, a) else [] for a in actions]
    if (n_known := sum(1 for lab in labels if lab)) < MIN_LABELLED:
        return f"{n_known} incidents with a known fix (< {MIN_LABELLED})"
    rc = fields.get(ROOT_CAUSE)
    Xa = X
    if rc is not None and not rc.clf.multi:
        R = _cross_fitted(rc, X, [field_labels(tax, ROOT_CAUSE, i) for i in order])
        Xa = hstack([X, csr_matrix(R)]).tocsr()
    folds = [
        thinned([r for r in range(lo, hi) if labels[r]], per_fold) for lo, hi in itertools.pairwise(bounds)
    ]
    predicted = [r for fold in folds for r in fold]
    # the neighbours' mapped fixes: the same vote as a field's, over each incident's action
    as_labelled = [
        i.model_copy(update={"labels": {MITIGATION: lab}}) for i, lab in zip(order, labels, strict=True)
    ]
    votes = neighbour_votes(as_labelled, vecs, predicted, k, view) if predicted else {}
    try:
        decider = fit_field(MITIGATION, False, Xa, labels, bounds, folds,
                            {r: v[MITIGATION] for r, v in votes.items()}, target_precision)  # fmt: skip
    except NotEnoughData as e:
        return f"{e} (incidents with a known fix)"
    rc_classes = list(rc.clf.classes) if Xa is not X and rc is not None else None
    return ActionModel(decider, view.fields[MITIGATION].ids, rc_classes, n_known)


def _cross_fitted(rc: FieldDecider, X, labels: list[list[str]]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Root-cause probabilities of every history row, each from a classifier that did not see that row's label:
    labelled rows split in two (alternately, so both halves span the whole time range), each half predicted by a
    classifier of the other; unlabelled rows get the mean of both."""
    classes = rc.clf.classes
    out = np.zeros((X.shape[0], len(classes)))
    rows = [i for i, lab in enumerate(labels) if lab]
    halves = [set(rows[0::2]), set(rows[1::2])]
    unlabelled = [i for i, lab in enumerate(labels) if not lab]
    for h, other in ((0, 1), (1, 0)):
        train = [lab if i in halves[other] else [] for i, lab in enumerate(labels)]
        try:
            clf = FieldClassifier.fit(rc.field, False, X, train)
        except NotEnoughData:
            return np.full((X.shape[0], len(classes)), 1 / len(classes))  # flat: no information
        mine = sorted(halves[h])
        if mine:
            out[mine] = aligned(clf, classes, clf.proba(X[mine]))
        if unlabelled:
            out[unlabelled] += aligned(clf, classes, clf.proba(X[unlabelled])) / 2
    return out
