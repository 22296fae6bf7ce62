"""Confirm: the draft's labels were right."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.common import Malformed, ignore_malformed, tell_unknown, text_at
from bot.models import Feedback


def register(app: App, backend: Backend) -> None:
    @app.action(blocks.CONFIRM)
    def confirm_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        try:
            key, user = text_at(action, "value"), text_at(body, "user", "id")
        except Malformed as e:
            return ignore_malformed(ack, e)
        # Stored before the click is acknowledged: an ack means the verdict is durable.
        status = backend.record_feedback(key, Feedback(action="confirm", user_id=user))
        ack()
        if status is None:
            tell_unknown(client, body)
        else:
            backend.apply_feedback(key, status)
