"""The cold-start eval: labels chosen only from what was visible at the first case, the rest of the history kept
unlabelled, the curve written as a table, targets and a PNG."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.intake.files import InputError
from evals import datasets
from evals.cases import EvalConfig
from evals.cold_start import (
    labelling_order,
    learning_curve,
    markdown,
    parse_budgets,
    parse_strategies,
    run_cold_start,
)
from evals.harness import run_eval, select_cases
from evals.report import write_report

T = datetime(2023, 3, 1, tzinfo=UTC)
WORDS = {
    "errors": "500 errors failing requests error rate exceptions",
    "latency": "slow responses timeouts latency delays queueing",
    "unavailability": "outage down unreachable offline login failures",
}


@pytest.fixture
def dataset(tmp_path: Path) -> datasets.Dataset:
    """90 incidents a day apart, each resolved within the hour, three kinds told apart by their words."""
    rng = random.Random(0)
    kinds = list(WORDS)
    rows = []
    for j in range(90):
        kind = kinds[j % 3]
        words = rng.sample(WORDS[kind].split(), 4)
        created = T + timedelta(days=j)
        rows.append({"id": f"i{j}", "title": " ".join(words), "text": f"incident {j}", "service": "svc",
                     "created_at": created.isoformat(), "resolved_at": (created + timedelta(hours=1)).isoformat(),
                     "labels": {"symptom": [kind]}})  # fmt: skip
    path = tmp_path / "ds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return datasets.load(str(path), taxonomy_path=Settings().taxonomy_path)


def settings(tmp: Path) -> Settings:
    return Settings(data_dir=tmp, llm_backend="none")


def test_budgets_and_strategies_parse_or_say_why() -> None:
    assert parse_budgets("50, 10,all,20,10") == [10, 20, 50, "all"]
    assert parse_strategies("random,active,random") == ["random", "active"]
    for bad in ("0", "ten", ""):
        with pytest.raises(InputError):
            parse_budgets(bad)
    with pytest.raises(InputError):
        parse_strategies("clever")


def test_a_cold_start_scores_every_case(dataset: datasets.Dataset, tmp_path: Path) -> None:
    cfg = EvalConfig(cases="with-action")
    with pytest.raises(InputError, match="--cases"):
        run_cold_start(dataset, settings(tmp_path), cfg, [10], ["random"])


@pytest.mark.parametrize("strategy", ["active", "random"])
def test_labels_are_chosen_only_from_what_the_first_case_could_see(
    dataset: datasets.Dataset, tmp_path: Path, strategy: str
) -> None:
    cfg = EvalConfig(methods=("classifier",), test_fraction=0.3)
    first = select_cases(dataset, cfg.test_fraction, None)[0]
    ids, pool = labelling_order(dataset, settings(tmp_path), cfg, strategy, 30)
    by_id = {i.id: i for i in dataset.incidents}
    seen = [i for i in dataset.incidents if i.resolved_at and i.resolved_at < first.created_at]
    assert len(ids) == len(set(ids)) == 30 and pool == len(seen) > 50
    assert all(by_id[i].resolved_at < first.created_at for i in ids)  # never a case, nor anything after
    fewer, _ = labelling_order(dataset, settings(tmp_path), cfg, strategy, 10)
    assert fewer == ids[:10]  # a smaller budget: the same session stopped earlier


def test_a_replay_with_no_labels_trains_nothing_and_the_vote_has_none(
    dataset: datasets.Dataset, tmp_path: Path
) -> None:
    cfg = EvalConfig(methods=("knn", "classifier"), test_fraction=0.3, labelled_ids=frozenset())
    result = run_eval(dataset, settings(tmp_path), cfg)
    assert "0 labelled incidents" in result["report"]["classifier"]["status"]
    assert all(not c.pred["knn"]["symptom"] or c.pred["knn"]["symptom"] == ["other"] for c in result["cases"])
    assert all(c.gold["symptom"] for c in result["cases"])  # the cases keep their gold labels


def test_the_cold_start_report_has_curves_targets_a_table_and_a_png(
    dataset: datasets.Dataset, tmp_path: Path
) -> None:
    cfg = EvalConfig(methods=("classifier",), test_fraction=0.3, out=tmp_path / "out")
    result = run_cold_start(dataset, settings(tmp_path), cfg, [20, "all"], ["active", "random"])
    cold: dict[str, Any] = result["report"]["cold_start"]
    assert set(cold["curves"]) == {"active", "random"}
    assert set(cold["curves"]["active"]) == {"20", "all"}
    point = cold["curves"]["random"]["20"]["fields"]["symptom"]
    assert 0 <= point["accuracy"] <= 1 and point["with_label"] == [20]
    assert cold["curves"]["active"]["all"] == cold["curves"]["random"]["all"]
    t = cold["targets"]["symptom"]  # no point at 50: the targets say so, they do not invent one
    assert t["all"] == cold["curves"]["active"]["all"]["fields"]["symptom"]["accuracy"]
    assert t["active_50"] is None and not t["beats_random"] and not t["reaches_90pct_of_all"]
    assert "| 20 | active |" in markdown(cold) and "| all | every label |" in markdown(cold)
    folder = write_report(result["report"], result["cases"], cfg.out)
    assert (folder / "learning-curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Cold start" in (folder / "summary.md").read_text()
    assert json.loads((folder / "metrics.json").read_text())["cold_start"]["seeds"] == 1
    assert learning_curve(cold, "x", tmp_path / "c.png").is_file()
