"""The Correct modal was submitted: store the engineer's labels and fix, then teach the history."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.common import submission_ids
from bot.models import Feedback
from bot.taxonomy import MITIGATION
from bot.triage.mitigation import MitigationError, check_action


def register(app: App, backend: Backend) -> None:
    @app.view(blocks.CORRECT_SUBMIT)
    def correct_submission(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        if (ids := submission_ids(ack, body, view)) is None:
            return
        key, user = ids
        values = blocks.view_values(view)
        tax = backend.taxonomy
        labels = {
            f: [values[f"label_{f}"]] for f in tax.fields if tax.is_valid(f, values.get(f"label_{f}", ""))
        }
        errors = {f"label_{f}": "Choose a value" for f in tax.fields if f not in labels}
        if raw := values.get(MITIGATION):
            # The select offers only the vocabulary, but a modal opened before a vocabulary edit (or a forged
            # payload) can send another value: said in the modal, which keeps everything typed in it.
            try:
                labels[MITIGATION] = [check_action(tax, raw)]
            except MitigationError as e:
                errors[MITIGATION] = str(e)[:300]
        if errors:
            ack(response_action="errors", errors=errors)
            return
        status = backend.record_feedback(
            key, Feedback(action="correct", user_id=user, labels=labels, fix=values.get("fix") or None)
        )
        ack()
        if status:
            backend.apply_feedback(key, status)
