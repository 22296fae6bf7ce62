"""Telemetry around a ticket: the service's metrics read from a Prometheus-compatible API, and what moved.

Extension point: a metrics backend is one module with a class meeting `MetricsSource`; `build_source` picks it
from the settings. Unset `prometheus_url`: no source, no telemetry, the draft is exactly what it was without.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from bot.clock import utcnow
from bot.config import Settings
from bot.models import TelemetrySummary
from bot.telemetry.catalogue import Catalogue, CatalogueError, Signal, promql_string
from bot.telemetry.changepoints import Detector, moved_signals
from bot.telemetry.models import Direction, MovedSignal, Series, SignalKind, SignalRead, TelemetryRead
from bot.telemetry.phrasing import describe

__all__ = [
    "Catalogue",
    "CatalogueError",
    "Detector",
    "Direction",
    "MetricsSource",
    "MovedSignal",
    "Series",
    "Signal",
    "SignalKind",
    "SignalRead",
    "TelemetryRead",
    "build_source",
    "describe",
    "moved_signals",
    "promql_string",
    "read_around",
    "summarize",
]


class MetricsSource(Protocol):
    def read(
        self, signals: Sequence[Signal], selector: str, start: datetime, end: datetime, step: timedelta
    ) -> TelemetryRead:
        """The signals' series for one selector over [start, end]; faults are errors in the result, never raised."""
        ...


def build_source(settings: Settings) -> MetricsSource | None:
    """The configured metrics source, or None when no metrics endpoint is set."""
    if not settings.prometheus_url:
        return None
    from bot.telemetry.prometheus import PrometheusSource  # httpx client and threads only when configured

    return PrometheusSource(settings)


def read_around(
    source: MetricsSource, catalogue: Catalogue, service: str, ticket_at: datetime, settings: Settings
) -> TelemetryRead:
    """A ticket's read: every catalogue signal for its service, `telemetry_before_min` before it opened to now."""
    return source.read(
        catalogue.signals,
        catalogue.selector(service),
        ticket_at - timedelta(minutes=settings.telemetry_before_min),
        utcnow(),
        timedelta(seconds=settings.telemetry_step_s),
    )


def summarize(
    read: TelemetryRead, catalogue: Catalogue, ticket_at: datetime, detector: Detector | None = None
) -> TelemetrySummary:
    """What the draft keeps of a read: the moved signals by onset, how many signals answered, what did not."""
    if read.error:  # the whole read failed: one reason, not the same one per signal
        return TelemetrySummary(read=0, errors=[read.error], ticket_at=ticket_at)
    return TelemetrySummary(
        moved=moved_signals(read, catalogue, detector),
        read=sum(1 for s in read.signals if not s.error),
        errors=[f"{name}: {why}" for name, why in read.errors.items()],
        ticket_at=ticket_at,
    )
