"""Slash commands."""

from __future__ import annotations

from slack_bolt import App

from bot.delivery.slack.listeners.backend import Backend
from bot.delivery.slack.listeners.commands import triage


def register(app: App, backend: Backend) -> None:
    triage.register(app, backend)
