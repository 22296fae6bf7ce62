"""Why now, on the post: what changed on the ticket's service lately and what else fires there.

Looked up once, when a ticket is first posted (two indexed SQL reads, bot/store/changes.py), kept with its draft so
redraws and the LLM edit show the same; the decision reads it as why-now evidence (bot/triage/evidence.py). A lookup that fails is logged and the
ticket is posted without it: nothing here may delay or block a post.

The lines are built here as plain segments (text, optional URL); Slack (bot/delivery/slack/blocks.py) and the
terminal (bot/delivery/terminal.py) render them each in their own way.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from bot.config import Settings
from bot.models import ChangeEvent, Context, RecentChange, TelemetrySummary, Ticket, last_change_before
from bot.store.changes import ChangeStore, Window
from bot.store.tickets import TicketRow
from bot.telemetry import Catalogue, MetricsSource, build_source, describe, read_around, summarize

log = logging.getLogger("incibot")

Segment = tuple[str, str | None]  # text, and the URL it links to
Line = list[Segment]


class TelemetryLookup:
    """The metrics around a ticket (`prometheus_url`), read from `telemetry_before_min` before it opened to now.

    One per process: the source keeps its circuit breaker and the queries the server rejected. Never raises: a
    catalogue that cannot be loaded or a read that fails is an error line of the summary."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._source: MetricsSource | None = None
        self._catalogue: Catalogue | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.prometheus_url)

    def _ready(self) -> tuple[MetricsSource, Catalogue]:
        with self._lock:  # built once, on the first ticket: a bot without tickets never loads the catalogue
            if self._catalogue is None:
                self._catalogue = Catalogue.load(self.settings.signals_path)
            if self._source is None:
                self._source = build_source(self.settings)
            assert self._source is not None
            return self._source, self._catalogue

    def read(self, ticket: Ticket) -> TelemetrySummary | None:
        """The ticket's summary; None where telemetry is off or the ticket names no service."""
        if not self.enabled or not ticket.service:
            return None
        service = self.settings.change_service_map.get(
            ticket.service, ticket.service
        )  # as changes are mapped
        try:
            source, catalogue = self._ready()
            read = read_around(source, catalogue, service, ticket.created_at, self.settings)
            return summarize(read, catalogue, ticket.created_at)
        except Exception as e:  # a catalogue error or a fault the source did not foresee: the post says so
            log.warning("telemetry for %s failed: %s", ticket.id, e)
            return TelemetrySummary(errors=[f"{type(e).__name__}: {e}"[:300]], ticket_at=ticket.created_at)


class ContextLookup:
    def __init__(
        self, settings: Settings, changes: ChangeStore, telemetry: TelemetryLookup | None = None
    ) -> None:
        self.settings, self.changes = settings, changes
        self.window = Window(
            before=timedelta(minutes=settings.change_window_min),
            skew=timedelta(seconds=settings.change_skew_s),
            open_for=timedelta(hours=settings.concurrent_open_h),
        )
        self.telemetry = telemetry or TelemetryLookup(settings)

    def _route(self, route: str | None) -> str | None:
        """A dedicated channel groups what fires together; the default channel collects everything, so sharing
        it says nothing."""
        return route if route and route != self.settings.default_channel else None

    def for_row(self, row: TicketRow) -> Context | None:
        """A stored ticket's context, or None (logged) if the lookup failed."""
        try:
            ticket = row.shown or row.ticket  # its service as stored (redacted like the changes' service)
            return self.changes.context(row.key, ticket.service, self._route(row.route), ticket.created_at,
                                        row.created_at, self.window)  # fmt: skip
        except Exception:
            log.exception("context lookup for %s failed; posted without it", row.key)
            return None

    def for_ticket(
        self, ticket: Ticket, route: str | None = None, raw: Ticket | None = None
    ) -> Context | None:
        """A ticket that is not stored (`incibot triage`): its context in the same database, and its metrics
        read inline (one shot: nothing to redraw). `raw`: the ticket before redaction, whose service the metrics
        are labelled with."""
        try:
            at = ticket.created_at
            ctx = self.changes.context(ticket.id, ticket.service, self._route(route), at, at, self.window)
        except Exception:
            log.exception("context lookup for %s failed", ticket.id)
            ctx = None
        return with_telemetry(ctx, self.telemetry.read(raw or ticket), self.settings)


