"""Build the Bolt app and register every listener in one place."""

from __future__ import annotations

from slack_bolt import App
from slack_sdk import WebClient

from bot.config import Settings
from bot.service import TriageService
from bot.slack.listeners import register


def web_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(token=token, base_url=settings.slack_api_url, timeout=10)


def build_app(settings: Settings, service: TriageService) -> App:
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = App(
        client=service.client,
        signing_secret=secret,
        # Without a signing secret (Socket Mode) there is nothing to verify over HTTP.
        request_verification_enabled=secret is not None,
        token_verification_enabled=False,
        process_before_response=False,
    )
    register(app, service)
    return app
