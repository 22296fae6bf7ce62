"""Active learning's choice of what to label next: uncertain first, diverse within a batch, representatives while
no classifier can be trained, reproducible; and the labelling session it drives in the cold-start eval."""

from __future__ import annotations

import numpy as np
import pytest

from bot.config import PROJECT_ROOT
from bot.models import HistoricalIncident
from bot.taxonomy import Category, LabelField, Taxonomy
from bot.triage.active import (
    POOL_FACTOR,
    Probabilities,
    active_order,
    choose,
    cv_accuracy,
    labelled_count,
    margin_uncertainty,
    random_order,
    to_label,
    typical,
    typical_until,
    unlabelled,
)
from bot.triage.classifier import MIN_LABELLED
from tests.conftest import incident

TAX = Taxonomy.load(PROJECT_ROOT / "taxonomies" / "genai.yaml")
# Three kinds of incident, each with its own words and its own region of the embedding space.
KINDS = {
    "errors": "elevated 500 errors failing requests error rate",
    "latency": "slow responses timeouts high latency delays",
    "unavailability": "outage down unreachable login failures",
}


def blobs(per: int, dims: int = 8, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """`per` unit vectors around each of three well separated centres, and each one's centre."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dims)[:3] * 5
    vecs = np.vstack([c + rng.normal(0, 0.3, (per, dims)) for c in centres])
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True), [k for k in range(3) for _ in range(per)]


def history(per: int, labelled: int) -> tuple[list[HistoricalIncident], np.ndarray]:
    """`per` incidents of each kind, the first `labelled` of each labelled with its symptom."""
    vecs, kinds = blobs(per)
    names = list(KINDS)
    out = []
    for r, k in enumerate(kinds):
        j = r - k * per
        labels = {"symptom": [names[k]]} if j < labelled else {}
        out.append(incident(r, f"{names[k]} incident {j}", f"{KINDS[names[k]]} case {j % 4}", labels=labels))
    return out, vecs


def test_margin_uncertainty_is_highest_where_the_two_likeliest_tie() -> None:
    proba = np.asarray([[0.5, 0.5, 0.0], [0.9, 0.05, 0.05], [0.4, 0.35, 0.25]])
    u = margin_uncertainty(proba)
    assert u[0] == pytest.approx(1.0) and u[1] == pytest.approx(0.15) and u[2] == pytest.approx(0.95)
    assert margin_uncertainty(np.asarray([[0.5], [1.0]])).tolist() == pytest.approx([1.0, 0.0])


def test_without_a_classifier_a_batch_is_one_representative_per_cluster() -> None:
    vecs, kinds = blobs(20)
    picked = choose(vecs, range(len(vecs)), 3)
    assert sorted(kinds[r] for r in picked) == [0, 1, 2]


def test_a_batch_is_the_most_uncertain_spread_over_clusters() -> None:
    vecs, kinds = blobs(20)
    # six incidents of cluster 0 are the most uncertain: a pure top-3 would take three of them
    # (clusters 1 and 2 interleaved in the order of uncertainty)
    unc = np.asarray([(0.95 if r < 6 else 0.1) if kinds[r] == 0 else 0.8 for r in range(60)])
    unc -= 0.01 * (np.arange(60) % 20) + 0.001 * (np.arange(60) // 20)
    picked = choose(vecs, range(60), 3, unc)
    assert len(set(picked)) == 3
    assert picked[0] == 0  # the most uncertain of all comes first
    assert sorted(unc[picked], reverse=True) == list(unc[picked])
    # drawn from the POOL_FACTOR * n most uncertain only
    assert set(picked) <= set(np.argsort(-unc)[: POOL_FACTOR * 3].tolist())
    assert sorted(kinds[r] for r in picked) == [0, 1, 2]


def test_choose_respects_the_pool_and_its_size() -> None:
    vecs, _ = blobs(5)
    assert choose(vecs, [1, 2], 5) == [1, 2]
    assert choose(vecs, [], 3) == []
    assert set(choose(vecs, [0, 5, 6, 10, 11], 3)) <= {0, 5, 6, 10, 11}


def test_identical_incidents_still_fill_the_batch() -> None:
    vecs = np.tile(np.eye(4)[0], (10, 1))  # ten copies of one text: k-means finds one distinct cluster
    assert len(set(choose(vecs, range(10), 4))) == 4


def test_choose_and_random_order_are_reproducible() -> None:
    vecs, _ = blobs(20)
    assert choose(vecs, range(60), 5, seed=3) == choose(vecs, range(60), 5, seed=3)
    assert random_order(range(60), 10, seed=1) == random_order(range(60), 10, seed=1)
    assert random_order(range(60), 10, seed=1) != random_order(range(60), 10, seed=2)


def test_unlabelled_is_what_lacks_a_label_of_a_field_asked() -> None:
    incs, _ = history(4, 2)
    assert unlabelled(incs, TAX, ["symptom"]) == [2, 3, 6, 7, 10, 11]
    assert len(unlabelled(incs, TAX, ["symptom", "severity"])) == 12  # nobody has a severity
    invalid = incs[0].model_copy(update={"labels": {"symptom": ["not-a-category"]}})
    assert unlabelled([invalid], TAX, ["symptom"]) == [0]


def test_to_label_asks_only_about_unlabelled_incidents_and_guesses_with_odds() -> None:
    incs, vecs = history(15, 9)  # 27 labelled: a classifier can be trained
    rows, probs = to_label(incs, vecs, TAX, ["symptom"], 5)
    assert len(rows) == 5 and all(not incs[r].labels for r in rows)
    assert probs.uncertainty() is not None and not probs.missing
    guess = probs.guess(rows[0])[0]
    assert guess.field == "symptom" and sum(p for _, p in guess.ranked) == pytest.approx(1.0)
    assert probs.guess(0)[0].ranked[0][0] == "errors"  # a labelled errors incident: the classifier agrees


def test_too_few_labels_means_no_classifier_and_the_most_typical_incidents() -> None:
    incs, vecs = history(6, 2)
    probs = Probabilities(incs, vecs, TAX, ["symptom"])
    assert probs.uncertainty() is None and "labelled incidents" in probs.missing["symptom"]
    rows, _ = to_label(incs, vecs, TAX, ["symptom"], 3)
    assert len(set(rows)) == 3 and not any(incs[r].labels for r in rows)
    fresh, fvecs = history(6, 0)
    rows, _ = to_label(fresh, fvecs, TAX, ["symptom"], 3)
    assert sorted(r // 6 for r in rows) == [0, 1, 2]  # no label yet: one of each kind


def test_a_typical_batch_goes_where_no_label_is_and_takes_its_densest_incident() -> None:
    vecs, kinds = blobs(20)
    picked = typical(vecs, range(60), [0, 20], 1)  # kinds 0 and 1 have a label each
    assert kinds[picked[0]] == 2
    centre = vecs[40:60].mean(axis=0)
    dist = np.linalg.norm(vecs[40:60] - centre, axis=1)
    assert np.linalg.norm(vecs[picked[0]] - centre) <= np.median(dist)  # typical, not an outlier of its kind
    assert typical(vecs, range(60), [], 3, seed=4) == typical(vecs, range(60), [], 3, seed=4)
    assert sorted(typical(vecs, [1, 2], [0], 5)) == [1, 2]  # the pool's size bounds the batch


def test_the_switch_to_uncertainty_follows_the_largest_field() -> None:
    # genai.yaml: symptom has 8 categories, severity 4; never below what a classifier needs
    assert typical_until(TAX, ["symptom"]) == max(MIN_LABELLED, 5 * len(TAX.fields["symptom"].ids))
    assert typical_until(TAX, ["severity"]) == max(MIN_LABELLED, 5 * 4)
    labels = [{"symptom": ["errors"]}, {"symptom": ["nonsense"]}, {"severity": ["sev1"]}]
    assert labelled_count(labels, TAX, ["symptom"]) == 1 and labelled_count(labels, TAX, []) == 0


def test_active_session_asks_in_batches_and_learns_from_the_answers() -> None:
    incs, vecs = history(20, 0)
    truth = {r: dict(symptom=[list(KINDS)[r // 20]]) for r in range(60)}
    asked: list[int] = []

    def answer(r: int) -> dict[str, list[str]]:
        asked.append(r)
        return truth[r]

    order = active_order(incs, vecs, TAX, ["symptom"], range(60), MIN_LABELLED + 10, answer, batch=10)
    assert order == asked and len(set(order)) == MIN_LABELLED + 10
    assert {r // 20 for r in order[:10]} == {0, 1, 2}  # the first batch covers every kind
    prefix = active_order(incs, vecs, TAX, ["symptom"], range(60), 10, lambda r: truth[r], batch=10)
    assert prefix == order[:10]  # a smaller budget is the same session stopped earlier


def test_cv_accuracy_needs_enough_labels() -> None:
    incs, vecs = history(15, 9)
    acc = cv_accuracy(incs, vecs, TAX, "symptom")
    assert isinstance(acc, tuple) and acc[1] == 27 and acc[0] > 0.8
    few, fvecs = history(4, 2)
    assert "labelled incidents" in str(cv_accuracy(few, fvecs, TAX, "symptom"))


def test_a_multi_label_field_is_as_uncertain_as_its_least_sure_label() -> None:
    multi = Taxonomy(
        name="m",
        fields={"component": LabelField(multi_label=True, categories={k: Category() for k in KINDS})},
    )
    incs, vecs = history(15, 15)
    incs = [i.model_copy(update={"labels": {"component": i.labels["symptom"]}}) for i in incs]
    probs = Probabilities(incs, vecs, multi, ["component"])
    p = probs.proba["component"]
    assert p.shape == (45, 3) and probs.multi == {"component": True}
    assert probs.uncertainty() == pytest.approx((1 - np.abs(2 * p - 1)).max(axis=1))
    acc = cv_accuracy(incs, vecs, multi, "component")
    assert isinstance(acc, tuple) and acc[0] > 0.8
