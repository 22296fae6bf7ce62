"""The buttons under every draft, and beside each past incident of `/triage label`."""

from __future__ import annotations

from slack_bolt import App

from bot.delivery.slack.listeners.actions import confirm, correct, label, reject
from bot.delivery.slack.listeners.backend import Backend


def register(app: App, backend: Backend) -> None:
    confirm.register(app, backend)
    correct.register(app, backend)
    label.register(app, backend)
    reject.register(app, backend)
