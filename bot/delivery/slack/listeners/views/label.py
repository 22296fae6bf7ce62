"""A past incident's Label modal (`/triage label`) was submitted: its labels written into the history, then the
classifier retrained, as a verdict does. Nothing is acknowledged as saved unless it reached the history."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.common import NOT_IN_HISTORY, Malformed, ignore_malformed, submission_ids
from bot.delivery.slack.listeners.views.form import read_labels
from bot.store.vectors import HistoryError


def register(app: App, backend: Backend) -> None:
    @app.view(blocks.LABEL_SUBMIT)
    def label_submission(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        if (ids := submission_ids(ack, body, view)) is None:
            return
        meta, user = ids
        incident_id = meta.removeprefix(blocks.HISTORY_PREFIX)
        if not meta.startswith(blocks.HISTORY_PREFIX) or not incident_id:
            return ignore_malformed(ack, Malformed("private_metadata names no history incident"))
        tax = backend.taxonomy
        form = read_labels(tax, view)
        if form.errors:
            ack(response_action="errors", errors=form.errors)
            return
        try:
            status = backend.label_history(incident_id, form.labels, user, form.fix)
        except HistoryError as e:
            # Unlike a verdict, there is no SQL record to keep it pending in: refused in the modal, which keeps
            # the answer, so the engineer can submit it again once the store answers.
            first = f"label_{next(iter(tax.fields))}"
            said = f"The history store is unavailable, nothing was saved: submit again shortly ({e})"
            ack(response_action="errors", errors={first: said[:300]})
            return
        if status is None:
            ack(response_action="update", view=blocks.notice_modal("Not in the history", NOT_IN_HISTORY))
            return
        ack(response_action="update", view=blocks.notice_modal("Labelled", status))
