"""Events API events."""

from __future__ import annotations

from slack_bolt import App

from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.events import app_home_opened


def register(app: App, backend: Backend) -> None:
    app_home_opened.register(app, backend)
