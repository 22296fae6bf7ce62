"""Time to mitigate (resolved - opened) of comparable past incidents: one estimator per way of choosing them.

`python -m evals.time_to_mitigate` scores each estimator against the overall median of the visible history (MAE of
log10 minutes, 80% range coverage); the post shows an estimate only from the one set in `ttm_estimator`, which
should be a method that eval showed beats the base rate. Durations are skewed over four orders of magnitude
(minutes to days), so medians and ranges are taken on log10 minutes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel

from bot.models import HistoricalIncident, SimilarIncident, Ticket, TimeEstimate
from bot.store.vectors import HistoryError, VectorStore

if TYPE_CHECKING:
    from bot.triage.mitigation import MitigationExtractor as Extractor
    from bot.triage.trainer import Trainer

Estimator = Literal["none", "base", "neighbours", "action", "severity", "service"]
ESTIMATORS: tuple[str, ...] = ("none", "base", "neighbours", "action", "severity", "service")
MIN_GROUP = 5  # past incidents a group needs before its durations say anything (else: no estimate)
MIN_NEIGHBOURS = 3  # of the k neighbours, with a recorded duration
RANGE = (0.1, 0.9)  # the shown range: 80% of comparable past incidents took this long
SEVERITY = "severity"


def duration_min(created: datetime, resolved: datetime | None) -> float | None:
    """Minutes from opening to resolution (at least 1); None when unknown, or when it was resolved at or before its
    opening: a one-message status post (github-status before 2019: 832 records) or a dirty record, not a duration."""
    if resolved is None or resolved <= created:
        return None
    return max((resolved - created).total_seconds() / 60.0, 1.0)


def estimate(minutes: Iterable[float], method: str, min_n: int = MIN_GROUP) -> TimeEstimate | None:
    """Median and 80% range of the durations (on log10 minutes), or None below `min_n` of them."""
    logs = np.log10(np.asarray([m for m in minutes if m and m > 0], dtype=float))
    if len(logs) < max(min_n, 1):
        return None
    lo, mid, hi = np.quantile(logs, [RANGE[0], 0.5, RANGE[1]])
    return TimeEstimate(
        method=method, minutes=float(10**mid), low=float(10**lo), high=float(10**hi), n=len(logs)
    )


def likely_action(similar: list[SimilarIncident]) -> str | None:
    """The action most of the neighbours were fixed by, weighted by similarity (None: no fix recorded)."""
    votes: dict[str, float] = defaultdict(float)
    for s in similar:
        if s.fix is not None:
            votes[s.fix.action] += max(s.score, 0.0)
    return max(votes, key=lambda a: votes[a]) if votes else None


class Past(BaseModel):
    """A past incident as the estimators see it: its duration and the keys they group by."""

    id: str
    minutes: float
    service: str | None = None
    severity: str | None = None
    action: str | None = None


class DurationBook:
    """Durations of past incidents, by id and by service, severity and action."""

    def __init__(self, rows: Iterable[Past]) -> None:
        self.rows = list(rows)
        self.by_id = {r.id: r.minutes for r in self.rows}

    @classmethod
    def from_incidents(
        cls, incidents: Iterable[HistoricalIncident], actions: dict[str, str | None] | None = None
    ) -> DurationBook:
        actions = actions or {}
        rows = []
        for inc in incidents:
            m = duration_min(inc.created_at, inc.resolved_at)
            if m is not None:
                sev = next(iter(inc.labels.get(SEVERITY, [])), None)
                rows.append(
                    Past(id=inc.id, minutes=m, service=inc.service, severity=sev, action=actions.get(inc.id))
                )
        return cls(rows)

    def group(self, key: Literal["service", "severity", "action"], value: str | None) -> list[float]:
        if value is None:
            return []
        return [r.minutes for r in self.rows if getattr(r, key) == value]

    def estimate(
        self,
        method: str,
        *,
        neighbours: Iterable[str] = (),
        service: str | None = None,
        severity: str | None = None,
        action: str | None = None,
    ) -> TimeEstimate | None:
        """The estimate of one method for a ticket (None: "none", or too few comparable incidents)."""
        if method == "base":
            return estimate((r.minutes for r in self.rows), method)
        if method == "neighbours":
            found = [self.by_id[i] for i in neighbours if i in self.by_id]
            return estimate(found, method, MIN_NEIGHBOURS)
        if method in ("service", "severity", "action"):
            value = {"service": service, "severity": severity, "action": action}[method]
            return estimate(self.group(method, value), method)  # type: ignore[arg-type]
        return None


def ttm_line(t: TimeEstimate) -> str:
    """The one wording every view uses."""
    return (
        f"Typical time to mitigate for similar incidents: ~{human(t.minutes)} "
        f"(80% range {human(t.low)}-{human(t.high)}; {t.n} past incidents, by {t.method})"
    )


def human(minutes: float) -> str:
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h".replace(".0 h", " h")
    return f"{minutes / 1440:.1f} d".replace(".0 d", " d")


class TimeToMitigate:
    """The post's estimate by the configured method (`ttm_estimator`), from the history's durations: read once per
    training of the classifier (history only changes with verdicts and imports, which retrain it)."""

    def __init__(
        self, method: str, history: VectorStore, trainer: Trainer, extractor: Callable[[], Extractor]
    ):
        self.method, self.history, self.trainer, self.extractor = method, history, trainer, extractor
        self._book: tuple[int, DurationBook] | None = None

    def book(self) -> DurationBook:
        if self._book is None or self._book[0] != self.trainer.trainings:
            incidents, _ = self.history.all()
            actions: dict[str, str | None] = {}
            if (
                self.method == "action"
            ):  # only this method needs every past incident's action (one batched pass)
                fixes = self.extractor().of_history(incidents)
                actions = {i.id: f.action if f else None for i, f in zip(incidents, fixes, strict=True)}
            self._book = (self.trainer.trainings, DurationBook.from_incidents(incidents, actions))
        return self._book[1]

    def __call__(
        self,
        ticket: Ticket,
        severity: str | None,
        similar: list[SimilarIncident],
        neighbours: list[SimilarIncident],
    ) -> TimeEstimate | None:
        if self.method == "none":
            return None
        try:
            book = self.book()
        except HistoryError:
            return None  # the post goes out without it, as without similar incidents
        return book.estimate(self.method, neighbours=[s.id for s in neighbours], service=ticket.service,
                             severity=severity, action=likely_action(similar))  # fmt: skip
