"""Correct: open a modal with the taxonomy fields as dropdowns and a free-text fix."""

from __future__ import annotations

from typing import Any

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.common import open_modal
from bot.service import TriageService


def make(service: TriageService) -> Any:
    def correct_button(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        open_modal(service, ack, body, action, client,
                   lambda key, row: blocks.correct_modal(key, row.draft, service.triager.taxonomy))  # fmt: skip

    return correct_button
