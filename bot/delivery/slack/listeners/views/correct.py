"""The Correct modal was submitted: store the engineer's labels and fix, then teach the history."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.common import submission_ids
from bot.delivery.slack.listeners.views.form import read_labels
from bot.models import Feedback


def register(app: App, backend: Backend) -> None:
    @app.view(blocks.CORRECT_SUBMIT)
    def correct_submission(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        if (ids := submission_ids(ack, body, view)) is None:
            return
        key, user = ids
        form = read_labels(backend.taxonomy, view)
        if form.errors:
            ack(response_action="errors", errors=form.errors)
            return
        status = backend.record_feedback(
            key, Feedback(action="correct", user_id=user, labels=form.labels, fix=form.fix)
        )
        ack()
        if status:
            backend.apply_feedback(key, status)
