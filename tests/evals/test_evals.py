"""The eval harness: no look-ahead, triage-time input only, clear errors on bad datasets, correct metrics."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Settings
from bot.intake.files import InputError
from evals import datasets, metrics
from evals.harness import EvalConfig, run_eval
from evals.report import write_report
from tests.conftest import SMALL_HISTORY, T0, needs_datasets
from tests.triage.test_pipeline import GOOD, ScriptedChat

TAXONOMY = Settings().taxonomy_path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, default=str) for r in records) + "\n")
    return path


def planted_dataset(tmp_path: Path, n: int = 12) -> Path:
    """Incidents each carrying a unique resolution and later-update sentence that must never reach the model
    for that incident (nor for any older one)."""
    recs = []
    for i in range(n):
        base = SMALL_HISTORY[i % len(SMALL_HISTORY)]
        recs.append({
            "id": f"p{i}", "title": base.title, "text": f"first update {i}", "service": base.service,
            "created_at": (T0 + timedelta(hours=i)).isoformat(), "labels": base.labels,
            "resolved_at": (T0 + timedelta(hours=i, minutes=30)).isoformat(),
            "resolution": f"PLANTED-RESOLUTION-{i} rolled back", "later_text": f"PLANTED-LATER-{i}",
        })  # fmt: skip
    return write_jsonl(tmp_path / "planted.jsonl", recs)


def test_time_split_and_triage_time_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = datasets.load(str(planted_dataset(tmp_path)), taxonomy_path=TAXONOMY)
    model = ScriptedChat(replies=[json.dumps(GOOD)] * 100)
    monkeypatch.setattr("evals.harness.build_chat_model", lambda s: model)
    settings = Settings(data_dir=tmp_path / "d", llm_backend="local", structured_output="json_mode")
    result = run_eval(ds, settings, EvalConfig(test_fraction=0.5, out=tmp_path / "out"))
    by_id = {i.id: i for i in ds.incidents}
    cases = result["cases"]
    assert len(cases) == 6 and len(model._calls) == 12  # llm alone + llm with retrieval, per case
    for case in cases:
        t = by_id[case.id].created_at
        assert case.retrieved and case.id not in case.retrieved
        assert all(by_id[r].resolved_at < t for r in case.retrieved), case  # history resolved before it only
    for call in model._calls:
        prompt = "\n".join(str(m.content) for m in call)
        n = int(prompt.split("first update ")[1].split()[0])  # which case this prompt is for
        assert "PLANTED-LATER" not in prompt  # later updates never reach the model
        for j in range(n, 12):
            assert f"PLANTED-RESOLUTION-{j} " not in prompt  # not its own fix, nor any newer incident's
    report = result["report"]
    assert set(report["scores"]) == {"majority", "knn", "classifier", "llm", "llm+retrieval", "combined"}
    # Playbook agreement per method that drafts a playbook: the plain (no-LLM) draft and the product's.
    for m in ("classifier", "combined"):
        a = report["playbook_agreement"][m]
        assert a["with_resolution"] == 6 and sum(a["chosen"].values()) == 6 and a["n"] <= 6, (m, a)
    assert all(c.playbook.keys() == {"classifier", "combined"} for c in cases)
    # The learned decision is trained on the history older than the first case only (6 of 12 here: the vote).
    assert "trained on 6 incidents" in report["classifier"]["status"]
    cal = report["calibration"]["combined"]["symptom"]
    assert cal["n"] == 6 and 0 <= cal["ece"] <= 1 and cal["risk_coverage"] and cal["reliability"]
    assert (
        report["scores"]["llm"]["symptom"]["n"] == 6
        and report["llm_validity"]["llm"]["valid_first_try"] == 1.0
    )
    # The vote decided every field (6 incidents of history) and no planted resolution tells a fix: nothing to
    # measure the LLM's labels or playbook against yet, so it earned no say.
    assert report["llm_witness"] == {}
    folder = write_report(report, cases, tmp_path / "out")
    assert {p.name for p in folder.iterdir()} >= {"metrics.json", "summary.md", "cases.jsonl", "scores.png",
                                                  "reliability-combined.png", "risk-coverage-combined.png"}  # fmt: skip
    assert len((folder / "cases.jsonl").read_text().splitlines()) == 6


def test_unparsable_dataset_names_file_and_record(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "a", "title": "x"}\n{broken\n')
    with pytest.raises(InputError, match=r"bad\.jsonl: line 2"):
        datasets.load(str(p), taxonomy_path=TAXONOMY)


def test_unknown_labels_and_unlabelled_records_are_reported(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "d.jsonl", [
        {"id": "a", "title": "x", "labels": {"symptom": ["errors", "exploded"]}, "created_at": T0.isoformat()},
        {"id": "b", "title": "y", "labels": {"color": ["red"]}, "created_at": T0.isoformat()},
        {"id": "c", "title": "z", "labels": {"symptom": ["errors"]}},  # no time: dropped, not dated "now"
    ])  # fmt: skip
    ds = datasets.load(str(p), taxonomy_path=TAXONOMY)
    assert ds.incidents[0].labels == {"symptom": ["errors"]}
    assert any("record 1 (a): unknown symptom value 'exploded'" in s for s in ds.skipped)
    assert any("record 2 (b): no label" in s for s in ds.skipped)
    assert [i.id for i in ds.incidents] == ["a", "b"] and ds.undated == 1
    assert any("record 3 (c): no created_at; dropped" in s for s in ds.skipped)


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "title": "x"}])
    ds = datasets.load(str(p), taxonomy_path=TAXONOMY)
    with pytest.raises(InputError, match="test split is empty"):
        run_eval(ds, Settings(data_dir=tmp_path), EvalConfig(methods=("knn",)))


def test_unknown_dataset_and_method(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no dataset named"):
        datasets.load("nope")
    ds = datasets.load(str(planted_dataset(tmp_path)), taxonomy_path=TAXONOMY)
    with pytest.raises(InputError, match="unknown method"):
        run_eval(ds, Settings(data_dir=tmp_path), EvalConfig(methods=("magic",)))


def test_metrics() -> None:
    s = metrics.single_label(["a", "a", "b", "c"], ["a", "b", "b", "c"])
    assert s["accuracy"] == 0.75 and abs(s["macro_f1"] - (2 / 3 + 2 / 3 + 1) / 3) < 1e-9
    m = metrics.multi_label([["x", "y"], ["x"]], [["x"], ["x"]])
    assert m["accuracy"] == 0.5 and abs(m["micro_f1"] - 0.8) < 1e-9
    assert metrics.within_one(["sev1", "sev1"], ["sev2", "sev3"], ["sev1", "sev2", "sev3"]) == 0.5
    r = metrics.retrieval([[False, True], [False, False], [True]], k=2)
    assert r["hit_at_k"] == pytest.approx(2 / 3) and r["mrr"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert metrics.ece([1.0, 1.0], [True, True]) == 0 and metrics.ece(
        [0.9, 0.9], [False, False]
    ) == pytest.approx(0.9)
    assert metrics.rouge_l("rolled back the config", "we rolled back the config change") > 0.7


@needs_datasets
@pytest.mark.parametrize("name", list(datasets.SPECS))
def test_every_shared_dataset_loads_with_its_taxonomy(name: str) -> None:
    ds = datasets.load(name)
    assert len(ds.incidents) > 90 and len({i.id for i in ds.incidents}) == len(ds.incidents)
    labelled = [i for i in ds.incidents if i.labels]
    # most records are labelled; cloud-bulk adds Google's unlabelled feed as history (about three records in four)
    assert len(labelled) > (0.2 if name == "cloud-bulk" else 0.5) * len(ds.incidents)
    for inc in labelled:
        for f, values in inc.labels.items():
            assert all(ds.taxonomy.is_valid(f, v) for v in values)
        # The triage-time text never contains the resolution (status pages: later updates).
        if inc.resolution and len(inc.resolution) > 40:
            assert inc.resolution not in inc.body


@needs_datasets
def test_knn_eval_runs_on_real_data(tmp_path: Path) -> None:
    ds = datasets.load("cloud-labeled")
    # Every other record, as the file has them (both sources, the whole time span, none picked): the harness's path
    # on real data, with half the history to embed (the 20 cases still carry every field asserted below).
    ds = replace(ds, incidents=ds.incidents[::2])
    result = run_eval(ds, Settings(data_dir=tmp_path), EvalConfig(methods=("majority", "knn"), limit=20))
    rep = result["report"]
    assert rep["cases"] == 20 and 0 <= rep["retrieval"]["hit_at_k"] <= 1
    assert {"symptom", "root_cause", "service_category"} <= set(rep["scores"]["knn"])


def test_repeats_report_mean_and_spread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = datasets.load(str(planted_dataset(tmp_path)), taxonomy_path=TAXONOMY)
    # A model that changes its mind between runs: right on the first pass, wrong on the second.
    wrong = {**GOOD, "symptom": "other"}
    model = ScriptedChat(replies=[json.dumps(GOOD)] * 6 + [json.dumps(wrong)] * 6)
    monkeypatch.setattr("evals.harness.build_chat_model", lambda s: model)
    settings = Settings(data_dir=tmp_path / "d", llm_backend="local", structured_output="json_mode")
    cfg = EvalConfig(methods=("llm",), test_fraction=0.5, repeat=2)
    report = run_eval(ds, settings, cfg)["report"]
    spread = report["scores"]["llm"]["symptom"]["accuracy_over_repeats"]
    # Gold symptoms of the 6 cases: errors, errors, unavailability, latency, quality_degradation, throttling.
    # Pass 1 answers "errors" (2/6 right), pass 2 "other" (0/6): mean 1/6, population std 1/6.
    assert report["repeat"] == 2
    assert spread["mean"] == pytest.approx(1 / 6) and spread["std"] == pytest.approx(1 / 6)
