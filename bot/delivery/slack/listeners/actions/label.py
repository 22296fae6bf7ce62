"""Label, beside a past incident of `/triage label`: open the Correct modal for that history incident."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.common import NOT_IN_HISTORY, Malformed, ignore_malformed, text_at
from bot.store.vectors import HistoryError


def register(app: App, backend: Backend) -> None:
    @app.action(blocks.LABEL)
    def label_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        try:
            incident_id, trigger = text_at(action, "value"), text_at(body, "trigger_id")
        except Malformed as e:
            return ignore_malformed(ack, e)
        ack()
        # One read by id (milliseconds): the trigger expires 3 seconds after the click.
        try:
            found = backend.history_incident(incident_id)
        except HistoryError as e:
            text = (
                f"The history store is unavailable, nothing to label right now: {blocks.escape(str(e))[:500]}"
            )
            client.views_open(trigger_id=trigger, view=blocks.notice_modal("History unavailable", text))
            return
        if found is None:
            client.views_open(
                trigger_id=trigger, view=blocks.notice_modal("Not in the history", NOT_IN_HISTORY)
            )
            return
        client.views_open(trigger_id=trigger, view=blocks.label_modal(found, backend.taxonomy))
