"""Why-now evidence in the decision: no say until verdicts show it, then as much as they show; a ticket with no
context is decided exactly as before. Real parts: the trained classifier, the MiniLM embedder, embedded Chroma."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Settings
from bot.models import ChangeEvent, ChangeKind, ConcurrentSignal, Context, RecentChange, Ticket, Verdict
from bot.store.factory import open_history
from bot.triage.evidence import NO_PRIORS, EvidenceBook, features
from bot.triage.pipeline import Triager
from bot.triage.trainer import trainer_for
from tests.conftest import T0
from tests.triage.test_learned_decision import TAX, synthetic


def deploy_context(service: str = "chat-api") -> Context:
    change = ChangeEvent(id="d1", service=service, kind=ChangeKind.DEPLOY, summary="router v2.3.1", at=T0)
    return Context(service=service, window_min=120, changes=[RecentChange(change=change, minutes_before=12)])


def test_features_name_the_change_kinds_and_alert_kinds() -> None:
    gpu = ConcurrentSignal(key="k", title="GPU memory above 95%", since=T0)
    odd = ConcurrentSignal(key="j", title="Login page slow", since=T0)
    ctx = deploy_context().model_copy(update={"concurrent": [gpu, odd]})
    assert features(ctx, TAX.evidence_alerts) == ["alert:other", "alert:resource", "change:deploy"]
    assert features(None, TAX.evidence_alerts) == []
    assert (
        features(Context(service="x", window_min=120), TAX.evidence_alerts) == []
    )  # nothing recorded: no feature


def test_an_unmeasured_feature_without_a_prior_has_no_say() -> None:
    book = EvidenceBook(priors=NO_PRIORS)
    assert book.ratio(["change:deploy"], "root_cause", "deployment") == 1.0


@pytest.fixture
def triager(tmp_path: Path) -> Triager:
    settings = Settings(data_dir=tmp_path, seed_demo_history=False, llm_backend="none")
    store = open_history(settings)
    store.upsert(synthetic(90))
    tri = Triager(settings, store, None, trainer=trainer_for(settings, store, TAX))
    tri.trainer.train_now()
    tri.trainer.evidence = EvidenceBook(priors=NO_PRIORS)  # learning alone (priors: test_evidence_priors)
    return tri


def test_verdicts_teach_what_a_recent_deploy_means(triager: Triager) -> None:
    """Engineers confirm `deployment` on tickets that came right after a deploy: a new such ticket gets it with a
    higher probability than the same ticket without the deploy, which is decided exactly as before."""
    ticket = Ticket(id="t", title="Errors on chat-api", text="Users report errors. We are investigating.",
                    service="chat-api", created_at=T0 + timedelta(days=30))  # fmt: skip
    plain = triager.triage(ticket)
    rc = plain.labels["root_cause"]
    assert {"infrastructure", "deployment", "external_traffic"} <= set(rc.calibrated)
    unmeasured = triager.triage(ticket, context=deploy_context())
    assert unmeasured.evidence == ["change:deploy"] and unmeasured.context is not None
    assert unmeasured.labels == plain.labels  # no verdict yet: the context changes nothing

    for i in range(25):  # the engineers' verdicts on earlier drafts that followed a deploy
        t = ticket.model_copy(update={"id": f"v{i}", "title": f"Errors on chat-api ({i})"})
        draft = triager.triage(t, context=deploy_context())
        triager.record_verdict(draft, {"root_cause": ["deployment"]})
    after = triager.triage(ticket, context=deploy_context()).labels["root_cause"]
    assert after.label == "deployment" and after.confidence > rc.calibrated["deployment"] + 0.2
    assert any(e.startswith("change:deploy x") for e in after.evidence)  # named as the evidence
    assert triager.triage(ticket).labels == plain.labels  # no change data: exactly today's decision


def test_the_book_is_counted_from_stored_verdicts_newest_per_ticket(triager: Triager) -> None:
    ticket = Ticket(id="t", title="Errors on chat-api", text="Users report errors.", service="chat-api")
    draft = triager.triage(ticket, context=deploy_context())
    old = Verdict(ticket_key="k", action="confirm", user_id="U", labels={"root_cause": ["infrastructure"]},
                  created_at=T0, draft=draft)  # fmt: skip
    new = old.model_copy(update={"labels": {"root_cause": ["deployment"]}, "created_at": T0 + timedelta(1)})
    book = EvidenceBook.from_verdicts([old, new])
    kept, _, n = book.counts["change:deploy|root_cause|deployment"]
    assert (kept, n) == (1, 1) and book.counts["change:deploy|root_cause|infrastructure"][0] == 0


def test_evidence_is_named_in_words() -> None:
    from bot.triage.evidence import describe

    assert describe(["change:deploy x2.10", "alert:resource x0.50"]) == (
        "a recent deploy change (odds x2.1), a concurrent resource alert (odds x0.5)"
    )
