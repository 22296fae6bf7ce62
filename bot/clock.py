"""Time in one convention: aware UTC datetimes everywhere (naive ones from SQLite or feeds are UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(t: datetime) -> datetime:
    """A naive datetime read as UTC (SQLite hands them back naive; incident feeds write them so by convention)."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)
