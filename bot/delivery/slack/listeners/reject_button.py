"""Reject: ask why in a modal."""

from __future__ import annotations

from typing import Any

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.common import open_modal
from bot.service import TriageService


def make(service: TriageService) -> Any:
    def reject_button(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        open_modal(service, ack, body, action, client, lambda key, _row: blocks.reject_modal(key))

    return reject_button
