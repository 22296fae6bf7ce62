"""Calibration and selective-prediction metrics, their plots and summary line (small hand-computed cases)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from evals import metrics
from evals.report import calibration_plots, markdown


def test_perfectly_calibrated_set_has_zero_ece_and_diagonal_reliability() -> None:
    # 10 cases at 0.8 (8 right) and 10 at 0.3 (3 right): accuracy equals confidence in each bin.
    conf = [0.8] * 10 + [0.3] * 10
    correct = [True] * 8 + [False] * 2 + [True] * 3 + [False] * 7
    assert metrics.ece(conf, correct) == pytest.approx(0.0)
    points = metrics.reliability(conf, correct)
    assert len(points) == 2
    for p in points:
        assert p["accuracy"] == pytest.approx(p["confidence"])
        assert p["n"] == 10
        assert p["lo"] < p["confidence"] <= p["hi"]
    assert [p["confidence"] for p in points] == pytest.approx([0.3, 0.8])


def test_reliability_binning_matches_ece() -> None:
    conf = [0.0, 0.05, 0.1, 0.15, 0.95, 1.0]
    correct = [False, True, True, False, True, True]
    points = metrics.reliability(conf, correct, bins=10)
    # 0.0, 0.05 and 0.1 fall in the first bin [0, 0.1]; 0.15 in (0.1, 0.2]; 0.95 and 1.0 in (0.9, 1].
    assert [p["n"] for p in points] == [3, 1, 2]
    assert points[0]["lo"] == 0.0 and points[0]["hi"] == pytest.approx(0.1)
    assert points[0]["accuracy"] == pytest.approx(2 / 3)
    assert points[0]["confidence"] == pytest.approx(0.05)
    weighted = sum(p["n"] / len(conf) * abs(p["accuracy"] - p["confidence"]) for p in points)
    assert weighted == pytest.approx(metrics.ece(conf, correct))
    assert metrics.reliability([], []) == []


def test_risk_coverage_thresholds_descend() -> None:
    conf = [0.9, 0.5, 0.7, 0.5]
    correct = [True, False, True, True]
    points = metrics.risk_coverage(conf, correct)
    assert [p["threshold"] for p in points] == [0.9, 0.7, 0.5]
    assert points[0]["coverage"] == pytest.approx(1 / 4)
    assert points[0]["accuracy"] == 1.0
    assert points[1] == {"threshold": 0.7, "coverage": 0.5, "accuracy": 1.0}
    assert points[2]["coverage"] == 1.0
    assert points[2]["accuracy"] == pytest.approx(3 / 4)
    assert metrics.risk_coverage([], []) == []


def test_selective() -> None:
    s = metrics.selective([True, False, True, True], [False, False, True, False])
    assert s["n"] == 4
    assert s["coverage"] == pytest.approx(3 / 4)
    assert s["accuracy"] == pytest.approx(2 / 3)
    none = metrics.selective([True, False], [True, True])
    assert none["coverage"] == 0.0 and none["accuracy"] == 0.0
    assert metrics.selective([], [])["coverage"] == 0.0


def test_wilson_interval() -> None:
    lo, hi = metrics.wilson_interval(8, 10)
    assert lo == pytest.approx(0.490, abs=0.005)
    assert hi == pytest.approx(0.943, abs=0.005)
    assert metrics.wilson_interval(0, 0) == [0.0, 1.0]
    lo0, hi0 = metrics.wilson_interval(0, 10)
    assert lo0 == 0.0 and 0.0 < hi0 < 0.35
    lo1, hi1 = metrics.wilson_interval(10, 10)
    assert hi1 == pytest.approx(1.0) and 0.65 < lo1 < 1.0


def test_bootstrap_interval_contains_point_estimate_and_is_reproducible() -> None:
    gold = ["a", "b", "c", "a", "b", "c", "a", "b", "c", "a"] * 3
    pred = ["a", "b", "c", "a", "c", "c", "b", "b", "c", "a"] * 3

    def macro(idx: np.ndarray) -> float:
        return metrics.single_label([gold[i] for i in idx], [pred[i] for i in idx])["macro_f1"]

    point = metrics.single_label(gold, pred)["macro_f1"]
    lo, hi = metrics.bootstrap_interval(macro, len(gold), n_boot=200, seed=1)
    assert 0.0 <= lo <= point <= hi <= 1.0
    assert lo < hi
    assert metrics.bootstrap_interval(macro, len(gold), n_boot=200, seed=1) == [lo, hi]
    assert metrics.bootstrap_interval(macro, 0) == [0.0, 0.0]


def _tiny_report(calibration: dict | None) -> dict:
    report = {
        "dataset": "tiny",
        "source": "hand-made",
        "taxonomy": "t",
        "model": "m",
        "cases": 4,
        "repeat": 1,
        "history_size": 0,
        "k": 3,
        "skipped": {"count": 0, "first": []},
        "scores": {"combined": {"severity": {"n": 4, "accuracy": 0.75, "macro_f1": 0.7}}},
        "retrieval": {"n": 0, "hit_at_k": 0.0, "mrr": 0.0},
        "llm_validity": {},
        "playbook_fit": {"n": 0, "rate": None},
        "mitigation": {"n": 0, "cosine": None, "rouge_l": None},
        "tokens_per_triage": 0.0,
        "latency_s": {},
    }
    if calibration is not None:
        report["calibration"] = calibration
    return report


def _entry(conf: list[float], correct: list[bool], abstained: list[bool]) -> dict:
    sel = metrics.selective(correct, abstained)
    answered = [c for c, a in zip(correct, abstained, strict=True) if not a]
    sel["interval"] = metrics.wilson_interval(sum(answered), len(answered))
    return {
        "ece": metrics.ece(conf, correct),
        "reliability": metrics.reliability(conf, correct),
        "risk_coverage": metrics.risk_coverage(conf, correct),
        "selective": sel,
        "n": len(conf),
    }


def test_calibration_plots_and_markdown(tmp_path: Path) -> None:
    conf, correct = [0.9, 0.5, 0.7, 0.2], [True, False, True, False]
    abstained = [False, True, False, True]
    calibration = {
        "combined": {
            "severity": _entry(conf, correct, abstained),
            "service": _entry(conf, correct, abstained),
        },
        "llm+retrieval": {"severity": _entry(conf, correct, abstained)},
        "knn": {"severity": {}},  # no data: skipped
    }
    report = _tiny_report(calibration)
    written = calibration_plots(report, tmp_path)
    names = sorted(p.name for p in written)
    assert names == [
        "reliability-combined.png",
        "reliability-llm-retrieval.png",
        "risk-coverage-combined.png",
        "risk-coverage-llm-retrieval.png",
    ]
    for p in written:
        assert p.parent == tmp_path and p.stat().st_size > 1000
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == names

    md = markdown(report)
    assert (
        "- calibration combined/severity: ECE 0.275; answered 50% of cases (not abstained) "
        "at accuracy 1.000 [0.34, 1.00]; n 4"
    ) in md
    assert "- calibration llm+retrieval/severity:" in md
    assert "knn/severity" not in md


def test_no_calibration_writes_nothing(tmp_path: Path) -> None:
    for report in (_tiny_report(None), _tiny_report({})):
        assert calibration_plots(report, tmp_path) == []
        assert "calibration" not in markdown(report)
    assert list(tmp_path.iterdir()) == []


def test_markdown_tolerates_missing_keys() -> None:
    md = markdown(_tiny_report({"combined": {"severity": {"ece": 0.1}, "service": {"selective": {}}}}))
    assert "- calibration combined/severity: ECE 0.100" in md
    assert "- calibration combined/service: no data" in md


def test_multi_label_scores_with_one_label_in_all() -> None:
    """A small set (or a bootstrap resample of one) where a single label occurs: sklearn would read the one column
    as binary (refusing samples-F1 and averaging in "absent"); the scores are those of that label."""
    s = metrics.multi_label([["a"], ["a"], []], [["a"], [], ["a"]])
    assert s["macro_f1"] == 0.5 and s["micro_f1"] == 0.5 and s["macro_f1_labels"] == ["a"]
    assert s["accuracy"] == 1 / 3 and s["samples_f1"] == 1 / 3


def test_macro_f1_interval_is_the_bootstrap_of_scikit_learns_macro_f1() -> None:
    rnd = random.Random(3)
    labels = ["a", "b", "c", "d", "e"]
    boots = 50  # the same resamples either way; scikit-learn per resample is the slow side

    def single_f1(g: list[str], p: list[str]) -> Callable[[np.ndarray], float]:
        return lambda ix: metrics.single_label([g[i] for i in ix], [p[i] for i in ix])["macro_f1"]

    def multi_f1(g: list[list[str]], p: list[list[str]]) -> Callable[[np.ndarray], float]:
        return lambda ix: metrics.multi_label([g[i] for i in ix], [p[i] for i in ix])["macro_f1"]

    for n in (1, 7, 60):
        gold1 = [rnd.choice(labels[:3]) for _ in range(n)]
        pred1 = [rnd.choice([*labels, "(none)"]) for _ in range(n)]
        single = metrics.bootstrap_interval(single_f1(gold1, pred1), n, boots)
        fast = metrics.macro_f1_interval([[x] for x in gold1], [[x] for x in pred1], boots)
        assert fast == pytest.approx(single)
        gold = [rnd.sample(labels, rnd.randint(1, 2)) for _ in range(n)]
        pred = [rnd.sample(labels, rnd.randint(0, 3)) for _ in range(n)]
        multi = metrics.bootstrap_interval(multi_f1(gold, pred), n, boots)
        assert metrics.macro_f1_interval(gold, pred, boots) == pytest.approx(multi)
    assert metrics.macro_f1_interval([], []) == [0.0, 0.0]
