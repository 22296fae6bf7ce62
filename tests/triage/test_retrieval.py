"""Retrieval on the real embedded Chroma with the real embedding model: the ticket itself and near-duplicates are
left out, and what is shown records how it was fixed."""

from __future__ import annotations

from bot.store.vectors import VectorStore
from bot.triage.retrieval import retrieve_all
from tests.conftest import incident


def test_retrieval_excludes_the_ticket_and_near_duplicates(store: VectorStore) -> None:
    store.upsert([incident(7, "Elevated error rates on ChatGPT", resolution="duplicate page of h1")])
    similar = retrieve_all(store, "Elevated error rates on ChatGPT", k=4, exclude_ids=("h1",)).shown
    ids = [s.id for s in similar]
    assert "h1" not in ids and "h7" in ids
    similar = retrieve_all(store, "Elevated error rates on ChatGPT", k=4).shown
    assert len({"h1", "h7"} & {s.id for s in similar}) == 1  # the same text twice is shown once
    assert all(s.resolution for s in similar)


def test_one_incident_imported_from_two_tools_is_shown_once_with_its_fix() -> None:
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from bot.models import HistoricalIncident
    from bot.store.vectors import Hit
    from bot.triage.retrieval import drop_near_duplicates

    at = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
    pd = HistoricalIncident(id="pagerduty:P1", source="pagerduty", title="Elevated 5xx on chat-api",
                            text="Error rate above 5% on chat completions.", created_at=at)  # fmt: skip
    jira = HistoricalIncident(id="jira:INC-9", source="jira", title="Elevated 5XX on chat-api!",
                              text="Opened from the page. Customers affected in EU.",
                              created_at=at + timedelta(minutes=7), resolution="Rolled back the router.")  # fmt: skip
    later = jira.model_copy(update={"id": "jira:INC-99", "created_at": at + timedelta(days=3)})
    same_tool = pd.model_copy(update={"id": "pagerduty:P2", "created_at": at + timedelta(hours=2)})
    rng = np.random.default_rng(0)

    def hit(inc: HistoricalIncident, score: float) -> Hit:
        v = rng.normal(size=8)
        return Hit(inc, score, v / np.linalg.norm(v))  # unrelated vectors: only the incident rule can match

    kept = drop_near_duplicates([hit(pd, 0.9), hit(jira, 0.8), hit(later, 0.7), hit(same_tool, 0.6)], 0.97)
    # the two tools' records of one incident: once, the one that says how it was fixed; a recurrence days later
    # and a second page two hours on are incidents of their own
    assert [h.incident.id for h in kept] == ["jira:INC-9", "jira:INC-99", "pagerduty:P2"]
