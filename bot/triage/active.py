"""Which unlabelled history incidents an engineer should label next: active learning, typical first, then uncertain.

Two regimes, as "Active Learning on a Budget" (Hacohen, Dekel and Weinshall, ICML 2022) found: with few labels a
classifier's uncertainty is noise and the best batch is the most *typical* incidents of the regions no label covers
yet (their TypiClust: k-means into labelled + n clusters, then the densest incident of each of the n largest
clusters holding no label); with more labels, the incidents the classifier is least sure of. The switch is at
`TYPICAL_PER_CATEGORY` labels per category of the largest field asked (55 for a field of 11 categories), and never
before each field asked has the `MIN_LABELLED` labels its classifier needs.

The uncertain regime draws a batch in two steps: the `POOL_FACTOR * n` incidents the current classifier is least
sure of (the smallest margin between its two likeliest labels, or for a multi-label field that of its least sure
yes/no, averaged over the fields asked), then one per k-means cluster of their embeddings, the most uncertain of
each, so a batch is not ten copies of one outage.

The classifier asked is the product's own (`Featurizer` and `FieldClassifier` of `bot.triage.classifier`): the
uncertainty is that of the model that will be trained on the answers.

Why scikit-learn directly and not a library: scikit-activeml (well kept) wants its own estimator wrappers and a
label array with a MISSING_LABEL marker, small-text its own datasets and classifiers (and was last released in
2024), modAL has not been released since 2023; each would be a new dependency for what margin sampling, k-means
and a nearest-neighbour density, about sixty lines here, already do, around the classifier the bot trains anyway.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning

from bot.models import HistoricalIncident
from bot.taxonomy import Taxonomy
from bot.triage.classifier import (
    MIN_LABELLED,
    Featurizer,
    FieldClassifier,
    NotEnoughData,
    features_text,
    field_labels,
    valid_labels,
)

POOL_FACTOR = 4  # a batch of n is drawn from the 4n most uncertain incidents: uncertain first, then diverse
# Labels per category of the largest field asked below which a batch is the most typical incidents (not the most
# uncertain): Hacohen et al. saw typicality win up to a few labels per class. A judgement, not fitted here.
TYPICAL_PER_CATEGORY = 5
TYPICAL_NEIGHBOURS = (
    20  # typicality: 1 / mean distance to this many nearest members of the cluster (TypiClust's)
)
TYPICAL_SAMPLE = 2000  # members of a large cluster the density is measured on (a 100k history stays fast)
MAX_CLUSTERS = 500  # k-means beyond this many clusters costs more than a batch is worth
STRATEGIES = ("active", "random")


@dataclass(frozen=True)
class Guess:
    """The current classifier's view of one field of one incident: labels best first, with their probabilities."""

    field: str
    ranked: list[tuple[str, float]]


class Probabilities:
    """Each field's classifier on the labelled incidents of a history, and its probabilities for every incident.
    A field with too few labels (or one class) has none: `missing` says why."""

    def __init__(
        self,
        history: Sequence[HistoricalIncident],
        vectors: np.ndarray,
        taxonomy: Taxonomy,
        fields: Sequence[str],
        X=None,  # type: ignore[no-untyped-def]
    ) -> None:
        self.fields = list(fields)
        self.classes: dict[str, list[str]] = {}
        self.proba: dict[str, np.ndarray] = {}
        self.missing: dict[str, str] = {}
        self.multi: dict[str, bool] = {}
        try:
            self.X = X if X is not None else features(history, vectors)
        except ValueError as e:  # a history too small for text features (one incident: TF-IDF's min_df of 2)
            self.missing = dict.fromkeys(self.fields, f"no text features to fit on: {e}")
            return
        for f in self.fields:
            fld = taxonomy.fields[f]
            try:
                clf = FieldClassifier.fit(
                    f, fld.multi_label, self.X, [field_labels(taxonomy, f, i) for i in history]
                )
            except NotEnoughData as e:
                self.missing[f] = str(e)
                continue
            self.classes[f], self.proba[f] = clf.classes, clf.proba(self.X)
            self.multi[f] = fld.multi_label

    def uncertainty(self) -> np.ndarray | None:
        """Per incident, the classifier's uncertainty averaged over the fields that have one (single-label: 1 -
        the margin between its two likeliest labels; multi-label: that of the label it is least sure of, each
        label being a yes/no of its own); None when none has."""
        if not self.proba:
            return None
        per_field = [
            (1 - np.abs(2 * p - 1)).max(axis=1) if self.multi[f] else margin_uncertainty(p)
            for f, p in self.proba.items()
        ]
        return np.mean(per_field, axis=0)

    def guess(self, row: int, top: int = 3) -> list[Guess]:
        out = []
        for f, p in self.proba.items():
            order = np.argsort(-p[row])[:top]
            out.append(Guess(f, [(self.classes[f][j], float(p[row, j])) for j in order]))
        return out


