"""The learned decision: classifiers per field, stacking, calibration, abstention, retraining on feedback.

Real parts throughout: scikit-learn, the bundled MiniLM embedder, embedded Chroma; the feedback test goes through
the service and the Slack emulator as a verdict from the Correct modal does.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.config import Settings
from bot.models import Feedback, HistoricalIncident, LLMUsage, Ticket
from bot.store.embeddings import get_embedder
from bot.store.factory import open_history
from bot.taxonomy import Taxonomy
from bot.triage.decision import Calibrator, LLMAgreement, Situation, threshold_for
from bot.triage.learned import ModelFileError, load, save, train
from bot.triage.pipeline import Triager
from bot.triage.trainer import Trainer, trainer_for
from testkit.emulators import SlackEmulator
from tests.conftest import T0
from tests.helpers import REPO, accept, make_service, receive, wait_until

TAX = Taxonomy.load(REPO / "taxonomies" / "genai.yaml")

# Three kinds of incident, each with its own words; labels follow the kind (severity only loosely).
KINDS = {
    ("throttling_capacity", "infrastructure"): (
        [
            "GPU capacity exhausted",
            "429 rate limit errors",
            "out of accelerator quota",
            "queue of pending requests grows",
        ],
        ["for the GPT-4 API", "in eu-west", "on the inference fleet", "for enterprise customers"],
    ),
    ("quality_degradation", "deployment"): (
        [
            "answers became nonsensical",
            "model returns gibberish",
            "bad output quality",
            "responses in the wrong language",
        ],
        [
            "after the model rollout",
            "since the new checkpoint",
            "after deploying version 5",
            "with the new weights",
        ],
    ),
    ("latency", "external_traffic"): (
        ["slow responses", "requests time out", "high latency on completions", "p99 latency doubled"],
        ["during a traffic spike", "from a surge of new users", "under peak load", "from one large customer"],
    ),
}


def synthetic(n: int, seed: int = 0, start: int = 0) -> list[HistoricalIncident]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        (symptom, cause), (heads, tails) = list(KINDS.items())[i % 3]
        out.append(
            HistoricalIncident(
                id=f"s{start + i}",
                title=f"{rng.choice(heads)} {rng.choice(tails)}",
                text=f"Users report {rng.choice(heads)}. We are investigating.",
                service=rng.choice(["openai", "anthropic"]),
                created_at=T0 + timedelta(hours=start + i),
                labels={
                    "symptom": [symptom],
                    "root_cause": [cause],
                    "severity": [rng.choice(["sev2", "sev3"])],
                },
                resolution="Mitigated.",
            )
        )
    return out


def vectors(incs: list[HistoricalIncident]) -> np.ndarray:
    return get_embedder().embed([i.body for i in incs])


def test_trained_fields_decide_and_are_calibrated_on_unseen_incidents() -> None:
    hist = synthetic(150)
    model = train(hist, vectors(hist), TAX, k=5, target_precision=0.85)
    assert set(model.fields) == {"symptom", "root_cause", "severity"}
    assert model.train_s < 30
    new = synthetic(30, seed=7, start=1000)
    new_vecs = vectors(new)
    X = [model.features(inc.body, inc.service, inc.source, v) for inc, v in zip(new, new_vecs, strict=True)]
    ok, conf = [], []
    for inc, x in zip(new, X, strict=True):
        d = model.fields["symptom"]
        decision = d.decide(model.proba("symptom", x), {}, [], None)
        ok.append(decision.label == inc.labels["symptom"][0])
        conf.append(decision.confidence)
        assert decision.source == "classifier" and decision.candidates[0] == decision.label
    assert np.mean(ok) >= 0.9  # separable kinds: the classifier must get them
    assert np.mean(conf) >= 0.7  # and say so
    # severity carries no signal here: confidence must stay near the base rate, not claim certainty
    sev = model.fields["severity"]
    s_conf = [sev.decide(model.proba("severity", x), {}, [], None).confidence for x in X]
    assert max(s_conf) <= 0.8


def test_too_little_or_one_class_falls_back_to_the_vote_and_says_why() -> None:
    hist = synthetic(12)  # < 20 labelled
    model = train(hist, vectors(hist), TAX, k=5, target_precision=0.85)
    assert model.fields == {} and "12 labelled incidents" in model.fallback["symptom"]
    one = [i.model_copy(update={"labels": {"symptom": ["errors"]}}) for i in synthetic(40)]
    model = train(one, vectors(one), TAX, k=5, target_precision=0.85)
    assert "one class only" in model.fallback["symptom"]
    assert "0 labelled" in model.fallback["root_cause"]  # a field nobody labelled
    outside = [i.model_copy(update={"labels": {"symptom": ["not-a-label"]}}) for i in synthetic(40)]
    model = train(outside, vectors(outside), TAX, k=5, target_precision=0.85)
    assert "symptom" in model.fallback  # labels outside the taxonomy are not trained on
    empty = train([], np.zeros((0, 384), dtype=np.float32), TAX, k=5, target_precision=0.85)
    assert set(empty.fallback) == set(TAX.fields)


def test_corrupt_and_stale_model_files_are_refused_and_the_vote_decides(tmp_path: Path) -> None:
    hist = synthetic(60)
    path = tmp_path / "m.joblib"
    save(train(hist, vectors(hist), TAX, k=5, target_precision=0.85), path)
    assert load(path, TAX).n_history == 60
    other = TAX.model_copy(deep=True)
    other.fields["symptom"].categories.pop("other")
    with pytest.raises(ModelFileError, match="another version of taxonomy"):
        load(path, other)
    path.write_bytes(b"not a pickle at all")
    trainer = Trainer(TAX, path, lambda: (hist, vectors(hist)))
    assert not trainer.load() and "unreadable" in trainer.status and trainer.current is None
    trainer.request()
    wait_until(lambda: trainer.current is not None, 60, "the retrained model")
    assert trainer.current is not None  # retrained, and written back
    assert load(path, TAX).n_history == 60


def test_a_feedback_flood_retrains_a_few_times_not_a_thousand(tmp_path: Path) -> None:
    hist = synthetic(60)
    vecs = vectors(hist)
    trainer = Trainer(TAX, tmp_path / "m.joblib", lambda: (hist, vecs))
    t0 = time.perf_counter()
    for _ in range(1000):
        trainer.request()
    assert time.perf_counter() - t0 < 1.0  # a request never waits for a training
    # settled: a model trained, and no training running or wanted (the background thread has ended)
    wait_until(lambda: trainer.current is not None and trainer._thread is None, 120, "the trainings to end")
    assert 1 <= trainer.trainings <= 2


def test_the_llm_gets_the_say_its_measured_agreement_earns() -> None:
    book = LLMAgreement()
    assert book.witness("m", "root_cause") == {w: 1.0 for w in Situation}  # unmeasured: no say at all
    for i in range(60):
        # when it agreed with the classifier, the label was kept as often as the classifier predicted (70%)
        book.record("m", "root_cause", Situation.AGREES, i % 10 < 7, 0.7)
        # when it named another label, that label was kept far more often than the classifier gave it credit for
        book.record("m", "root_cause", Situation.LLM_OTHER, i % 10 < 8, 0.2)
        book.record("m", "root_cause", Situation.TOP_OTHER, i % 10 >= 8, 0.6)
    w = book.witness("m", "root_cause")
    # agreement that adds nothing adds no confidence
    assert w[Situation.AGREES] == pytest.approx(1.0, abs=0.01)
    assert w[Situation.LLM_OTHER] > 5 and w[Situation.TOP_OTHER] < 0.3
    assert book.witness("other-model", "root_cause")[Situation.LLM_OTHER] == 1.0  # per model


def test_the_llm_moves_the_decision_only_as_far_as_measured() -> None:
    hist = synthetic(90)
    model = train(hist, vectors(hist), TAX, k=5, target_precision=0.85)
    decider = model.fields["root_cause"]
    text = "GPU capacity exhausted in eu-west"
    X = model.features(text, None, "generic", get_embedder().embed([text])[0])
    proba = decider.clf.proba(X)[0]
    alone = decider.decide(proba, {}, [], None)
    other = next(c for c in decider.clf.classes if c != alone.label)
    neutral = {w: 1.0 for w in Situation}
    # an unmeasured LLM changes nothing, whether it agrees or not
    assert decider.decide(proba, {}, [alone.label], neutral).confidence == alone.confidence
    disagree = decider.decide(proba, {}, [other], neutral)
    assert (disagree.label, disagree.confidence) == (alone.label, alone.confidence)
    assert (disagree.prior_label, disagree.llm_label) == (alone.label, other)
    # one measured right where the classifier doubted wins the label; one that agrees usefully raises confidence
    strong = {Situation.AGREES: 4.0, Situation.LLM_OTHER: 1e4, Situation.TOP_OTHER: 0.01}
    won = decider.decide(proba, {}, [other], strong)
    assert won.label == other and won.source == "classifier+llm" and won.candidates[0] == other
    assert decider.decide(proba, {}, [alone.label], strong).confidence > alone.confidence


def test_threshold_reaches_the_target_precision() -> None:
    conf = np.asarray([0.95, 0.9, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    ok = np.asarray([1, 1, 1, 1, 1, 1, 0, 0, 1, 0], dtype=bool)
    assert threshold_for(conf, ok, 0.9) == pytest.approx(0.6)  # the top 6 all right; with 0.5: 6/7 < 0.9
    assert threshold_for(conf, ok, 0.85) == pytest.approx(0.5)  # 6/7 = 0.857 is enough for 0.85
    assert threshold_for(conf, np.zeros(10, dtype=bool), 0.85) > 1.0  # never reached: always "not sure"


def test_calibration_is_platt_on_few_rows_isotonic_on_many_and_matches_the_hit_rate() -> None:
    rng = np.random.default_rng(0)
    for n, isotonic in ((200, False), (3000, True)):
        top = rng.uniform(0.5, 1.0, n)
        ok = rng.uniform(size=n) < top - 0.3  # over-confident: right 30 points less often than it says
        cal = Calibrator(top, ok)
        assert (cal.iso is not None) is isotonic and (cal.platt is not None) is not isotonic
        out = cal(top)
        assert abs(out.mean() - ok.mean()) < 0.03  # on average as often right as it says
        hi, lo = top > 0.9, top < 0.6
        assert abs(out[hi].mean() - ok[hi].mean()) < 0.1 and abs(out[lo].mean() - ok[lo].mean()) < 0.1
    top = np.linspace(0.5, 1.0, 100)
    inverted = Calibrator(
        top, top < 0.7
    )  # higher scores were wrong more often: the hit rate, whatever the score
    assert inverted(np.asarray([0.6, 0.95])) == pytest.approx([0.4, 0.4])
    same = Calibrator(np.asarray([0.9, 0.8]), np.asarray([True, True]))  # one outcome only: nothing to fit
    assert same(np.asarray([0.7])) == pytest.approx([0.7])


def test_abstains_below_threshold_and_privacy_never_abstains(tmp_path: Path) -> None:
    hist = synthetic(90)
    settings = Settings(data_dir=tmp_path, seed_demo_history=False, llm_backend="none")
    store = open_history(settings)
    store.upsert(hist)
    triager = Triager(settings, store, None, trainer=trainer_for(settings, store, TAX))
    triager.trainer.train_now()
    vague = triager.triage(Ticket(id="v", title="Something odd", text="A customer says something is odd."))
    sev = vague.labels["severity"]
    assert sev.abstained and len(sev.candidates) >= 2  # no signal for severity: asks, does not guess
    leak = triager.triage(Ticket(id="p", title="Users see other users' chat history", text="A privacy leak."))
    assert leak.privacy_exposure
    assert not leak.labels["symptom"].abstained and leak.labels["symptom"].source == "rule"


def test_a_correction_changes_the_next_similar_tickets_decision(tmp_path: Path, slack: SlackEmulator) -> None:
    service = make_service(tmp_path, slack, storm_similarity=1.01)  # the repeat is a ticket, not a storm
    service.history.upsert(synthetic(90))
    service.triager.trainer.train_now()
    service.start()
    try:
        text = "The embedding index shard for vector search went stale; retrieval answers are outdated."
        accept(service, {"id": "n1", "title": "Vector search returns stale results", "text": text})
        row = wait_until(lambda: (r := service.store.get("generic:n1")) and r.draft and r, 60, "the draft")
        before = row.draft.labels["root_cause"]
        corrected = next(c for c in ("configuration", "code_bug", "maintenance") if c != before.label)
        fb = Feedback(action="correct", user_id="UALICE", labels={"root_cause": [corrected]})
        line = service.record_feedback("generic:n1", fb)
        assert line is not None
        before_model = service.triager.trainer.current
        service.apply_feedback("generic:n1", line)  # -> history -> background retrain
        wait_until(lambda: service.triager.trainer.current is not before_model, 60, "the retrained model")
        accept(service, {"id": "n2", "title": "Vector search returns stale results again", "text": text})
        row2 = wait_until(lambda: (r := service.store.get("generic:n2")) and r.draft and r, 60, "the draft")
        after = row2.draft.labels["root_cause"]
        assert before.label != corrected and after.label == corrected
    finally:
        service.stop()


def test_the_llm_agreement_is_recorded_from_verdicts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, seed_demo_history=False, llm_backend="none")
    triager = Triager(settings, open_history(settings), None)
    draft = triager.triage(Ticket(id="t", title="Elevated errors on the API", text="Many 500 errors."))
    draft.llm = LLMUsage(model="m1", status="ok")
    labelled = {"llm_label": "errors", "prior_label": "errors", "prior_confidence": 0.5}
    draft.labels["symptom"] = draft.labels["symptom"].model_copy(update=labelled)
    triager.record_verdict(draft, {"symptom": ["errors"]})
    triager.record_verdict(draft, {"symptom": ["latency"]})
    assert triager.trainer.agreement.counts["m1|symptom|agrees"] == [1, 1.0, 2]
    # the engineer's fix maps to the LLM's playbook, not to the one chosen without it
    picks = {"rule_choice": "config-revert", "llm_choice": "traffic-control"}
    draft.playbook = draft.playbook.model_copy(update=picks)
    fixed = triager.playbook_choice.fix_playbook(
        "We throttled the abusive traffic and blocked the offending clients."
    )
    assert fixed == "traffic-control"
    triager.record_verdict(draft, {"symptom": ["errors"]}, fixed)
    assert triager.trainer.agreement.counts["m1|_playbook|llm-other"] == [1, 0.5, 1]
    assert triager.trainer.agreement.counts["m1|_playbook|top-other"] == [0, 0.5, 1]
    # a field the vote decided (no classifier): nothing to measure against
    voted, before = draft.model_copy(deep=True), list(triager.trainer.agreement.counts["m1|symptom|agrees"])
    voted.labels["symptom"] = voted.labels["symptom"].model_copy(update={"prior_label": None})
    triager.record_verdict(voted, {"symptom": ["errors"]})
    assert triager.trainer.agreement.counts["m1|symptom|agrees"] == before


def test_the_llm_agreement_is_counted_from_the_stored_verdicts_so_every_replica_shares_it(
    tmp_path: Path,
) -> None:
    from functools import partial

    from bot.store.factory import open_sql

    settings = Settings(data_dir=tmp_path, seed_demo_history=False, llm_backend="none")
    store = open_sql(settings)
    triager = Triager(settings, open_history(settings), None)
    for i, (said, kept) in enumerate([("errors", "errors"), ("errors", "latency"), ("latency", "latency")]):
        ticket = Ticket(id=f"t{i}", title="Elevated errors on the API", text="Many 500 errors.")
        draft = triager.triage(ticket)
        draft.llm = LLMUsage(model="m1", status="ok")
        draft.labels["symptom"] = draft.labels["symptom"].model_copy(
            update={"llm_label": said, "prior_label": "errors", "prior_confidence": 0.5}
        )
        picks = {"rule_choice": "config-revert", "llm_choice": "model-rollback"}
        draft.playbook = draft.playbook.model_copy(update=picks)
        assert receive(store, {"id": f"t{i}", "title": ticket.title, "text": ticket.text}, "C1") == "accepted"
        store.update_ticket(f"generic:t{i}", draft=draft)
        store.add_feedback(
            f"generic:t{i}", Feedback(action="correct", user_id="U1", labels={"symptom": ["other"]})
        )
        # the newest labelled verdict per ticket counts: this one replaces the correction above
        fixed = Feedback(
            action="correct", user_id="U2", labels={"symptom": [kept]}, fix_playbook="config-revert"
        )
        store.add_feedback(f"generic:t{i}", fixed)
    store.add_feedback(
        "generic:t0", Feedback(action="reject", user_id="U3", reason="noise")
    )  # no labels: no say
    # another replica (a new process on the same database) counts what was said here
    other = Trainer(TAX, None, None, verdicts=partial(store.watch.verdicts, limit=100))
    # t0 agreed and was kept; t1 agreed and was not; t2 named "latency", which was kept and "errors" not
    assert other.agreement.counts == {
        "m1|symptom|agrees": [1, 1.0, 2],
        "m1|symptom|llm-other": [1, 0.0, 1],
        "m1|symptom|top-other": [0, 0.5, 1],
        # and each verdict's fix (config-revert) against the LLM's playbook pick, read back from the database
        "m1|_playbook|llm-other": [0, 1.5, 3],
        "m1|_playbook|top-other": [3, 1.5, 3],
        # the first step these drafts showed was the rule's: kept by t1 and t2, rejected by t0's newest verdict
        "*|_step|rule": [2, 0.0, 3],
    }
    assert other.agreement.witness("m1", "symptom")[Situation.LLM_OTHER] > 1


def test_not_sure_is_posted_as_a_question_and_the_modal_starts_from_the_candidates(tmp_path: Path) -> None:
    import json

    from bot.delivery.slack import blocks

    settings = Settings(data_dir=tmp_path, seed_demo_history=False, llm_backend="none")
    triager = Triager(settings, open_history(settings), None)
    ticket = Ticket(id="q", title="Something odd on the API", text="A customer says something is odd.")
    draft = triager.triage(ticket)
    draft.labels["root_cause"] = draft.labels["root_cause"].model_copy(
        update={"abstained": True, "candidates": ["configuration", "deployment"], "confidence": 0.41}
    )
    text = json.dumps(blocks.draft_blocks("generic:q", ticket, draft, TAX, "llm"))
    assert "not sure: " in text and " or " in text and "41%" in text
    modal = blocks.correct_modal("generic:q", draft, TAX)
    select = next(b for b in modal["blocks"] if b.get("block_id") == "label_root_cause")["element"]
    likely, other = select["option_groups"]
    assert [o["value"] for o in likely["options"]] == ["configuration", "deployment"]
    assert "initial_option" not in select and len(other["options"]) == len(TAX.fields["root_cause"].ids) - 2
    decided = next(b for b in modal["blocks"] if b.get("block_id") == "label_symptom")["element"]
    # a decided field is preselected
    assert decided["initial_option"]["value"] == draft.labels["symptom"].label
