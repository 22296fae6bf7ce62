"""A post that does not contradict itself and shows only evidence (issue 32, "the demo post contradicts itself").

Each rule fails on the code before the fix: a denied word shown as evidence ("deployment" from "No deployment
announced"), model names, clocks and stop-word pairs shown as the ticket's words, a share of one neighbour shown as
"100%", a playbook other than the likeliest fix's with no reason given, and a row of "no fix recorded" per neighbour.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.models import (
    DraftPlaybook,
    FixSummary,
    MitigationHypotheses,
    MitigationHypothesis,
    SimilarIncident,
)
from bot.taxonomy import Taxonomy
from bot.triage.hypotheses import MitigationAdvisor, hypothesis_text
from bot.triage.mitigation import without_fix
from bot.triage.negation import asserted, mark_negated
from bot.triage.playbook_choice import PlaybookChoice, reason
from bot.triage.playbooks import PlaybookLibrary
from bot.triage.terms import ActionTerms
from tests.helpers import REPO

TAX = Taxonomy.load(REPO / "taxonomies" / "genai.yaml")
DEMO = (
    "Customers report HTTP 500 and 504 responses from the chat completions endpoint. Error rate went from 0.1% "
    "to 7% at 14:05 UTC, mostly for gpt-4o; other models look normal. No deployment announced."
)


@pytest.mark.parametrize(
    ("text", "denied", "kept"),
    [
        (DEMO, "deployment", "responses"),
        ("Not a config change; errors since the rollout", "config", "rollout"),
        ("The deploy was ruled out, but the config changed", "deploy", "config"),
        ("We doubt whether a rollback would help", "rollback", "doubt"),
        ("Users can't log in since the deployment at 14:00", "log", "deployment"),
        ("Not only errors but timeouts", "", "errors"),  # a pseudo-negation denies nothing
    ],
)
def test_negated_and_hypothetical_mentions_are_marked(text: str, denied: str, kept: str) -> None:
    marked = mark_negated(text)
    if denied:
        assert f"not_{denied}" in marked and not asserted(denied, text)
    assert asserted(kept, text) and f"not_{kept}" not in marked


def test_a_word_asserted_once_counts_even_if_denied_elsewhere() -> None:
    assert asserted("deployment", "No deployment was planned, yet a deployment at 13:58 preceded the errors")


@pytest.mark.parametrize(
    ("action", "term", "shown"),
    [
        ("rollback", "deployment", False),  # denied in the ticket
        ("fix_forward", "4o", False),  # a model name
        ("fix_forward", "gpt 4o", False),
        ("fix_forward", "for gpt", False),  # a stop-word pair
        ("fix_forward", "utc and", False),
        ("fix_forward", "05", False),  # a clock
        ("fix_forward", "of requests", False),
        ("fix_forward", "use", False),  # words every report uses
        ("fix_forward", "reports", False),
        ("fix_forward", "api", False),
        ("rollback", "chat", False),
        ("rollback", "rollout", True),  # carries the action's meaning, and the ticket says it
        ("scale_out", "capacity", True),
        ("config_change", "feature flag", True),
        ("traffic_shift", "router", False),  # a thing named like the action ("routed"), not the action
    ],
)
def test_only_words_that_carry_the_actions_meaning_are_evidence(action: str, term: str, shown: bool) -> None:
    text = DEMO + " A rollout of the router started at 13:58; capacity ran out; the feature flag was enabled."
    assert ActionTerms(TAX).is_evidence(action, term, text) is shown


def _similar(i: int, action: str | None, score: float) -> SimilarIncident:
    fix = FixSummary(action=action, sentence=f"did {action}", source="text") if action else None
    return SimilarIncident(id=f"s{i}", title=f"incident {i}", score=score, created_at=datetime(2024, 1, i + 1, tzinfo=UTC),
                           fix=fix)  # fmt: skip


def test_a_share_of_the_neighbours_is_a_count_not_odds() -> None:
    neighbours = [
        _similar(1, None, 0.8),
        _similar(2, "fix_forward", 0.76),
        *(_similar(i, None, 0.7) for i in (3, 4, 5)),
    ]
    m = MitigationAdvisor(TAX, 0.85).advise(None, None, neighbours, neighbours, DEMO)
    assert m is not None and m.source == "vote"
    line = hypothesis_text(m.hypotheses[0])
    assert line.startswith("Fix forward: 1 of 5 similar incidents was fixed this way")
    assert "100%" not in line


def test_similar_incidents_without_a_fix_are_one_line() -> None:
    similar = [_similar(1, None, 0.8), _similar(2, "rollback", 0.79), _similar(3, None, 0.77)]
    line = without_fix(similar, lambda s: f"'{s.title}' ({s.score:.2f})")
    assert line == "2 of 3 record no fix: 'incident 1' (0.80), 'incident 3' (0.77)"
    assert without_fix([similar[1]], str) == ""


def test_a_playbook_that_is_not_the_likeliest_fixs_says_why() -> None:
    lib = PlaybookLibrary.load(REPO / "playbooks")
    hyp = MitigationHypothesis(action="fix_forward", title="Fix forward", probability=0.47,
                               playbooks=TAX.playbooks_for("fix_forward"))  # fmt: skip
    m = MitigationHypotheses(
        hypotheses=[hyp], abstained=True, source="classifier", candidates=["fix_forward"]
    )
    traffic = PlaybookChoice(lib.by_id["traffic-control"], "retrieval")
    why = reason(traffic, m)
    assert "not the likeliest fix (Fix forward)" in why and "no fix is likely enough" in why
    followed = PlaybookChoice(lib.by_id["deployment-halt"], "classifier")
    assert (
        reason(followed, m.model_copy(update={"abstained": False}))
        == "follows the likeliest fix, Fix forward"
    )
    assert "it fits the likeliest fix" in reason(PlaybookChoice(lib.by_id["deployment-halt"], "retrieval"), m)


def test_held_out_dev_posts_break_no_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules judged on real posts: held-out tickets of the bundled (dev) history, as `evals.post_rules` runs."""
    from evals.post_rules import RULES, check

    counts, rows, status = check(
        12, every=3
    )  # a third of the history: the rules, not the accuracy, are tested
    assert status.startswith("trained on"), status
    assert {r: counts[r] for r in RULES} == dict.fromkeys(RULES, 0), [r for r in rows if r["broken"]]
    assert DraftPlaybook.model_fields["reason"].default == ""
