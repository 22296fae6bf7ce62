"""The app's Home tab: the same figures as `incibot report` (last 7 days), published when a user opens it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.delivery.slack import blocks
from bot.service import TriageService


def make(service: TriageService) -> Any:
    def home_opened(event: dict[str, Any], client: Any, logger: Any) -> None:
        user = event.get("user")
        if not isinstance(user, str) or event.get("tab", "home") != "home":
            logger.info("app_home_opened without a user or for another tab: ignored")
            return
        client.views_publish(user_id=user, view=blocks.home_view(service.report(timedelta(days=7))))

    return home_opened
