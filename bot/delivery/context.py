"""Why now, on the post: what changed on the ticket's service lately and what else fires there.

Looked up once, when a ticket is first posted (two indexed SQL reads, bot/store/changes.py), kept with its draft so
redraws and the LLM edit show the same, and never part of the decision. A lookup that fails is logged and the
ticket is posted without it: nothing here may delay or block a post.

The lines are built here as plain segments (text, optional URL); Slack (bot/delivery/slack/blocks.py) and the
terminal (bot/delivery/terminal.py) render them each in their own way.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.config import Settings
from bot.models import ChangeEvent, Context, Ticket
from bot.store.changes import ChangeStore, Window
from bot.store.tickets import TicketRow

log = logging.getLogger("incibot")

Segment = tuple[str, str | None]  # text, and the URL it links to
Line = list[Segment]


class ContextLookup:
    def __init__(self, settings: Settings, changes: ChangeStore) -> None:
        self.settings, self.changes = settings, changes
        self.window = Window(
            before=timedelta(minutes=settings.change_window_min),
            skew=timedelta(seconds=settings.change_skew_s),
            open_for=timedelta(hours=settings.concurrent_open_h),
        )

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

    def for_ticket(self, ticket: Ticket, route: str | None = None) -> Context | None:
        """A ticket that is not stored (`incibot triage`): its context in the same database."""
        try:
            at = ticket.created_at
            return self.changes.context(ticket.id, ticket.service, self._route(route), at, at, self.window)
        except Exception:
            log.exception("context lookup for %s failed", ticket.id)
            return None


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
