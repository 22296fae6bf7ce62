"""Crafted datasets that can only be scored well through a leak: each scores at chance with the fixes, and well with
the fix turned off (the leak was real). Labels are drawn at random from 4 categories, so chance is 1/4; texts are
random words, so only a leaked twin tells a case's label. The knn vote (k = 5, similarity-weighted) is what is
scored: a leaked twin sways it far above chance (at least 0.6 of 30 cases: never by luck at 1/4), not always."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.models import HistoricalIncident
from evals import adapters, datasets
from evals.datasets import Dataset
from evals.harness import EvalConfig, _deliver, run_eval

TAXONOMY = Settings().taxonomy_path
SYMPTOMS = ["errors", "latency", "unavailability", "throttling_capacity"]
ROOT_CAUSES = ["CONFIG", "OVERLOAD", "DEPLOY", "EXTERNAL"]
_VOCABULARY = (
    "apple river candle forest engine marble violin harbor pepper glacier lantern meadow copper orbit falcon"
    " tunnel velvet canyon rocket saddle ember quartz willow bamboo compass dolphin garnet jasmine kettle lemon"
    " magnet nectar oyster pillow quiver radish salmon tulip umbrella walnut yarn zebra anchor biscuit cactus"
    " daisy eagle feather ginger hammock igloo jungle kiwi ladder mango nutmeg olive parrot quilt raven spruce"
    " thistle urchin vanilla wombat yacht acorn beacon cobalt dune fjord grotto hazel iris juniper kelp lotus"
)
WORDS = _VOCABULARY.split()
T = datetime(2023, 3, 1, tzinfo=UTC)


def text(rng: random.Random) -> str:
    return " ".join(rng.sample(WORDS, 8))


def rec(i: str, title: str, created: datetime, resolved: datetime | None, label: str) -> dict[str, Any]:
    r = {"id": i, "title": title, "text": "", "service": "svc", "created_at": created.isoformat(),
         "labels": {"symptom": [label]}}  # fmt: skip
    if resolved is not None:
        r["resolved_at"] = resolved.isoformat()
    return r


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def background(rng: random.Random, n: int = 40) -> list[dict[str, Any]]:
    """Older incidents, resolved within the hour, with random labels: history that tells nothing."""
    return [
        rec(f"old{j}", text(rng), T - timedelta(days=60 - j), T - timedelta(days=60 - j, minutes=-30),
            rng.choice(SYMPTOMS))
        for j in range(n)
    ]  # fmt: skip


def accuracy(result: dict[str, Any], ids: set[str], method: str, field: str) -> float:
    rows = [c for c in result["cases"] if c.id in ids]
    assert rows, "the cases of interest must be in the test split"
    return sum((c.pred[method][field] or [""])[0] in c.gold[field] for c in rows) / len(rows)


def run(ds: Dataset, tmp: Path, classifier: bool = False, **cfg: Any) -> dict[str, Any]:
    """The eval's own run; the classifier (the learned decision, trained on the visible history) only if asked."""
    methods = ("knn", "classifier") if classifier else ("knn",)
    config = EvalConfig(methods=methods, test_fraction=0.5, **cfg)
    return run_eval(ds, Settings(data_dir=tmp, learned_decision=classifier), config)


def test_open_twin_resolved_later_is_not_seen(tmp_path: Path) -> None:
    """Each case has a twin opened a minute earlier (a related report, its text not the same) that is resolved a
    day later: a team triaging the case had no label or fix for it yet."""
    rng = random.Random(1)
    records, cases = background(rng), set()
    for j in range(40):
        # two days apart: earlier twins are resolved (and random) by the next case
        t = T + timedelta(days=2 * j)
        words, label = text(rng), rng.choice(SYMPTOMS)
        records.append(rec(f"twin{j}", words + " still being investigated", t - timedelta(minutes=1),
                           t + timedelta(days=1), label))  # fmt: skip
        records.append(rec(f"case{j}", words, t, t + timedelta(hours=1), label))
        cases.add(f"case{j}")
    ds = datasets.load(str(write_jsonl(tmp_path / "twins.jsonl", records)), taxonomy_path=TAXONOMY)
    assert not ds.duplicates  # different texts: this is the visibility rule's to catch, not the merge's
    fixed, leaky = run(ds, tmp_path / "a", True), run(ds, tmp_path / "b", True, visibility=False)
    for method in ("knn", "classifier"):  # retrieval, and the training labels of the learned decision
        before, after = accuracy(leaky, cases, method, "symptom"), accuracy(fixed, cases, method, "symptom")
        assert before >= 0.6, (method, before)  # the twin's label, read before the twin was resolved
        assert after <= 0.45, (method, after)  # chance is 0.25


