"""One PNG of what moved around a ticket, for its thread: a small panel per moved signal (its kept trace), the
ticket's start and the recent changes marked. matplotlib's object API on the Agg canvas: no pyplot global state,
so worker threads may draw at once, and no display is needed."""

from __future__ import annotations

import io
from datetime import datetime

from bot.models import RecentChange, TelemetrySummary
from bot.telemetry.phrasing import value

MAX_PANELS = 6  # more would be unreadable in a thread; the post lists them all


def render(
    summary: TelemetrySummary, changes: list[RecentChange], ticket_at: datetime | None
) -> bytes | None:
    """The chart as PNG bytes; None when nothing moved (or nothing was kept to draw)."""
    moved = [m for m in summary.moved if len(m.trace) >= 2][:MAX_PANELS]
    if not moved:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy: only when there is a chart to draw
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 1.2 + 1.5 * len(moved)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(moved), 1, sharex=True, squeeze=False)[:, 0]
    for ax, m in zip(axes, moved, strict=True):
        times, values = zip(*m.trace, strict=True)
        ax.plot(times, values, color="#d62728" if m.bad else "#1f77b4", linewidth=1.4)
        ax.axvline(m.onset, color="#555555", linewidth=0.8, linestyle=":")
        ax.set_title(
            f"{m.title}: {value(m.before, m.unit)} -> {value(m.after, m.unit)}", fontsize=9, loc="left"
        )
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        for c in changes:
            ax.axvline(c.change.at, color="#2ca02c", linewidth=1, linestyle="--")
        if ticket_at is not None:
            ax.axvline(ticket_at, color="#000000", linewidth=1.2)
    top = axes[0]
    if ticket_at is not None:
        top.annotate(
            "ticket", (ticket_at, 1), xycoords=("data", "axes fraction"), fontsize=8, ha="left", va="bottom"
        )
    for c in changes[:5]:
        top.annotate(c.change.kind.value, (c.change.at, 1), xycoords=("data", "axes fraction"), fontsize=7,
                     color="#2ca02c", ha="right", va="bottom")  # fmt: skip
    axes[-1].xaxis.set_major_formatter(DateFormatter("%H:%M"))
    axes[-1].set_xlabel("UTC", fontsize=8)
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
