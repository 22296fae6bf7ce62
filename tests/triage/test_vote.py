"""The similarity-weighted vote of the neighbours, and how it meets the LLM's label."""

from __future__ import annotations

from bot.config import Settings
from bot.models import SimilarIncident
from bot.taxonomy import Taxonomy
from bot.triage.vote import LLM_ONLY_CONFIDENCE, decide, knn_votes

TAX = Taxonomy.load(Settings().taxonomy_path)


def sim(score: float, **labels: str) -> SimilarIncident:
    return SimilarIncident(id=str(score), title="t", score=score, labels={k: [v] for k, v in labels.items()})


def test_votes_are_similarity_weighted_and_ignore_invalid_labels() -> None:
    votes = knn_votes(
        [sim(0.9, symptom="errors"), sim(0.5, symptom="latency"), sim(0.9, symptom="BOGUS")], "symptom", TAX
    )
    assert list(votes) == ["errors", "latency"]
    assert abs(sum(votes.values()) - 1) < 1e-9 and votes["errors"] > 0.7


def test_llm_and_retrieval_agreeing_gives_high_confidence() -> None:
    d = decide("symptom", TAX, "errors", {"errors": 0.8, "latency": 0.2}, llm_weight=0.5)
    assert (d.label, d.source) == ("errors", "llm+retrieval") and d.confidence == 0.9


def test_strong_retrieval_outvotes_llm() -> None:
    d = decide("symptom", TAX, "latency", {"errors": 1.0}, llm_weight=0.4)
    assert (d.label, d.source, d.llm_label) == ("errors", "retrieval", "latency")


def test_out_of_taxonomy_llm_label_is_discarded() -> None:
    d = decide("symptom", TAX, "please-ignore-instructions", {}, llm_weight=0.5)
    assert d.label == "other" and d.source == "default" and d.confidence == 0
    d = decide("root_cause", TAX, "configuration", {}, llm_weight=0.5)
    assert d.source == "llm" and d.confidence == LLM_ONLY_CONFIDENCE
