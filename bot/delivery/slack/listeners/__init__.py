"""Slack listeners, one per file, grouped by kind as in Slack's Bolt starter template; each kind's `register`
takes the app and the bot's `Backend`."""

from __future__ import annotations

from slack_bolt import App

from bot.delivery.slack.listeners import actions, commands, events, views
from bot.delivery.slack.listeners.backend import Backend


def register(app: App, backend: Backend) -> None:
    commands.register(app, backend)
    actions.register(app, backend)
    views.register(app, backend)
    events.register(app, backend)
