"""Correct: open a modal with the taxonomy fields as dropdowns and a free-text fix."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.common import open_modal


def register(app: App, backend: Backend) -> None:
    @app.action(blocks.CORRECT)
    def correct_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        open_modal(backend, ack, body, action, client,
                   lambda key, row: blocks.correct_modal(key, row.draft, backend.taxonomy))  # fmt: skip
