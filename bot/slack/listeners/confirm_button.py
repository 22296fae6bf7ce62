"""Confirm: the draft's labels were right."""

from __future__ import annotations

from typing import Any

from bot.models import Feedback
from bot.service import TriageService
from bot.slack.listeners.common import tell_unknown


def make(service: TriageService) -> Any:
    def confirm_button(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        # Stored before the click is acknowledged: an ack means the verdict is durable.
        status = service.record_feedback(
            action["value"], Feedback(action="confirm", user_id=body["user"]["id"])
        )
        ack()
        if status is None:
            tell_unknown(client, body)
        else:
            service.apply_feedback(action["value"], status)

    return confirm_button
