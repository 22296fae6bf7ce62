"""Modal submissions."""

from __future__ import annotations

from slack_bolt import App

from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.views import correct, label, reject


def register(app: App, backend: Backend) -> None:
    correct.register(app, backend)
    label.register(app, backend)
    reject.register(app, backend)