def features(history: Sequence[HistoricalIncident], vectors: np.ndarray):  # type: ignore[no-untyped-def]
    """The classifier's features of every incident (TF-IDF and PCA fitted on the whole history: no labels used)."""
    return Featurizer().fit_transform([features_text(i.body, i.service, i.source) for i in history], vectors)


def margin_uncertainty(proba: np.ndarray) -> np.ndarray:
    """1 - (p1 - p2) per row, p1 and p2 its two largest probabilities (one label: 1 - |2p - 1|)."""
    if proba.shape[1] < 2:
        return 1 - np.abs(2 * proba[:, 0] - 1)
    top2 = -np.sort(-proba, axis=1)[:, :2]
    return 1 - (top2[:, 0] - top2[:, 1])


def choose(
    vectors: np.ndarray, pool: Sequence[int], n: int, uncertainty: np.ndarray | None = None, *, seed: int = 0
) -> list[int]:
    """n rows of `pool` to label next, the most uncertain first (`uncertainty`: one value per row of `vectors`;
    None: one representative per k-means cluster of the pool, the incident nearest its centre)."""
    pool = list(pool)
    n = min(n, len(pool))
    if n <= 0:
        return []
    if uncertainty is not None:
        pool = sorted(pool, key=lambda r: (-uncertainty[r], r))[: POOL_FACTOR * n]
    if n == len(pool):
        picked = pool
    else:
        km = kmeans(vectors[pool], n, seed, n_init=3)
        dist = np.linalg.norm(vectors[pool] - km.cluster_centers_[km.labels_], axis=1)
        picked = []
        for c in range(n):
            members = [j for j in range(len(pool)) if km.labels_[j] == c]
            if not members:  # fewer distinct incidents than clusters (copies of one text)
                continue
            if uncertainty is not None:
                best = max(members, key=lambda j: (uncertainty[pool[j]], -j))
            else:
                best = min(members, key=lambda j: (dist[j], j))
            picked.append(pool[best])
        picked += [r for r in pool if r not in picked][: n - len(picked)]
    if uncertainty is not None:
        return sorted(picked, key=lambda r: (-uncertainty[r], r))
    return picked


