"""The app's Home tab: the same figures as `incibot report` (last 7 days), published when a user opens it."""

from __future__ import annotations

from datetime import timedelta
from logging import Logger
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.delivery.slack import blocks
from bot.delivery.slack.listeners.backend import Backend


def register(app: App, backend: Backend) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient, logger: Logger) -> None:
        user = event.get("user")
        if not isinstance(user, str) or event.get("tab", "home") != "home":
            logger.info("app_home_opened without a user or for another tab: ignored")
            return
        client.views_publish(user_id=user, view=blocks.home_view(backend.report(timedelta(days=7))))
