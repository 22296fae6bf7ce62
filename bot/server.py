"""The HTTP face: ticket webhooks and Slack's events/commands/interactivity on one port (Starlette, ASGI)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.intake.text import without_nul
from bot.intake.webhooks import WebhookError, parse
from bot.llm import llm_health
from bot.service import Backpressure, TriageService


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """What a sender puts in X-Incibot-Signature: v0=HMAC-SHA256(secret, "v0:<timestamp>:<body>")."""
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


def check_webhook_auth(settings: Settings, headers: Any, body: bytes, now: float | None = None) -> str | None:
    """None if the request is authentic, else why not. Without a configured secret or token, open (local use)."""
    secret, token = settings.webhook_secret, settings.webhook_token
    if secret is None and token is None:
        return None
    if token is not None and hmac.compare_digest(
        headers.get("authorization", ""), f"Bearer {token.get_secret_value()}"
    ):
        return None
    if secret is not None:
        ts, sig = headers.get("x-incibot-timestamp", ""), headers.get("x-incibot-signature", "")
        if not ts or not sig:
            return "missing X-Incibot-Timestamp or X-Incibot-Signature"
        try:
            age = abs((now or time.time()) - int(ts))
        except ValueError:
            return "bad X-Incibot-Timestamp"
        if age > settings.webhook_max_age_s:
            return "stale timestamp (possible replay)"
        if hmac.compare_digest(webhook_signature(secret.get_secret_value(), ts, body), sig):
            return None
        return "bad signature"
    return "bad or missing bearer token"


def slack_signature_ok(settings: Settings, headers: Any, body: bytes) -> bool:
    from slack_sdk.signature import SignatureVerifier

    if settings.slack_signing_secret is None:
        return False
    verifier = SignatureVerifier(settings.slack_signing_secret.get_secret_value())
    return verifier.is_valid_request(body, dict(headers))


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None if it is larger than `limit` (stops reading there)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_server(settings: Settings, service: TriageService, slack_app: App | None) -> Starlette:
    async def webhook(request: Request) -> Response:
        source = request.path_params["source"]
        body = await _read_body(request, settings.webhook_max_bytes)
        if body is None:
            return _error(413, f"body larger than {settings.webhook_max_bytes} bytes")
        if why := check_webhook_auth(settings, request.headers, body):
            return _error(401, why)
        ctype = request.headers.get("content-type", "")
        if "json" not in ctype:
            return _error(415, "send application/json")
        try:
            payload = without_nul(json.loads(body.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            return _error(400, f"body is not valid UTF-8 JSON: {type(e).__name__}")
        try:
            event = parse(source, payload)
        except WebhookError as e:
            return _error(e.status, str(e))
        if event.kind == "ignore":
            return JSONResponse({"ok": True, "status": "ignored", "reason": event.note}, status_code=202)
        # Answer 2xx only once the ticket is durably stored; a full outbox says when to come back.
        try:
            status = await run_in_threadpool(service.accept, event)
        except Backpressure as e:
            return JSONResponse(
                {"ok": False, "error": str(e)}, status_code=429, headers={"Retry-After": str(e.retry_after_s)}
            )
        return JSONResponse(
            {"ok": True, "status": status, "key": event.key, "kind": event.kind}, status_code=202
        )

    async def slack_events(request: Request) -> Response:
        if slack_app is None:
            return _error(404, "Slack HTTP endpoint is off (Socket Mode)")
        body = await _read_body(request, settings.webhook_max_bytes)
        if body is None:
            return _error(413, "body too large")
        try:
            bolt_request = to_bolt_request(request, body)
        except (UnicodeDecodeError, ValueError, AttributeError, TypeError) as e:
            # Bolt parses the body before it checks the signature: answer a forged request 401, a signed
            # malformed one 400 (Slack never sends those; a 5xx would make it retry).
            if not slack_signature_ok(settings, request.headers, body):
                return _error(401, "invalid Slack signature")
            return _error(400, f"malformed Slack request: {type(e).__name__}")
        bolt_response = await run_in_threadpool(slack_app.dispatch, bolt_request)
        return to_starlette_response(bolt_response)

    async def health(_: Request) -> Response:
        counts = await run_in_threadpool(service.store.counts)
        model = llm_health(service.triager.model)
        return JSONResponse(
            {
                "ok": True,
                "llm": model.model_dump(mode="json")
                if model
                else {"state": "remote" if service.triager.model else "off"},
                "outbox": service.backlog(),
                "llm_edits_waiting": service.to_refine.qsize(),
                "open_incidents": len(service.storms),
                "tickets": counts,
            }
        )

    return Starlette(
        routes=[
            Route("/webhooks/{source}", webhook, methods=["POST"]),
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


def create(settings: Settings, http_slack: bool = True) -> tuple[TriageService, App, Starlette]:
    """Wire the pipeline, the store, the Slack client and the HTTP server from settings."""
    from bot.demo import seed_if_empty
    from bot.history import HistoryStore
    from bot.pipeline import Triager
    from bot.slack.app import build_app, web_client
    from bot.store import Store

    if settings.local_threads is None:
        # Leave a core for webhooks, retrieval and first posts while the local LLM decodes.
        settings = settings.model_copy(update={"local_threads": max(1, (os.cpu_count() or 2) - 1)})
    history = HistoryStore(settings)
    seed_if_empty(history)
    service = TriageService(
        settings, web_client(settings), Triager.from_settings(settings, history), Store(settings.db_url)
    )
    slack_app = build_app(settings, service)
    return service, slack_app, build_server(settings, service, slack_app if http_slack else None)
