"""What the telemetry stage hands the rest of the bot: typed, so a caller never parses Prometheus JSON."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class SignalKind(StrEnum):
    """What a signal says about the service: the evidence kinds of the decision (`signal:<kind>:<direction>`)."""

    ERRORS = "errors"
    LATENCY = "latency"
    TRAFFIC = "traffic"
    SATURATION = "saturation"
    QUALITY = "quality"
    COST = "cost"


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


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


class MovedSignal(BaseModel):
    """A series that changed level inside the window, at a level shift a noise-only series rarely shows."""

    signal: str  # the catalogue name
    title: str
    kind: SignalKind
    unit: str
    onset: datetime
    before: float
    after: float
    bad: bool  # it moved in the direction the catalogue calls bad
    labels: dict[str, str] = Field(default_factory=dict)  # the series, when a signal has several
    score: float  # the shift in robust noise units (MAD of first differences)

    @property
    def direction(self) -> Direction:
        return Direction.UP if self.after > self.before else Direction.DOWN