def kmeans(points: np.ndarray, k: int, seed: int, *, n_init: int) -> KMeans | MiniBatchKMeans:
    """k-means of `points` into k clusters, mini-batch above 10,000 rows. Copies of one text give fewer distinct
    clusters than asked: k-means warns, and the callers top their batch up."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if len(points) <= 10_000:
            return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(points)
        return MiniBatchKMeans(n_clusters=k, n_init=n_init, random_state=seed, batch_size=4096).fit(points)


def typical(
    vectors: np.ndarray, pool: Sequence[int], labelled: Sequence[int], n: int, *, seed: int = 0
) -> list[int]:
    """n rows of `pool` to label next while labels are few (TypiClust): k-means over the pool and the labelled rows
    into len(labelled) + n clusters, then from each of the n largest clusters holding no labelled row its most
    typical incident (the densest: nearest to its own neighbours), largest cluster first."""
    pool = list(dict.fromkeys(pool))
    n = min(n, len(pool))
    if n <= 0:
        return []
    in_pool, done = set(pool), set(labelled)
    rows = pool + [r for r in dict.fromkeys(labelled) if r not in in_pool]
    k = min(len(done) + n, len(rows), MAX_CLUSTERS)
    cluster = kmeans(vectors[rows], k, seed, n_init=1).labels_
    covered = {int(c) for c, r in zip(cluster, rows, strict=True) if r in done}
    members: dict[int, list[int]] = {}  # each cluster's pool rows, in one pass (not one per cluster)
    for c, r in zip(cluster, rows, strict=True):
        if r in in_pool:
            members.setdefault(int(c), []).append(r)
    sizes = np.bincount(cluster, minlength=k)
    picked: list[int] = []
    for c in sorted(range(k), key=lambda c: (-int(sizes[c]), c)):
        if c not in covered and c in members:
            picked.append(most_typical(vectors, members[c], seed))
        if len(picked) == n:
            break
    picked += [r for r in pool if r not in picked][: n - len(picked)]
    return picked


def most_typical(vectors: np.ndarray, members: list[int], seed: int = 0) -> int:
    """The member with the highest typicality: 1 / its mean cosine distance (retrieval's measure) to its
    TYPICAL_NEIGHBOURS nearest members (measured on a sample of TYPICAL_SAMPLE members of a larger cluster)."""
    from sklearn.neighbors import NearestNeighbors

    if len(members) > TYPICAL_SAMPLE:
        members = sorted(random.Random(seed).sample(members, TYPICAL_SAMPLE))
    kk = min(TYPICAL_NEIGHBOURS, len(members) - 1)
    if kk <= 0:
        return members[0]
    nn = NearestNeighbors(n_neighbors=kk + 1, metric="cosine").fit(vectors[members])
    dist, _ = nn.kneighbors(vectors[members])
    return members[int(np.argmin(dist[:, 1:].mean(axis=1)))]  # column 0: itself


def typical_until(taxonomy: Taxonomy, fields: Sequence[str]) -> int:
    """Labels (of every field asked) below which a batch is chosen by typicality, not uncertainty."""
    biggest = max((len(taxonomy.fields[f].ids) for f in fields), default=0)
    return max(MIN_LABELLED, TYPICAL_PER_CATEGORY * biggest)


def labelled_count(labels: Sequence[dict[str, list[str]]], taxonomy: Taxonomy, fields: Sequence[str]) -> int:
    """Labelled incidents of the least labelled field asked."""
    return min(
        (sum(1 for lab in labels if valid_labels(taxonomy, f, lab.get(f, []))) for f in fields),
        default=0,
    )


def random_order(pool: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """n rows of the pool drawn at random, reproducibly."""
    return random.Random(seed).sample(list(pool), min(n, len(pool)))


def active_order(
    history: Sequence[HistoricalIncident],
    vectors: np.ndarray,
    taxonomy: Taxonomy,
    fields: Sequence[str],
    pool: Sequence[int],
    n: int,
    answer: Callable[[int], dict[str, list[str]]],
    *,
    batch: int = 10,
    seed: int = 0,
) -> list[int]:
    """A labelling session of n incidents from `pool`, batch by batch: each batch chosen by `next_batch` with the
    classifier retrained on the answers so far (`answer(row)`: the labels the engineer gives). The order is the
    order asked: its first k rows are the session stopped after k. Incidents outside the pool keep their labels."""
    X = features(history, vectors)
    labels = [dict(i.labels) for i in history]
    for r in pool:
        labels[r] = {}
    covered = [r for r, lab in enumerate(labels) if any(lab.get(f) for f in fields)]
    asked: list[int] = []
    left = set(pool)
    while len(asked) < n and left:

        def uncertainty() -> np.ndarray | None:
            current = [i.model_copy(update={"labels": lab}) for i, lab in zip(history, labels, strict=True)]
            return Probabilities(current, vectors, taxonomy, fields, X).uncertainty()

        # an incident asked covers its region even when its answer had no label (not asked about it again)
        rows = next_batch(vectors, taxonomy, fields, labels, covered + asked, sorted(left),
                          min(batch, n - len(asked)), uncertainty, seed=seed + len(asked))  # fmt: skip
        for r in rows:
            labels[r] = answer(r)
            left.discard(r)
        asked += rows
    return asked


def next_batch(
    vectors: np.ndarray,
    taxonomy: Taxonomy,
    fields: Sequence[str],
    labels: Sequence[dict[str, list[str]]],
    covered: Sequence[int],
    pool: Sequence[int],
    n: int,
    uncertainty: Callable[[], np.ndarray | None],
    *,
    seed: int = 0,
) -> list[int]:
    """One batch of n rows of `pool`: the most typical of the regions no `covered` row is in while the least
    labelled field asked has fewer than `typical_until` labels (`labels`: every row's), else the most uncertain."""
    if labelled_count(labels, taxonomy, fields) < typical_until(taxonomy, fields):
        return typical(vectors, pool, covered, n, seed=seed)
    return choose(vectors, pool, n, uncertainty(), seed=seed)


def unlabelled(history: Sequence[HistoricalIncident], taxonomy: Taxonomy, fields: Sequence[str]) -> list[int]:
    """Rows with text that lack a (valid) label for at least one of the fields."""
    return [
        r
        for r, inc in enumerate(history)
        if inc.body.strip() and any(not field_labels(taxonomy, f, inc) for f in fields)
    ]


def to_label(
    history: Sequence[HistoricalIncident],
    vectors: np.ndarray,
    taxonomy: Taxonomy,
    fields: Sequence[str],
    n: int,
    *,
    seed: int = 0,
) -> tuple[list[int], Probabilities]:
    """The n unlabelled incidents to ask about first (`next_batch`: typical while labels are few, then the current
    classifier's uncertainty), and the classifier's probabilities, to show its guess beside each."""
    probs = Probabilities(history, vectors, taxonomy, fields)
    labels = [i.labels for i in history]
    covered = [r for r, lab in enumerate(labels) if any(lab.get(f) for f in fields)]
    pool = unlabelled(history, taxonomy, fields)
    return next_batch(
        vectors, taxonomy, fields, labels, covered, pool, n, probs.uncertainty, seed=seed
    ), probs


def cv_accuracy(
    history: Sequence[HistoricalIncident],
    vectors: np.ndarray,
    taxonomy: Taxonomy,
    field: str,
    *,
    folds: int = 5,
    X=None,  # type: ignore[no-untyped-def]
) -> tuple[float, int] | str:
    """The field classifier's k-fold cross-validated accuracy on the labelled incidents (its top label is a gold
    one) and how many were scored; else why there is none (too few labels, one class)."""
    from sklearn.model_selection import KFold

    labels = [field_labels(taxonomy, field, i) for i in history]
    rows = np.asarray([r for r, labs in enumerate(labels) if labs])
    if len(rows) < folds:
        return f"{len(rows)} labelled incidents"
    X = X if X is not None else features(history, vectors)
    multi = taxonomy.fields[field].multi_label
    hits: list[bool] = []
    for train, test in KFold(folds, shuffle=True, random_state=0).split(rows):
        try:
            clf = FieldClassifier.fit(field, multi, X[rows[train]], [labels[r] for r in rows[train]])
        except NotEnoughData as e:
            return str(e)
        top = np.argmax(clf.proba(X[rows[test]]), axis=1)
        hits += [clf.classes[j] in labels[r] for j, r in zip(top, rows[test], strict=True)]
    return float(np.mean(hits)), len(hits)
