"""Correct: open a modal with the taxonomy fields as dropdowns and a free-text fix."""

from __future__ import annotations

from typing import Any

from bot.service import TriageService
from bot.slack import blocks
from bot.slack.listeners.common import tell_unknown


def make(service: TriageService) -> Any:
    def correct_button(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        ack()
        row = service.store.get(action["value"])
        if row is None:
            tell_unknown(client, body)
            return
        client.views_open(
            trigger_id=body["trigger_id"],
            view=blocks.correct_modal(action["value"], row.get("draft"), service.triager.taxonomy),
        )

    return correct_button