def with_telemetry(
    ctx: Context | None, summary: TelemetrySummary | None, settings: Settings
) -> Context | None:
    """`ctx` with the metrics added (a context of its own where the changes lookup failed or was not made)."""
    if summary is None:
        return ctx
    if ctx is None:
        ctx = Context(window_min=settings.change_window_min)
    return ctx.model_copy(update={"telemetry": summary})


def _ago(minutes: float) -> str:
    if minutes < 0:  # stamped after the alert: within the allowed clock skew
        return f"{-minutes:.0f} min after the alert (clock skew)"
    return "just before the alert" if minutes < 1 else f"{minutes:.0f} min before the alert"


def lines(ctx: Context) -> list[Line]:
    """ "Recent changes to chat-api: deploy 'router v2.3.1' by ci-bot, 12 min before the alert <link>" and
    "Also firing on chat-api: GPU memory above 95% (since 13:59) <link>"."""
    out: list[Line] = []
    if ctx.service:
        head: Line = [(f"Recent changes to {ctx.service}: ", None)]
        if not ctx.changes:
            head.append((f"no recorded change in the {ctx.window_min:.0f} min before the alert", None))
        for n, r in enumerate(ctx.changes):
            sep = "; " if n else ""
            head.append((f"{sep}{r.change.describe()}, {_ago(r.minutes_before)}", r.change.link))
        if ctx.more_changes:
            head.append((f"; and {ctx.more_changes} more", None))
        out.append(head)
    if ctx.concurrent:
        same = [s for s in ctx.concurrent if s.same_service]
        where = f"on {ctx.service}" if ctx.service and len(same) == len(ctx.concurrent) else "nearby"
        line: Line = [(f"Also firing {where}: ", None)]
        for n, s in enumerate(ctx.concurrent):
            svc = "" if s.same_service else f" [{s.service or 'no service'}]"
            state = "" if s.open else ", resolved"
            line.append((f"{'; ' if n else ''}{s.title[:120]}{svc} (since {s.since:%H:%M}{state})", s.link))
        if ctx.more_concurrent:
            line.append((f"; and {ctx.more_concurrent} more", None))
        out.append(line)
    return out


def metrics_lines(summary: TelemetrySummary, changes: list[RecentChange] | None = None) -> list[str]:
    """ "KV cache usage 0.55 -> 0.98 from 14:02, 3 min before the ticket", one per moved signal (earliest
    first), the first placed against the recent changes when they were looked up (`changes`: "4 min after deploy
    'router v2.3.1'", or "no change recorded before it"), or "nothing moved in 12 signals"; then what could not
    be read."""
    out = [describe(m, summary.ticket_at) for m in summary.moved]
    if out and changes is not None:
        out[0] += "; " + _after_change(summary.moved[0].onset, changes)
    if not summary.moved and summary.read:
        out.append(f"nothing moved in {summary.read} signal{'s' if summary.read != 1 else ''}")
    if summary.errors:
        shown = "; ".join(summary.errors[:3]) + (
            f"; and {len(summary.errors) - 3} more" if len(summary.errors) > 3 else ""
        )
        out.append(f"could not read {shown}" if summary.read else f"could not read the metrics: {shown}")
    return out


def _after_change(onset: datetime, changes: list[RecentChange]) -> str:
    """Where the first move stands against the recent changes: after the last one that landed before it."""
    last = last_change_before(changes, onset)
    if last is None:
        return "no change recorded before it"
    return f"{round((onset - last.at).total_seconds() / 60)} min after {last.describe()}"


def listing(service: str, changes: list[ChangeEvent], now: datetime) -> list[Line]:
    """`/triage changes <service>`: its newest changes, one line each."""
    if not changes:
        return [[(f"No recorded change to {service} (changes are kept change_retention_days).", None)]]
    out: list[Line] = [[(f"Recent changes to {service}, newest first:", None)]]
    for c in changes:
        ago = (now - c.at).total_seconds() / 60
        when = f"{c.at:%Y-%m-%d %H:%M} UTC" + (f", {ago:.0f} min ago" if 0 <= ago < 24 * 60 else "")
        out.append([(f"• {c.describe()} at {when} [{c.source}]", c.link)])
    return out


def plain(line: Line) -> str:
    """A line as plain text, URLs in angle brackets (the terminal, logs)."""
    return "".join(text + (f" <{url}>" if url else "") for text, url in line)
