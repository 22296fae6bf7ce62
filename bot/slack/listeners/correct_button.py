"""Correct: open a modal with the taxonomy fields as dropdowns and a free-text fix."""

from __future__ import annotations

from typing import Any

from bot.service import TriageService
from bot.slack import blocks
from bot.slack.listeners.common import Malformed, ignore_malformed, tell_unknown, text_at


def make(service: TriageService) -> Any:
    def correct_button(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        try:
            key, trigger = text_at(action, "value"), text_at(body, "trigger_id")
        except Malformed as e:
            return ignore_malformed(ack, e)
        ack()
        row = service.store.get(key)
        if row is None:
            tell_unknown(client, body)
            return
        client.views_open(
            trigger_id=trigger, view=blocks.correct_modal(key, row.get("draft"), service.triager.taxonomy)
        )

    return correct_button
