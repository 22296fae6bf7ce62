"""One line per moved signal, for the post and the terminal."""

from __future__ import annotations

from datetime import datetime

from bot.clock import aware
from bot.telemetry.models import MovedSignal


def describe(m: MovedSignal, ticket_at: datetime | None = None) -> str:
    """'KV cache usage 0.55 -> 0.98 from 14:02, 3 min before the ticket' (times in UTC)."""
    where = " (" + ", ".join(f"{k}={v}" for k, v in sorted(m.labels.items())) + ")" if m.labels else ""
    before, after = value(m.before, m.unit), value(m.after, m.unit)
    if m.unit and not m.unit.startswith("/") and before.endswith(" " + m.unit):
        before = before.removesuffix(" " + m.unit)  # "1 -> 39 requests", not "1 requests -> 39 requests"
    line = f"{m.title}{where} {before} -> {after} from {m.onset:%H:%M}"
    if ticket_at is not None:
        minutes = round((aware(ticket_at) - m.onset).total_seconds() / 60)
        if minutes > 0:
            line += f", {minutes} min before the ticket"
        elif minutes < 0:
            line += f", {-minutes} min after the ticket"
        else:
            line += ", as the ticket opened"
    return line


def value(x: float, unit: str) -> str:
    """A level in its unit, as an engineer would write it."""
    if unit == "percent":
        return f"{x:.0f}%"
    if unit == "seconds":
        return f"{x * 1000:.0f} ms" if abs(x) < 1 else f"{x:.1f} s"
    if unit == "bytes":
        for div, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(x) >= div:
                return f"{x / div:.1f} {name}"
        return f"{x:.0f} B"
    if unit == "MiB" and abs(x) >= 1024:
        return f"{x / 1024:.1f} GiB"
    text = _num(x)
    if unit in ("ratio", ""):
        return text
    return f"{text}{unit}" if unit.startswith("/") else f"{text} {unit}"


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.2g}" if abs(x) < 0.1 else f"{x:.2f}".rstrip("0").rstrip(".")
