"""Confirm: the draft's labels were right."""

from __future__ import annotations

from typing import Any

from bot.delivery.slack.listeners.common import Malformed, ignore_malformed, tell_unknown, text_at
from bot.models import Feedback
from bot.service import TriageService


def make(service: TriageService) -> Any:
    def confirm_button(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        try:
            key, user = text_at(action, "value"), text_at(body, "user", "id")
        except Malformed as e:
            return ignore_malformed(ack, e)
        # Stored before the click is acknowledged: an ack means the verdict is durable.
        status = service.record_feedback(key, Feedback(action="confirm", user_id=user))
        ack()
        if status is None:
            tell_unknown(client, body)
        else:
            service.apply_feedback(key, status)

    return confirm_button
