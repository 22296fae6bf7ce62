"""Reject: ask why in a modal."""

from __future__ import annotations

from typing import Any

from bot.service import TriageService
from bot.slack import blocks
from bot.slack.listeners.common import tell_unknown


def make(service: TriageService) -> Any:
    def reject_button(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        ack()
        if service.store.get(action["value"]) is None:
            tell_unknown(client, body)
            return
        client.views_open(trigger_id=body["trigger_id"], view=blocks.reject_modal(action["value"]))

    return reject_button
