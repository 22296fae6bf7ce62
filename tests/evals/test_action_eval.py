"""The eval of the recommended mitigation action (evals/actions.py): scores per method, and a dataset whose taxonomy
has no mitigation section (eval sets bring their own): the default vocabulary is used and the report says so."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot.config import Settings
from bot.intake.files import InputError
from evals import datasets
from evals.actions import scores
from evals.harness import EvalConfig, run_eval
from evals.report import markdown
from tests.conftest import SMALL_HISTORY, T0

FIXES = ["We rolled back the deployment to the previous version.", "Engineers rerouted traffic to healthy regions.",
         "This incident has been resolved."]  # fmt: skip


def sixty_incidents(tmp_path: Path) -> Path:
    """60 incidents an hour apart as a canonical JSONL file, fixed in turn by a rollback, a traffic shift and
    nothing said (so 1 in 3 has no known action)."""
    recs = [
        {"id": f"r{i}", "title": SMALL_HISTORY[i % 6].title, "text": f"update {i}", "labels": SMALL_HISTORY[i % 6].labels,
         "created_at": (T0 + timedelta(hours=i)).isoformat(), "resolved_at": (T0 + timedelta(hours=i, minutes=30)).isoformat(),
         "resolution": FIXES[i % 3]}
        for i in range(60)
    ]  # fmt: skip
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return data


def test_action_scores_on_known_rows() -> None:
    rows = [
        ("rollback", {"ranked": ["rollback", "restart"], "confidence": 0.9, "abstained": False, "set": ["rollback"]}),
        ("restart", {"ranked": ["rollback", "restart"], "confidence": 0.6, "abstained": True, "set": ["rollback"]}),
        ("scale_out", {"ranked": ["rollback"], "confidence": 0.5, "abstained": True, "set": ["rollback", "scale_out"]}),
    ]  # fmt: skip
    s = scores(rows, 0.85)
    assert s["n"] == 3 and s["top1"] == 1 / 3 and s["top3"] == 2 / 3
    assert s["selective"]["coverage"] == 1 / 3 and s["selective"]["accuracy"] == 1.0
    assert s["conformal"]["coverage"] == 2 / 3 and s["conformal"]["mean_size"] == 4 / 3


def test_an_eval_taxonomy_without_a_mitigation_section_gets_the_default_vocabulary(tmp_path: Path) -> None:
    spec = yaml.safe_load((Path(Settings().taxonomy_path)).read_text())
    spec.pop("mitigation")
    tax_path = tmp_path / "no-mitigation.yaml"
    tax_path.write_text(yaml.safe_dump(spec))
    data = sixty_incidents(tmp_path)
    ds = datasets.load(str(data), taxonomy_path=tax_path)
    assert ds.taxonomy.mitigation is None
    cfg = EvalConfig(methods=("majority", "knn", "classifier"), test_fraction=0.3, out=tmp_path / "out")
    report = run_eval(ds, Settings(data_dir=tmp_path / "s"), cfg)["report"]
    action = report["action"]
    assert action["vocabulary"].startswith("genai")  # the default taxonomy's, said in the report
    assert action["with_action"] == 12 and action["gold_from"] == {
        "text": 12
    }  # 1 in 3 says no fix: not scored
    assert set(action["methods"]) == {"majority", "knn", "classifier"}
    for s in action["methods"].values():
        assert s["n"] == 12 and 0 <= s["top1"] <= s["top3"] <= 1 and 0 <= s["ece"] <= 1
    assert "mitigation action (vocabulary: genai" in markdown(report)


def test_only_the_cases_with_a_known_action_can_be_run(tmp_path: Path) -> None:
    """`--cases with-action`: the same split, only its cases whose own action is known (the history is unchanged)."""
    data = sixty_incidents(tmp_path)
    ds = datasets.load(str(data), taxonomy_path=Path(Settings().taxonomy_path))
    cfg = EvalConfig(
        methods=("majority", "classifier"), test_fraction=0.3, out=tmp_path / "o", cases="with-action"
    )
    result = run_eval(ds, Settings(data_dir=tmp_path / "s"), cfg)
    report = result["report"]
    assert report["case_selection"] == "with-action"
    assert report["cases"] == 12 and report["action"]["with_action"] == 12  # 18 in the split, 6 say no fix
    assert all(c.action_gold for c in result["cases"])
    assert "with-action only" in markdown(report)
    # 12 cases: the targets are reported, not judged
    assert report["action"]["targets"]["judged"] is False and "too few cases to judge" in markdown(report)
    with pytest.raises(InputError, match="--cases"):
        run_eval(ds, Settings(data_dir=tmp_path / "s"), EvalConfig(methods=("majority",), cases="some"))


def test_cases_are_kept_when_scoring_them_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An LLM run takes hours: a failure in the scoring after it loses nothing (cases.partial.jsonl), and says so."""
    ds = datasets.load(str(sixty_incidents(tmp_path)), taxonomy_path=Path(Settings().taxonomy_path))

    def broken(*args: object) -> None:
        raise ValueError("a metric that cannot take this set")

    monkeypatch.setattr("evals.harness.summarise", broken)
    cfg = EvalConfig(methods=("majority",), test_fraction=0.1, out=tmp_path / "out")
    with pytest.raises(ValueError, match="cannot take"):
        run_eval(ds, Settings(data_dir=tmp_path / "s"), cfg)
    kept = (tmp_path / "out" / "d" / "cases.partial.jsonl").read_text().splitlines()
    assert len(kept) == 6 and all(json.loads(line)["pred"]["majority"] for line in kept)
