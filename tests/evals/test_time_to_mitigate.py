"""The time-to-mitigate eval on a small synthetic history: estimators, scores and the recommended setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.models import HistoricalIncident
from bot.triage.ttm import DurationBook, duration_min, estimate, human, ttm_line
from evals.time_to_mitigate import Scored, summarise

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def inc(i: int, minutes: float | None, service: str, sev: str) -> HistoricalIncident:
    created = T0 + timedelta(days=i)
    return HistoricalIncident(id=f"i{i}", title="t", created_at=created, service=service, labels={"severity": [sev]},
                              resolved_at=created + timedelta(minutes=minutes) if minutes is not None else None)  # fmt: skip


def test_durations_and_estimates_are_read_on_log_minutes() -> None:
    assert duration_min(T0, T0 + timedelta(hours=2)) == 120.0
    assert (
        duration_min(T0, T0) is None and duration_min(T0, None) is None
    )  # a one-message post is no duration
    t = estimate([10, 100, 1000, 100, 100], "base")
    assert t is not None and t.minutes == pytest.approx(100.0) and t.n == 5
    assert (round(t.low, 1), round(t.high, 1)) == (25.1, 398.1)  # 10th/90th percentile of log10 minutes
    assert estimate([10, 20], "base") is None  # too few to say anything
    assert (
        ttm_line(t)
        == "Typical time to mitigate for similar incidents: ~100 min (80% range 25 min-6.6 h; 5 past incidents, by base)"
    )
    assert human(3000) == "2.1 d"


def test_the_book_groups_by_service_severity_and_neighbours() -> None:
    history = [inc(i, 30 if i % 2 else 600, "api" if i % 2 else "web", "sev2") for i in range(12)]
    history.append(inc(99, None, "api", "sev1"))  # no duration: left out
    book = DurationBook.from_incidents(history, {"i1": "rollback"})
    assert len(book.rows) == 12
    api = book.estimate("service", service="api")
    assert api is not None and api.minutes == pytest.approx(30.0) and api.n == 6
    assert book.estimate("severity", severity="sev1") is None
    near = book.estimate("neighbours", neighbours=["i0", "i2", "i4", "missing"])
    assert near is not None and near.minutes == pytest.approx(600.0) and near.n == 3
    assert book.estimate("action", action="rollback") is None  # one incident: below the group minimum
    assert book.estimate("none") is None


def test_summary_scores_methods_against_base_deterministically() -> None:
    actual = [1.0, 2.0, 1.5, 2.5, 1.2, 2.2, 1.8, 1.1] * 5
    scored = {
        "base": [Scored(actual=a, pred=1.7, low=1.0, high=2.4, own=True) for a in actual],
        # knows the answer within 0.1 on every case, a tight but honest range: beats base
        "service": [Scored(actual=a, pred=a + 0.1, low=a - 0.2, high=a + 0.2, own=True) for a in actual],
        # no better than base and an overconfident range: does not
        "neighbours": [Scored(actual=a, pred=1.7, low=1.65, high=1.75, own=True) for a in actual],
    }
    r = summarise("synthetic", scored, 40)
    base, svc, nb = r["methods"]["base"], r["methods"]["service"], r["methods"]["neighbours"]
    assert (base["mae_log10_min"], base["coverage80"]) == (0.463, 0.875)  # |a - 1.7| averages 3.7 / 8
    assert (svc["mae_log10_min"], svc["coverage80"]) == (0.1, 1.0)
    assert svc["mae_minus_base"] == pytest.approx(-0.3625, abs=1e-3)
    assert svc["beats_base"] and svc["mae_minus_base_ci95"][1] < 0
    assert not nb["beats_base"] and nb["coverage80"] == 0.0
    assert r["ttm_estimator"] == "service"
    assert summarise("synthetic", scored, 40) == r  # the bootstrap is seeded
    assert (
        summarise("flat", {"base": scored["base"], "neighbours": scored["neighbours"]}, 40)["ttm_estimator"]
        == "none"
    )
