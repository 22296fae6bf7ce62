"""What the telemetry stage hands the rest of the bot: typed, so a caller never parses Prometheus JSON."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

# Defined below the stages, where a draft can carry them; re-exported here for the telemetry stage.
from bot.models import Direction, MovedSignal, SignalKind

__all__ = ["Direction", "MovedSignal", "Point", "Series", "SignalKind", "SignalRead", "TelemetryRead"]


class Point(BaseModel):
    at: datetime
    value: float  # NaN and +-Inf are kept as Prometheus sent them; the detector drops them


class Series(BaseModel):
    labels: dict[str, str] = Field(default_factory=dict)
    points: list[Point] = Field(default_factory=list)


class SignalRead(BaseModel):
    """One catalogue entry's answer: its series, or why there are none (`error`); `truncated` says a cap cut it."""

    signal: str
    query: str
    series: list[Series] = Field(default_factory=list)
    error: str | None = None
    truncated: str | None = None


class TelemetryRead(BaseModel):
    """One read of the catalogue around a ticket; never raised through: every fault is an `error` here."""

    selector: str
    start: datetime
    end: datetime
    step_s: float
    signals: list[SignalRead] = Field(default_factory=list)
    error: str | None = None  # the whole read failed (no request was made, or none could be)
    elapsed_s: float = 0.0

    @property
    def errors(self) -> dict[str, str]:
        """Signal name -> why it could not be read."""
        return {s.signal: s.error for s in self.signals if s.error}
