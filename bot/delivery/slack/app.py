"""Build the Bolt app and register every listener in one place."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware.middleware_error_handler import MiddlewareErrorHandler
from slack_sdk import WebClient

from bot.config import Settings
from bot.delivery.slack.listeners import register
from bot.delivery.slack.listeners.backend import Backend
from bot.text import TooDeep, clean


def web_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(token=token, base_url=settings.slack_api_url, timeout=10)


def build_app(settings: Settings, client: WebClient, backend: Backend) -> App:
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = App(
        client=client,
        signing_secret=secret,
        # Without a signing secret (Socket Mode) there is nothing to verify over HTTP.
        request_verification_enabled=secret is not None,
        token_verification_enabled=False,
        process_before_response=False,
    )
    app.use(clean_request)
    app.use(once_per_event())
    register(app, backend)
    # Bolt answers 500 when a signed payload lacks what its matchers index (e.g. `"actions": []`); App.error()
    # cannot help (building its arguments indexes the same payload), so the handler object is replaced.
    app._middleware_error_handler = MalformedIsAClientError(app.logger)
    return app


def clean_request(req: BoltRequest, next: Callable[[], BoltResponse]) -> BoltResponse:
    """Every request's text made safe before any listener reads it (NUL, lone surrogates, bidi and zero-width
    controls: bot.text.clean), nesting bounded as for webhooks. Over HTTP and Socket Mode alike."""
    try:
        req.body = clean(req.body)
    except TooDeep as e:
        return BoltResponse(status=400, body=f"malformed Slack request: {e}")
    return next()


def once_per_event(size: int = 10_000) -> Callable[[BoltRequest, Callable[[], BoltResponse]], BoltResponse]:
    """Slack delivers an Events API event again (X-Slack-Retry-Num 1..3, X-Slack-Retry-Reason) when it did not
    see it acknowledged within 3 seconds, and Bolt runs the listeners for every delivery. This middleware
    acknowledges and drops a redelivery of an event this process already took (same `event_id`; the newest
    `size` ids are kept). Per process: a retry that reaches another replica runs there (the one event the bot
    takes, app_home_opened, then republishes the same Home tab)."""
    seen: OrderedDict[str, None] = OrderedDict()
    lock = threading.Lock()

    def middleware(req: BoltRequest, next: Callable[[], BoltResponse]) -> BoltResponse:
        event_id = req.body.get("event_id") if isinstance(req.body, dict) else None
        if isinstance(event_id, str):
            with lock:
                if event_id in seen:
                    return BoltResponse(status=200, body="")
                seen[event_id] = None
                if len(seen) > size:
                    seen.popitem(last=False)
        return next()

    return middleware


class MalformedIsAClientError(MiddlewareErrorHandler):
    """A signed payload of the wrong shape is the sender's error: 400. Anything else keeps Bolt's 500."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def handle(self, error: Exception, request: BoltRequest, response: BoltResponse | None) -> None:
        if response is not None and isinstance(
            error, (KeyError, TypeError, AttributeError, ValueError, IndexError)
        ):
            self.logger.warning("malformed Slack request: %s: %s", type(error).__name__, error)
            response.status, response.body = 400, "malformed Slack request"
            return
        self.logger.exception("Slack request failed: %s", error)