GCP_COLUMNS = [
    "", "service", "description", "external_description", "vendor", "label_service_name", "label_service_category",
    "label_start_time", "label_end_time", "label_overday_flag", "label_timezone", "label_location",
    "label_user_symptom", "label_user_symptom_category", "label_root_cause", "label_root_cause_category",
]  # fmt: skip


def gcp_row(n: int, title: str, start: str, end: str, tz: str, updates: list[datetime], cause: str) -> dict:
    desc = "[" + ", ".join(
        repr({"created": u.isoformat(), "text": f"update {k}"}) for k, u in enumerate(updates)
    )
    row = dict.fromkeys(GCP_COLUMNS, "")
    row.update({"": str(n), "service": "Google Compute Engine", "description": desc + "]",
                "external_description": title, "label_start_time": start, "label_end_time": end,
                "label_timezone": tz, "label_root_cause_category": cause})  # fmt: skip
    return row


def test_undated_record_that_is_really_new_is_not_history(tmp_path: Path) -> None:
    """Records whose labelled start is unreadable were dated 2000-01-01, so they were history for everything. Here
    each is a later report repeating an earlier case's label: dated by its own updates, it is not history for it."""
    rng = random.Random(2)
    rows, cases = [], set()
    fmt = "%Y-%m-%d %H:%M:%S"
    for j in range(40):  # background, labelled in US/Pacific
        t = T - timedelta(days=60 - j)
        rows.append(gcp_row(j, text(rng), f"{t:{fmt}}", f"{t + timedelta(hours=1):{fmt}}", "PDT", [t + timedelta(hours=7)],
                            rng.choice(ROOT_CAUSES)))  # fmt: skip
    for j in range(20):
        t, words, cause = T + timedelta(days=j), text(rng), rng.choice(ROOT_CAUSES)
        rows.append(gcp_row(100 + j, words, f"{t:{fmt}}", f"{t + timedelta(hours=1):{fmt}}", "PST",
                            [t + timedelta(hours=8)], cause))  # fmt: skip
        cases.add(f"gcp:{100 + j}")
        new = T + timedelta(days=200 + j)  # the same words later, start unreadable: dated by its updates
        rows.append(gcp_row(200 + j, words + " follow-up report", "UNKNOWN", "UNKNOWN", "UNKNOWN",
                            [new, new + timedelta(hours=2)], cause))  # fmt: skip
    rows.append(gcp_row(300, "no date at all", "UNKNOWN", "UNKNOWN", "UNKNOWN", [], "CONFIG"))
    folder = tmp_path / "cloud-labeled"
    folder.mkdir()
    with (folder / "gcp_label.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, GCP_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    ds = datasets.load("gcp", root=tmp_path)
    by_id = {i.id: i for i in ds.incidents}
    assert ds.undated == 1 and "gcp:300" not in by_id  # nothing readable: dropped, counted
    assert by_id["gcp:200"].created_at == T + timedelta(days=200)  # dated by its first update, not 2000-01-01
    assert by_id["gcp:200"].resolved_at == T + timedelta(days=200, hours=2)
    assert by_id["gcp:100"].created_at == T + timedelta(hours=8)  # PST honoured
    after = accuracy(run(ds, tmp_path / "a"), cases, "knn", "root_cause")
    # As the old adapter dated them: 2000-01-01, no resolved time.
    old = [
        i.model_copy(update={"created_at": datetime(2000, 1, 1, tzinfo=UTC), "resolved_at": None})
        if i.id.startswith("gcp:2")
        else i
        for i in ds.incidents
    ]
    before = accuracy(run(Dataset(ds.name, ds.taxonomy, old, ds.relevance, ""), tmp_path / "b"), cases, "knn",
                      "root_cause")  # fmt: skip
    assert before >= 0.6, before
    assert after <= 0.45, after


def test_duplicate_across_the_split_is_merged(tmp_path: Path) -> None:
    """The same incident under two ids, eight minutes apart, the same text but for case and punctuation: one
    record, so a case cannot be scored by its own copy."""
    rng = random.Random(3)
    records, later = background(rng), set()
    for j in range(30):
        t, words, label = T + timedelta(days=j), text(rng), rng.choice(SYMPTOMS)
        records.append(rec(f"a{j}", words, t, t + timedelta(hours=2), label))
        records.append(
            rec(f"b{j}", words.upper() + ".", t + timedelta(minutes=8), t + timedelta(hours=2), label)
        )
        later.add(f"b{j}")
    path = write_jsonl(tmp_path / "dups.jsonl", records)
    merged = datasets.load(str(path), taxonomy_path=TAXONOMY)
    assert len(merged.duplicates) == 30 and merged.duplicates[0] == {
        "kept": "a0", "merged": ["b0"], "label_conflicts": {}}  # fmt: skip
    kept = {f"a{j}" for j in range(30)}
    after = accuracy(run(merged, tmp_path / "a", visibility=False), kept, "knn", "symptom")
    raw = datasets.load(str(path), taxonomy_path=TAXONOMY, merge=False)
    before = accuracy(run(raw, tmp_path / "b", visibility=False), later, "knn", "symptom")
    assert before >= 0.6, before  # the copy opened first answers the later one
    assert after <= 0.45, after
    # The visibility rule alone also hides a copy still open when the case opens (the time windows overlap).
    assert accuracy(run(raw, tmp_path / "c"), later, "knn", "symptom") <= 0.45


def test_verdicts_arrive_when_their_case_resolves() -> None:
    class Book:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def record_verdict(self, draft: Any, gold: Any, fix: Any) -> None:
            self.seen.append(draft)

    book = Book()
    pending = [(T + timedelta(hours=3), ("late", {}, None)), (T + timedelta(hours=1), ("early", {}, None))]
    pending = _deliver(book, pending, T + timedelta(hours=2))  # type: ignore[arg-type]
    assert book.seen == ["early"] and [p[1][0] for p in pending] == ["late"]
    assert _deliver(book, pending, T + timedelta(hours=4)) == [] and book.seen == ["early", "late"]  # type: ignore[arg-type]


@pytest.mark.parametrize(("resolved", "shown"), [(None, False), (T + timedelta(hours=1), True)])
def test_store_filter_is_the_visibility_rule(tmp_path: Path, resolved: datetime | None, shown: bool) -> None:
    """The store's `visible_at` filter gives what `bot.visibility` says: resolved before the query, or (no resolved
    time) opened more than the delay before it."""
    from bot.store.factory import open_history

    store = open_history(Settings(data_dir=tmp_path))
    store.upsert([HistoricalIncident(id="x", title="disk full on node", created_at=T, resolved_at=resolved)])
    hits = store.search("disk full on node", 5, visible_at=T + timedelta(hours=2))
    assert bool(hits) is shown
    assert store.search("disk full on node", 5, visible_at=T + timedelta(days=8))  # past the 7-day delay
    assert store.search("disk full on node", 5, before=T + timedelta(minutes=1))  # `before` is unchanged


def test_multi_label_numbers_say_what_right_means() -> None:
    """Exact set in the table, top label in gold beside it; calibration under both, each named."""
    from evals.cases import CaseResult
    from evals.report import markdown, score_table
    from evals.summary import _calibration, _field_scores

    tax = adapters.dataset_taxonomy("cloud-labeled")
    d = Dataset("t", tax, [], lambda q, s: False, "")
    gold = [["ERROR"], ["ERROR", "DELAY"], ["UNAVIL"], ["DELAY"]]
    pred = [["ERROR"], ["ERROR"], ["ERROR"], ["DELAY", "ERROR"]]  # exact: 1 of 4; top in gold: 3 of 4
    rows = [
        CaseResult(id=str(i), rep=0, created_at="", input="", gold={"symptom": g}, pred={"knn": {"symptom": p}},
                   confidence={"knn": {"symptom": 0.8}}, abstained={"knn": {"symptom": False}})
        for i, (g, p) in enumerate(zip(gold, pred, strict=True))
    ]  # fmt: skip
    s = _field_scores(d, rows, "knn", "symptom")
    assert s is not None and s["accuracy"] == 0.25 and s["top_in_gold"] == 0.75
    assert s["accuracy_definition"] == "exact label set" and s["macro_f1_labels"] == [
        "DELAY",
        "ERROR",
        "UNAVIL",
    ]
    cal = _calibration(d, rows, "knn")["symptom"]
    assert cal["correct_if"] == "top label in gold set" and cal["selective"]["accuracy"] == 0.75
    assert (
        cal["exact_set"]["correct_if"] == "exact label set"
        and cal["exact_set"]["selective"]["accuracy"] == 0.25
    )
    assert cal["ece"] == pytest.approx(0.05) and cal["exact_set"]["ece"] == pytest.approx(0.55)
    report = {"dataset": "t", "source": "", "taxonomy": "t", "model": "none", "cases": 4, "repeat": 1,
              "history_size": 0, "k": 5, "skipped": {"count": 0, "first": []}, "scores": {"knn": {"symptom": s}},
              "retrieval": {"hit_at_k": 0.0, "mrr": 0.0}, "calibration": {"knn": {"symptom": cal}},
              "llm_validity": {}, "mitigation": {"n": 0}, "tokens_per_triage": 0.0, "latency_s": {}}  # fmt: skip
    assert score_table(report)[1] == ["knn", "0.25 (top 0.75) / " + f"{s['macro_f1']:.2f}"]
    md = markdown(report)
    assert "calibration knn/symptom (right = top label in gold set): ECE 0.050" in md
    assert "calibration knn/symptom (right = exact label set): ECE 0.550" in md
