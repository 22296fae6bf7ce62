"""The Reject modal was submitted: store why."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.common import submission_ids
from bot.models import Feedback


def register(app: App, backend: Backend) -> None:
    @app.view(blocks.REJECT_SUBMIT)
    def reject_submission(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        if (ids := submission_ids(ack, body, view)) is None:
            return
        key, user = ids
        reason = blocks.view_values(view).get("reason", "").strip()
        if not reason:
            ack(response_action="errors", errors={"reason": "Say why, so the next draft can be better"})
            return
        status = backend.record_feedback(key, Feedback(action="reject", user_id=user, reason=reason))
        ack()
        if status:
            backend.apply_feedback(key, status)
