"""Reject: ask why in a modal."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.common import open_modal


def register(app: App, backend: Backend) -> None:
    @app.action(blocks.REJECT)
    def reject_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        open_modal(backend, ack, body, action, client, lambda key, _row: blocks.reject_modal(key))
