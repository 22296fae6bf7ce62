"""Reject: ask why in a modal."""

from __future__ import annotations

from typing import Any

from bot.service import TriageService
from bot.slack import blocks
from bot.slack.listeners.common import Malformed, ignore_malformed, tell_unknown, text_at


def make(service: TriageService) -> Any:
    def reject_button(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        try:
            key, trigger = text_at(action, "value"), text_at(body, "trigger_id")
        except Malformed as e:
            return ignore_malformed(ack, e)
        ack()
        if service.store.get(key) is None:
            tell_unknown(client, body)
            return
        client.views_open(trigger_id=trigger, view=blocks.reject_modal(key))

    return reject_button
