"""Per-field classifiers trained on labelled history: TF-IDF word and character n-grams of the ticket text (plus its
service and source) -> a linear model per taxonomy field, single- or multi-label.

Only what is known at triage time is a feature: the title, the first update, the service and the sender.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import sklearn
from scipy.sparse import csr_matrix, hstack
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

from bot.models import HistoricalIncident
from bot.taxonomy import Taxonomy
from bot.triage.negation import mark_negated

MIN_LABELLED = 20  # fewer labelled incidents than this for a field: the vote decides, not a classifier
MAX_CHARS = 2000
VECTOR_DIMS = 64  # principal components of the MiniLM vector used as features


def features_text(body: str, service: str | None, source: str | None) -> str:
    """The ticket's (redacted) text with its service and sender as tokens of their own. A denied or supposed word
    ("No deployment announced") is a token of its own (`not_deployment`): it must not count for what it denies."""
    meta = " ".join(
        f"__{k}_{v}".lower().replace(" ", "_") for k, v in (("svc", service), ("src", source)) if v
    )
    return f"{mark_negated(body[:MAX_CHARS])} {meta}"


class Featurizer:
    """Word 1-2-grams (TF-IDF, fitted on the history's texts) beside the stored MiniLM vector of each incident,
    reduced to its first VECTOR_DIMS principal components (fitted on the history's vectors).

    Why reduced: the 384 dense values were ~85% of every row's non-zeros, so of the linear models' training time;
    64 components keep most of the vectors' variance. Character n-grams were tried and dropped: at 10k incidents
    they took most of the retraining time here."""

    def __init__(self) -> None:
        self.word = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=50_000, sublinear_tf=True)
        self.pca: PCA | None = None

    def fit_transform(self, texts: list[str], vectors: np.ndarray):  # type: ignore[no-untyped-def]
        words = self.word.fit_transform(texts)
        self._check(words, vectors)
        dims = min(VECTOR_DIMS, *vectors.shape)
        self.pca = PCA(dims, svd_solver="randomized", random_state=0).fit(vectors) if dims else None
        return self._join(words, vectors)

    def transform(self, texts: list[str], vectors: np.ndarray):  # type: ignore[no-untyped-def]
        words = self.word.transform(texts)
        self._check(words, vectors)
        return self._join(words, vectors)

    @staticmethod
    def _check(words, vectors: np.ndarray) -> None:  # type: ignore[no-untyped-def]
        if vectors.ndim != 2 or vectors.shape[0] != words.shape[0]:
            raise ValueError("one vector per text is needed")

    def _join(self, words, vectors: np.ndarray):  # type: ignore[no-untyped-def]
        reduced = self.pca.transform(vectors) if self.pca is not None else vectors
        return hstack([words, csr_matrix(reduced)]).tocsr()


def valid_labels(taxonomy: Taxonomy, field: str, labels: Iterable[str]) -> list[str]:
    """The labels of a field that the taxonomy knows, each once, in their order (others are not trained on)."""
    return [lab for lab in dict.fromkeys(labels) if taxonomy.is_valid(field, lab)]


def field_labels(taxonomy: Taxonomy, field: str, inc: HistoricalIncident) -> list[str]:
    """The incident's (engineers') labels for a field that the taxonomy knows."""
    return valid_labels(taxonomy, field, inc.labels.get(field, []))


@dataclass(frozen=True)
class PreLabelRows:
    """Training rows a field gains from LLM pre-labels (`bot.triage.prelabels`), aligned with the history's rows:
    the labels and their weight where the engineers gave none and the model's measured weight is above 0, else []
    and 0."""

    labels: list[list[str]]
    weights: list[float]

    def head(self, n: int) -> PreLabelRows:
        return PreLabelRows(self.labels[:n], self.weights[:n])


class NotEnoughData(ValueError):
    """Too few labelled incidents, or a single class: the caller falls back to the vote and says why."""


@dataclass
class FieldClassifier:
    """One field's model: P(label) for every label it has seen."""

    field: str
    multi: bool
    classes: list[str]
    model: object
    n_train: int  # engineers' labels it was trained on
    n_pre: int = 0  # LLM pre-labels beside them (`bot.triage.prelabels`), each at its model's measured weight

    @classmethod
    def fit(
        cls,
        field: str,
        multi: bool,
        X,  # type: ignore[no-untyped-def]
        labels: list[list[str]],
        pre: PreLabelRows | None = None,
    ) -> FieldClassifier:
        """`labels`: the engineers', which alone decide whether there is enough to train. `pre`: rows without one
        that an LLM pre-labelled, at their weight (an engineer's row weighs 1); without any the fit is unweighted."""
        rows = [i for i, labs in enumerate(labels) if labs]
        if len(rows) < MIN_LABELLED:
            raise NotEnoughData(f"{len(rows)} labelled incidents (< {MIN_LABELLED})")
        extra = [i for i, w in enumerate(pre.weights) if w > 0 and not labels[i]] if pre is not None else []
        targets = [labels[i] for i in rows] + ([pre.labels[i] for i in extra] if pre is not None else [])
        sw = (
            np.asarray([1.0] * len(rows) + [pre.weights[i] for i in extra])
            if pre is not None and extra
            else None
        )
        if multi:
            mlb = MultiLabelBinarizer()
            y = mlb.fit_transform([labels[i] for i in rows])
            if not ((y.sum(axis=0) > 0) & (y.sum(axis=0) < len(rows))).any():
                raise NotEnoughData("every labelled incident has the same labels")
            model = _fit(X[rows + extra], mlb.fit_transform(targets) if extra else y, sw)
            return cls(field, True, list(mlb.classes_), model, len(rows), len(extra))
        y1 = [labels[i][0] for i in rows]
        if len(Counter(y1)) < 2:
            raise NotEnoughData(f"one class only ({y1[0]})")
        model = _fit(X[rows + extra], [t[0] for t in targets], sw)
        return cls(field, False, list(model.classes_), model, len(rows), len(extra))

    def proba(self, X) -> np.ndarray:  # type: ignore[no-untyped-def]
        """Rows of P(label) in `classes` order (multi-label: independent per label)."""
        return np.asarray(self.model.predict_proba(X))  # type: ignore[attr-defined]


def _fit(X, y, weights: np.ndarray | None = None) -> OneVsRestClassifier:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a capped number of epochs is the point
        if weights is None:  # as before pre-labels existed, to the bit
            return OneVsRestClassifier(_linear(), n_jobs=1).fit(X, y)
        # OneVsRestClassifier hands sample_weight to its estimators only through metadata routing
        with sklearn.config_context(enable_metadata_routing=True):
            linear = _linear().set_fit_request(sample_weight=True)
            return OneVsRestClassifier(linear, n_jobs=1).fit(X, y, sample_weight=weights)


def _linear() -> SGDClassifier:
    # Logistic loss by averaged SGD, one-vs-rest (probabilities normalised for single-label): liblinear took ~5 s a
    # fit at 10k incidents here, this well under one; the stacking and isotonic steps calibrate what it outputs.
    return SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=10, tol=1e-3, average=True, random_state=0)
