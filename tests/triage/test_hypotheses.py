"""Mitigation hypotheses on a draft: learned and calibrated like the labels, a conformal set at a coverage, evidence,
abstention to "no clear precedent", the playbook following the top action; and the bad inputs of issue 26.

Real parts: scikit-learn, crepes, the bundled MiniLM embedder, embedded Chroma.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import numpy as np

from bot.config import Settings
from bot.delivery.slack.blocks import draft_blocks
from bot.models import HistoricalIncident, MitigationHypotheses, MitigationHypothesis, Ticket
from bot.store.factory import open_history
from bot.taxonomy import Taxonomy
from bot.triage.conformal import ConformalSet, ordinal_range
from bot.triage.hypotheses import headline, shown_actions, with_prior
from bot.triage.pipeline import Triager
from bot.triage.trainer import Trainer
from tests.conftest import T0
from tests.helpers import REPO
from tests.triage.test_learned_decision import KINDS, vectors

TAX = Taxonomy.load(REPO / "taxonomies" / "genai.yaml")
# What fixed each kind of incident, in the words of a status page (the extractor reads the action off them).
FIXES = {
    "infrastructure": "We added additional capacity to the GPU fleet and error rates recovered.",
    "deployment": "We rolled back the deployment to the previous model version.",
    "external_traffic": "Engineers rerouted traffic to healthy regions.",
}
GPU_TICKET = Ticket(
    id="x", title="GPU capacity exhausted for the GPT-4 API", text="429 rate limit errors since 14:00."
)


def history(
    n: int, resolution: dict[str, str] | None = None, shuffle_fixes: bool = False
) -> list[HistoricalIncident]:
    """Three kinds of incident; each fixed its own way, or (shuffle_fixes) fixed by a random one of the three."""
    rng = random.Random(1)
    out = []
    for i in range(n):
        (symptom, cause), (heads, tails) = list(KINDS.items())[i % 3]
        fix = rng.choice(list(FIXES.values())) if shuffle_fixes else (resolution or FIXES)[cause]
        out.append(
            HistoricalIncident(
                id=f"h{i}",
                title=f"{rng.choice(heads)} {rng.choice(tails)}",
                text=f"Users report {rng.choice(heads)}.",
                service="openai",
                created_at=T0 + timedelta(hours=i),
                link=f"https://status.example.com/h{i}",
                labels={
                    "symptom": [symptom],
                    "root_cause": [cause],
                    "severity": [rng.choice(["sev2", "sev3"])],
                },
                resolution=fix,
            )
        )
    return out


def triager(tmp_path: Path, incs: list[HistoricalIncident], tax: Taxonomy = TAX) -> Triager:
    s = Settings(data_dir=tmp_path / "data", seed_demo_history=False, llm_backend="none")
    store = open_history(s)
    store.upsert(incs)
    trainer = Trainer(tax, None, None, k=5)
    trainer.train_now(incs, vectors(incs))
    return Triager(s, store, None, taxonomy=tax, trainer=trainer)


def test_a_draft_has_calibrated_hypotheses_with_evidence_and_the_playbook_follows_the_top_action(
    tmp_path: Path,
) -> None:
    t = triager(tmp_path, history(150))
    d = t.triage(GPU_TICKET, use_llm=False)
    m = d.mitigation
    assert m is not None and m.source == "classifier" and not m.abstained
    top = m.hypotheses[0]
    assert top.action == "scale_out" and top.probability >= 0.8 and m.coverage == 0.85
    assert 1 <= len(m.hypotheses) <= 3 and m.conformal_set[0] == "scale_out"
    assert top.similar and all(
        e.link and "capacity" in e.sentence for e in top.similar
    )  # fixed that way, linked
    assert top.ticket_terms  # what in the ticket points to it
    assert d.playbook.id in TAX.playbooks_for("scale_out") and d.playbook.source == "classifier"
    text = str(draft_blocks("k1", GPU_TICKET, d, TAX, "retrieval"))
    assert "What may fix it" in text and "Scale out" in text and "https://status.example.com/h" in text
    assert '"mitigation"' in d.model_dump_json()  # --json carries the hypotheses


def test_fixes_unrelated_to_the_ticket_abstain_to_no_clear_precedent(tmp_path: Path) -> None:
    t = triager(tmp_path, history(150, shuffle_fixes=True))
    d = t.triage(GPU_TICKET, use_llm=False)
    m = d.mitigation
    assert m is not None and m.source == "classifier"
    assert m.abstained and "no clear precedent" in m.note
    assert max(h.probability for h in m.hypotheses) < 0.6  # honest odds: three actions about equally likely
    # abstained: the action does not choose the playbook; the labels' scope and the neighbours' fixes do, as before
    assert d.playbook.source in ("retrieval", "default")


def test_no_fix_sentence_anywhere_in_the_history(tmp_path: Path) -> None:
    incs = history(90, resolution={k: "This incident has been resolved." for k in FIXES})
    t = triager(tmp_path, incs)
    assert t.trainer.current is not None and t.trainer.current.actions is None
    assert "known fix" in t.trainer.current.actions_fallback
    d = t.triage(GPU_TICKET, use_llm=False)
    assert d.mitigation is not None and d.mitigation.hypotheses == [] and d.mitigation.source == "none"
    assert d.mitigation.note == "no clear precedent"
    assert d.playbook.source != "classifier"  # the mix decides, as before actions were learned


def test_too_few_known_fixes_rank_by_what_usually_fixed_incidents_here(tmp_path: Path) -> None:
    # 12 known fixes (< 20): no action model; the hypotheses are the history's base rate, the neighbours' fixes on top
    incs = [
        i.model_copy(
            update={"resolution": FIXES["deployment"] if n % 9 == 0 else "This incident has been resolved."}
        )
        for n, i in enumerate(history(100))
    ]
    t = triager(tmp_path, incs)
    learned = t.trainer.current
    assert learned is not None and learned.actions is None and learned.n_actions == 12
    assert learned.action_base == {"rollback": 1.0}
    m = t.triage(GPU_TICKET, use_llm=False).mitigation
    assert m is not None and m.abstained and m.candidates[0] == "rollback"
    assert m.source in ("prior", "vote") and "how past incidents here were fixed" in m.note
    assert "12 incidents with a known fix" in m.note  # why there is no calibrated model


def test_the_prior_counts_as_much_as_a_whole_neighbourhood() -> None:
    base = {"fix_forward": 0.6, "rollback": 0.4}
    # one neighbour of five fixed by a restart: the base rate still leads
    one = with_prior({"restart": 1.0}, 1, base, 5)
    assert next(iter(one)) == "fix_forward" and one["restart"] == round(1 / 6, 4)
    # five agreeing neighbours: their fix leads, at odds it has earned from them
    five = with_prior({"restart": 1.0}, 5, base, 5)
    assert next(iter(five)) == "restart" and five["restart"] == 0.5
    assert with_prior({"rollback": 1.0}, 1, {}, 5) == {"rollback": 1.0}  # no base rate: the vote as before
    assert abs(sum(with_prior({"restart": 0.7, "rollback": 0.3}, 3, base, 5).values()) - 1) < 1e-3


def test_a_verdict_naming_an_action_outside_the_vocabulary_is_not_trained_on(tmp_path: Path) -> None:
    incs = history(90)
    bad = incs[0].model_copy(
        update={"source": "feedback:U1", "labels": {**incs[0].labels, "mitigation": ["pray"]}}
    )
    trainer = Trainer(TAX, None, None)
    actions = trainer.actions_of([bad, incs[1]])
    assert actions == ["scale_out", "rollback"]  # the unknown action is ignored: its resolution text decides


def test_a_taxonomy_without_a_mitigation_section_keeps_todays_playbook_choice(tmp_path: Path) -> None:
    tax = TAX.model_copy(update={"mitigation": None})
    t = triager(tmp_path, history(90), tax)
    assert t.trainer.current is not None and t.trainer.current.actions is None
    d = t.triage(GPU_TICKET, use_llm=False)
    assert d.mitigation is None and d.playbook.source in ("retrieval", "default")


def test_conformal_sets_cover_as_stated_on_synthetic_scores() -> None:
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c", "d", "e"]

    def row() -> tuple[dict[str, float], str]:
        p = rng.dirichlet(np.ones(5) * 0.7)
        return dict(zip(classes, p.tolist(), strict=True)), classes[int(rng.choice(5, p=p))]

    cal = [row() for _ in range(2000)]
    cs = ConformalSet.fit(classes, [s[g] for s, g in cal])
    assert cs is not None
    test = [row() for _ in range(2000)]
    for coverage in (0.7, 0.85, 0.95):
        sets = [cs.predict(s, coverage) for s, _ in test]
        hit = np.mean([g in st for st, (_, g) in zip(sets, test, strict=True)])
        assert abs(hit - coverage) < 0.03
        assert all(st == sorted(st, key=lambda c, s=s: -s[c]) for st, (s, _) in zip(sets, test, strict=True))
    sizes = [np.mean([len(cs.predict(s, c)) for s, _ in test[:300]]) for c in (0.7, 0.95)]
    assert sizes[0] < sizes[1]  # a higher coverage takes more hypotheses
    assert ConformalSet.fit(classes, [0.5] * 5) is None  # too few rows: no set rather than a guessed coverage
    assert ordinal_range(["sev3", "sev1"], ["sev1", "sev2", "sev3", "sev4"]) == ["sev1", "sev2", "sev3"]


def test_an_abstaining_fields_set_is_shown_only_when_it_says_more_than_one_label() -> None:
    from bot.models import LabelDecision
    from bot.taxonomy import Taxonomy
    from bot.triage.hypotheses import set_text
    from tests.helpers import REPO

    sev = Taxonomy.load(REPO / "taxonomies" / "genai.yaml").fields["severity"]
    d = LabelDecision(field="severity", label="sev3", confidence=0.69, source="classifier", abstained=True, set_coverage=0.85,
                      label_set=["sev2", "sev3"])  # fmt: skip
    assert set_text(d, sev).endswith("(85% set)") and " - " in set_text(d, sev)
    # one label "not sure" beside a set of that one label would contradict itself: the candidates are asked
    assert set_text(d.model_copy(update={"label_set": ["sev3"]}), sev) == ""


def test_a_set_of_one_below_its_coverage_lists_the_likeliest_three_instead() -> None:
    ranked = ["fix_forward", "config_change", "traffic_shift", "rollback"]
    # the set holds two or more: those, best first
    assert shown_actions(["traffic_shift", "fix_forward"], ranked, True) == (
        ["fix_forward", "traffic_shift"],
        True,
    )
    # one action at odds below the coverage (abstained): "Fix forward 69%" beside "the 85% set" would contradict
    assert shown_actions(["fix_forward"], ranked, True) == (ranked[:3], False)
    assert shown_actions([], ranked, True) == (ranked[:3], False)  # an empty set says nothing
    assert shown_actions(["fix_forward"], ranked, False) == (["fix_forward"], True)  # confident: the one
    # a set of more than half the actions narrows nothing: the likeliest, with their odds
    assert shown_actions(ranked[:3], ranked, True) == (ranked[:3], False)
    assert shown_actions(ranked[1:], ranked, False) == (ranked[:1], False)
    hyps = [MitigationHypothesis(action=a, title=a, probability=0.2) for a in ranked[:3]]
    m = MitigationHypotheses(hypotheses=hyps, abstained=True, source="classifier", coverage=0.85,
                             conformal_set=["fix_forward"], from_set=False, candidates=ranked[:3])  # fmt: skip
    assert headline(m) == "no clear precedent; the likeliest"
    m2 = m.model_copy(update={"conformal_set": ranked, "from_set": True})
    assert headline(m2) == "no clear precedent; the 85% set, 1 more in the set"
