"""The Reject modal was submitted: store why."""

from __future__ import annotations

from typing import Any

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.common import submission_ids
from bot.models import Feedback
from bot.service import TriageService


def make(service: TriageService) -> Any:
    def reject_submission(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        if (ids := submission_ids(ack, body, view)) is None:
            return
        key, user = ids
        reason = blocks.view_values(view).get("reason", "").strip()
        if not reason:
            ack(response_action="errors", errors={"reason": "Say why, so the next draft can be better"})
            return
        status = service.record_feedback(key, Feedback(action="reject", user_id=user, reason=reason))
        ack()
        if status:
            service.apply_feedback(key, status)

    return reject_submission
