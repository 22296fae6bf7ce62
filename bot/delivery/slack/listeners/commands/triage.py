"""/triage <text> | /triage similar <text> | /triage changes <service> | /triage mode llm|retrieval-only |
/triage label [n] | /triage help"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.clock import utcnow
from bot.delivery.context import listing
from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.backend import Backend
from bot.intake.receiver import Backpressure
from bot.intake.senders import EventKind, WebhookEvent
from bot.models import Ticket
from bot.store.vectors import HistoryError
from bot.watch.mode import ModeRefused

log = logging.getLogger("incibot")


def register(app: App, backend: Backend) -> None:
    @app.command("/triage")
    def triage_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        text = (command.get("text") or "").strip()
        word, _, rest = text.partition(" ")
        if not text or word.lower() == "help":
            ack(text=blocks.HELP)
            return
        if word.lower() == "similar":
            if not rest.strip():
                ack(text="Usage: /triage similar <text>")
                return
            ack(text="Searching similar incidents…")
            hits = backend.similar(rest)
            respond(
                blocks=blocks.similar_blocks(hits), text="Similar past incidents", response_type="ephemeral"
            )
            return
        if word.lower() == "changes":
            service = rest.strip()
            if not service:
                ack(text="Usage: /triage changes <service>")
                return
            ack(text=blocks.context_lines(listing(service, backend.recent_changes(service), utcnow()))[:3000])
            return
        if word.lower() == "label":
            label_batch(backend, rest.strip(), ack, respond)
            return
        if word.lower() == "mode":
            user = command.get("user_id") or ""
            try:
                change = backend.mode.set(rest, user) if rest.strip() else backend.mode.current()
            except ModeRefused as e:
                # It quotes what was typed: "<!channel>" unescaped would notify the whole channel.
                ack(text=f"Mode not changed: {blocks.escape(str(e))}.")
                return
            if change is None:
                ack(text="Mode: llm (never switched). Usage: /triage mode llm|retrieval-only")
                return
            ack(text=f"Mode: {change.mode} (set by <@{change.user_id}> at {change.created_at:%H:%M} UTC), "
                     f"in force on every replica within {backend.settings.mode_ttl_s:.0f} s.")  # fmt: skip
            return
        # Acknowledge first (Slack's 3-second limit); the ticket is stored and posted by the workers.
        ack(text="Triaging… the draft will appear in this channel.")
        key = f"slash:{command.get('trigger_id') or command.get('command_ts') or id(command)}"
        ticket = Ticket(id=key, title="", text=text, source="slack", raw={"user_id": command.get("user_id")})
        try:
            event = WebhookEvent(
                kind=EventKind.OPEN, source="slack", thread=key, ticket=ticket, items={"open": ""}
            )
            backend.accept(event, channel=command.get("channel_id") or None)
        except Backpressure as e:
            respond(text=f"The bot is catching up on an incident storm ({e}). Try again shortly.")


def label_batch(backend: Backend, arg: str, ack: Ack, respond: Respond) -> None:
    """`/triage label [n]`: acknowledged at once, then the batch (reading the history and fitting the classifiers
    takes seconds) answered ephemerally through the response URL."""
    if arg and not (arg.isdecimal() and 1 <= int(arg) <= blocks.LABEL_MAX):
        ack(text=f"Usage: /triage label [n], n from 1 to {blocks.LABEL_MAX} (default {blocks.LABEL_DEFAULT})")
        return
    ack(text="Choosing past incidents to label…")
    try:
        batch = backend.to_label(int(arg) if arg else blocks.LABEL_DEFAULT)
    except HistoryError as e:
        respond(text=f"The history store is unavailable: {blocks.escape(str(e))[:500]}. Try again shortly.",
                response_type="ephemeral")  # fmt: skip
        return
    except Exception:  # after the ack nobody else would tell the engineer: never a silent "Choosing…"
        log.exception("/triage label failed")
        respond(
            text="Could not choose incidents to label (the error is in the bot's log).",
            response_type="ephemeral",
        )
        return
    if not batch.candidates:
        said = ("The history is empty: nothing to label (`incibot history import` first)." if not batch.history_size
                else f"Nothing to label: every past incident with text ({batch.history_size} in the history) is labelled.")  # fmt: skip
        respond(text=said, response_type="ephemeral")
        return
    text, shown = blocks.label_batch_message(batch, backend.taxonomy)
    respond(text=text, blocks=shown, response_type="ephemeral")
