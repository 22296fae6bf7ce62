"""Why-now priors: the operators' file loads and is checked against the taxonomy; a fresh install weighs a deploy
minutes before the ticket on day one; verdicts then move the prior as they move learned odds."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot.config import PROJECT_ROOT, Settings
from bot.models import (
    ChangeKind,
    Context,
    Direction,
    MovedSignal,
    SignalKind,
    TelemetrySummary,
    Ticket,
)
from bot.store.factory import open_history
from bot.triage.decision import LLMAgreement
from bot.triage.evidence import (
    NO_PRIORS,
    EvidenceBook,
    PriorsError,
    configured_priors,
    features,
    load_priors,
    posterior_ratio,
)
from bot.triage.pipeline import Triager
from bot.triage.trainer import trainer_for
from tests.conftest import T0
from tests.triage.test_evidence import deploy_context
from tests.triage.test_learned_decision import TAX, synthetic

BUNDLED = PROJECT_ROOT / "taxonomies" / "evidence-priors.yaml"


def test_the_bundled_priors_load_and_cover_every_change_kind() -> None:
    priors = load_priors(BUNDLED, TAX)
    assert {f"change:{k}" for k in ChangeKind} <= set(priors.features)
    assert priors.of("change:deploy", "root_cause", "deployment")[0] > 1
    assert priors.of("change:deploy", "severity", "sev1") == (1.0, 10)  # unnamed: no say, as before
    assert all(p.sources for p in priors.features.values())
    assert configured_priors().features == priors.features  # the default setting names it


def _write(tmp_path: Path, change: dict[str, object]) -> Path:
    data = yaml.safe_load(BUNDLED.read_text(encoding="utf-8"))
    data["features"]["change:deploy"].update(change)
    path = tmp_path / "priors.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            {"odds": {"root_cause": {"deploymnt": 4.0}}},
            "root_cause label 'deploymnt' is not in taxonomy 'genai'",
        ),
        ({"odds": {"cause": {"deployment": 4.0}}}, "'cause' is not a field of taxonomy 'genai'"),
        ({"odds": {"mitigation": {"rollbak": 3.0}}}, "mitigation label 'rollbak'"),
        ({"sources": ["a-blog"]}, "source 'a-blog' is not in `sources`"),
        ({"odds": {"root_cause": {"deployment": -1}}}, "features.change:deploy.odds.root_cause.deployment"),
        ({"weight": 0}, "features.change:deploy.weight"),
    ],
)
def test_a_bad_priors_file_is_refused_in_one_line(
    tmp_path: Path, change: dict[str, object], said: str
) -> None:
    with pytest.raises(PriorsError) as e:
        load_priors(_write(tmp_path, change), TAX)
    assert said in str(e.value) and "\n" not in str(e.value)


def test_a_misnamed_feature_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("sources: {x: y}\nfeatures:\n  deploy: {weight: 1, sources: [x], odds: {}}\n")
    with pytest.raises(PriorsError, match="deploy: not a feature"):
        load_priors(path, TAX)
    with pytest.raises(PriorsError, match="not found"):
        load_priors(tmp_path / "none.yaml", TAX)


def test_with_odds_one_the_update_is_the_learned_odds_of_before() -> None:
    assert posterior_ratio(0, 0.0, 0, 4.0, 10) == 4.0  # no verdict: the prior
    assert posterior_ratio(3, 2.0, 7, 1.0, 10) == LLMAgreement.odds_ratio(3, 2.0, 7, prior=10)
    contradicted = [posterior_ratio(0, 0.1 * n, n, 4.0, 10) for n in (5, 10, 20)]
    assert 4.0 > contradicted[0] > contradicted[1] > contradicted[2] and abs(contradicted[2] - 1) < 0.1


def test_moved_signals_are_features() -> None:
    up = MovedSignal(signal="kv_cache", title="KV cache", kind=SignalKind.SATURATION, unit="ratio", onset=T0,
                     before=0.5, after=0.98, bad=True, score=9.0)  # fmt: skip
    down = up.model_copy(update={"kind": SignalKind.QUALITY, "before": 0.9, "after": 0.6})
    assert up.direction is Direction.UP
    ctx = Context(service="x", window_min=120, telemetry=TelemetrySummary(moved=[up, down], read=20))
    assert features(ctx, TAX.evidence_alerts) == ["signal:quality:down", "signal:saturation:up"]


@pytest.fixture
def triager(tmp_path: Path) -> Triager:
    settings = Settings(data_dir=tmp_path, seed_demo_history=False, llm_backend="none")
    store = open_history(settings)
    store.upsert(synthetic(90))
    tri = Triager(settings, store, None, trainer=trainer_for(settings, store, TAX))
    tri.trainer.train_now()
    return tri


def test_day_one_a_deploy_moves_root_cause_then_verdicts_move_it_back(triager: Triager) -> None:
    assert triager.trainer.evidence.priors.features  # a fresh install has the bundled priors
    ticket = Ticket(id="t", title="Errors on chat-api", text="Users report errors. We are investigating.",
                    service="chat-api", created_at=T0 + timedelta(days=30))  # fmt: skip
    plain = triager.triage(ticket).labels["root_cause"]
    p0 = plain.calibrated["deployment"]
    day_one = triager.triage(ticket, context=deploy_context()).labels["root_cause"]
    assert day_one.label == "deployment" and day_one.confidence > p0 + 0.15
    assert any(e.startswith("change:deploy x4") for e in day_one.evidence)  # named, at the prior's odds
    assert triager.triage(ticket).labels["root_cause"] == plain  # no context: exactly today's decision

    for i in range(20):  # the team's deploys turn out not to be the cause
        t = ticket.model_copy(update={"id": f"v{i}", "title": f"Errors on chat-api ({i})"})
        triager.record_verdict(
            triager.triage(t, context=deploy_context()), {"root_cause": ["infrastructure"]}
        )
    book = triager.trainer.evidence
    assert book.ratio(["change:deploy"], "root_cause", "deployment") < 1.5
    after = triager.triage(ticket, context=deploy_context()).labels["root_cause"]
    assert after.label != "deployment" or after.confidence < day_one.confidence - 0.15
    assert EvidenceBook(priors=NO_PRIORS).ratio(["change:deploy"], "root_cause", "deployment") == 1.0


def test_the_setting_names_the_file_and_a_bad_edit_keeps_the_last_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("INCIBOT_EVIDENCE_PRIORS_PATH", "")
    assert configured_priors() is NO_PRIORS
    path = _write(tmp_path, {"weight": 3})
    monkeypatch.setenv("INCIBOT_EVIDENCE_PRIORS_PATH", str(path))
    assert configured_priors().features["change:deploy"].weight == 3
    path.write_text(path.read_text().replace("deployment:", "deploymnt:"))
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))  # an edit, seen by its time
    assert configured_priors().features["change:deploy"].weight == 3  # while running: the last good file
    assert "deploymnt" in caplog.text
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text())
    monkeypatch.setenv("INCIBOT_EVIDENCE_PRIORS_PATH", str(bad))
    with pytest.raises(PriorsError, match="deploymnt"):  # at start: refused
        configured_priors()


FIXES = ["restart", "scale_out", "fix_forward", "rollback"]


def test_day_one_a_deploy_moves_the_mitigation_odds_then_verdicts_on_the_fix_move_them_back(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, seed_demo_history=False, llm_backend="none")
    store = open_history(settings)
    store.upsert([i.model_copy(update={"labels": {**i.labels, "mitigation": [FIXES[n % 4]]}})
                  for n, i in enumerate(synthetic(90))])  # fmt: skip
    triager = Triager(settings, store, None, trainer=trainer_for(settings, store, TAX))
    triager.trainer.train_now()
    ticket = Ticket(id="t", title="Errors on chat-api", text="Users report errors. We are investigating.",
                    service="chat-api", created_at=T0 + timedelta(days=30))  # fmt: skip
    plain = triager.triage(ticket).mitigation
    assert plain is not None and plain.calibrated
    day_one = triager.triage(ticket, context=deploy_context()).mitigation
    assert day_one is not None
    assert day_one.calibrated == plain.calibrated  # what verdicts are measured against: before the evidence
    shown = {h.action: h for h in day_one.hypotheses}
    assert "rollback" in shown and any(e.startswith("change:deploy x3") for e in shown["rollback"].evidence)
    before = {h.action: h.probability for h in plain.hypotheses}
    assert shown["rollback"].probability > before.get("rollback", plain.calibrated.get("rollback", 0.0))

    for i in range(20):  # what fixed the team's tickets after deploys was a restart, never a rollback
        t = ticket.model_copy(update={"id": f"m{i}", "title": f"Errors on chat-api ({i})"})
        triager.record_verdict(triager.triage(t, context=deploy_context()), {"mitigation": ["restart"]})
    book = triager.trainer.evidence
    assert book.ratio(["change:deploy"], "mitigation", "rollback") < 1.5
    assert book.ratio(["change:deploy"], "mitigation", "restart") > 1.5
