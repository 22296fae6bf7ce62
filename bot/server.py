"""The HTTP face: ticket webhooks and Slack's events/commands/interactivity on one port (Starlette, ASGI)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from functools import partial
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.intake.auth import HideUrlTokens, authorization, check_webhook_auth, webhook_signature
from bot.intake.changes import Ignored, accepted_auth, parse_change
from bot.intake.receiver import Backpressure
from bot.intake.senders import WebhookError, parse
from bot.service import TriageService
from bot.text import MAX_JSON_DEPTH, TooDeep, clean
from bot.triage.llm import llm_health
from bot.watch.metrics import CONTENT_TYPE

__all__ = ["build_server", "check_webhook_auth", "create", "database_down", "webhook_signature"]

log = logging.getLogger(__name__)
# The database is unreachable: the sender is told to come back this many seconds later (a restart or failover).
DB_RETRY_AFTER_S = 5


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def database_down(e: BaseException) -> bool:
    """True if `e` says the database cannot be reached (refused, dropped, shutting down, starting up), as opposed
    to a bug or a constraint: the request can succeed later, unchanged."""
    if isinstance(e, OperationalError | InterfaceError):
        return True
    return isinstance(e, DBAPIError) and e.connection_invalidated


def _database_unavailable(e: BaseException, what: str) -> JSONResponse:
    log.warning("database unavailable (%s): %s", what, str(e).splitlines()[0] if str(e) else type(e).__name__)
    return JSONResponse(
        {"ok": False, "error": f"database unavailable, {what}; retry later", "reason": type(e).__name__},
        status_code=503,
        headers={"Retry-After": str(DB_RETRY_AFTER_S)},
    )


SLACK_MAX_SKEW_S = 300  # Slack's own limit for X-Slack-Request-Timestamp


def slack_signature_ok(settings: Settings, headers: Any, body: bytes) -> bool:
    """Slack's v0 signature over the raw bytes (slack_sdk's verifier decodes the body first, which fails on bytes
    that are not UTF-8 before anything is authenticated)."""
    if settings.slack_signing_secret is None:
        return False
    ts, sig = headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > SLACK_MAX_SKEW_S:
        return False
    secret = settings.slack_signing_secret.get_secret_value().encode()
    expected = "v0=" + hmac.new(secret, b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig)


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


def _json_payload(request: Request, body: bytes) -> Any:
    """A webhook's body as cleaned JSON, or the answer to give: 415 when not sent as JSON, 400 when unreadable or
    nested too deep."""
    if "json" not in request.headers.get("content-type", ""):
        return _error(415, "send application/json")
    try:
        return clean(json.loads(body.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        return _error(400, f"body is not valid UTF-8 JSON: {type(e).__name__}")
    except TooDeep:
        return _error(400, f"body is nested deeper than {MAX_JSON_DEPTH} levels")


def build_server(settings: Settings, service: TriageService, slack_app: App | None) -> Starlette:
    async def webhook(request: Request) -> Response:
        source = request.path_params["source"]
        body = await _read_body(request, settings.webhook_max_bytes)
        if body is None:
            return _error(413, f"body larger than {settings.webhook_max_bytes} bytes")
        # A sender that can only be given a URL (Statuspage) proves itself with a token in it.
        url_token = request.path_params.get("token") or request.query_params.get("token")
        if why := check_webhook_auth(settings, source, request.headers, body, url_token):
            return _error(401, why)
        payload = _json_payload(request, body)
        if isinstance(payload, Response):
            return payload
        try:
            event = parse(source, payload, settings)
        except WebhookError as e:
            return _error(e.status, str(e))
        if event.kind == "ignore":
            return JSONResponse({"ok": True, "status": "ignored", "reason": event.note}, status_code=202)
        # Answer 2xx only once the ticket is durably stored; a full outbox says when to come back.
        try:
            receipt = await run_in_threadpool(service.receive, event)
        except Backpressure as e:
            return JSONResponse(
                {"ok": False, "error": str(e)}, status_code=429, headers={"Retry-After": str(e.retry_after_s)}
            )
        except DBAPIError as e:
            if not database_down(e):
                raise
            return _database_unavailable(e, "the ticket was not stored")
        answer = {"ok": True, "status": receipt.status, "key": receipt.key, "kind": event.kind}
        return JSONResponse(answer | ({"reason": receipt.reason} if receipt.reason else {}), status_code=202)

    async def change_webhook(request: Request) -> Response:
        """A change event (README: "Connecting change sources"): 202 accepted (stored), 200 duplicate or ignored."""
        name = request.path_params.get("sender", "change")
        body = await _read_body(request, settings.webhook_max_bytes)
        if body is None:
            return _error(413, f"body larger than {settings.webhook_max_bytes} bytes")
        allowed = accepted_auth(settings, name)
        if why := check_webhook_auth(settings, name, request.headers, body, allowed=allowed):
            return _error(401, why)
        payload = _json_payload(request, body)
        if isinstance(payload, Response):
            return payload
        try:
            change = parse_change(name, payload, request.headers, settings)
        except WebhookError as e:
            return _error(e.status, str(e))
        if isinstance(change, Ignored):
            return JSONResponse({"ok": True, "status": "ignored", "reason": change.reason})
        try:
            receipt = await run_in_threadpool(service.receive_change, change)
        except DBAPIError as e:
            if not database_down(e):
                raise
            return _database_unavailable(e, "the change was not stored")
        answer = {"ok": True, **receipt.model_dump()}
        if not receipt.mapped:
            answer["reason"] = (f"no change_service_map entry for {change.service!r}"
                                f"{f' or {change.service}@{change.environment}' if change.environment else ''}; "
                                f"stored under that name")  # fmt: skip
        return JSONResponse(answer, status_code=202 if receipt.status == "accepted" else 200)

    async def slack_events(request: Request) -> Response:
        if slack_app is None:
            return _error(404, "Slack HTTP endpoint is off (Socket Mode)")
        body = await _read_body(request, settings.webhook_max_bytes)
        if body is None:
            return _error(413, "body too large")
        # The signature first, on the bytes as sent: nothing unauthenticated is decoded or parsed.
        if settings.slack_signing_secret is not None and not slack_signature_ok(
            settings, request.headers, body
        ):
            return _error(401, "invalid Slack signature")
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "malformed Slack request: the body is not UTF-8")
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

    def queue_state() -> dict[str, Any]:
        return {
            "outbox": service.backlog(),  # waiting to be posted, on every replica
            "llm_edits_waiting": service.queue.edits_waiting(),
            "open_incidents": service.storms.count(),
            "tickets": service.store.counts(),
        }

    def ops_allowed(request: Request) -> bool:
        """Operators only: the configured ops token as a Bearer token (none configured: nobody)."""
        if settings.ops_token is None:
            return False
        given = authorization(request.headers, "bearer")
        return given is not None and hmac.compare_digest(
            given.encode(), settings.ops_token.get_secret_value().encode()
        )

    async def health(request: Request) -> Response:
        try:
            state = await run_in_threadpool(queue_state)
        except DBAPIError as e:
            if not database_down(e):
                raise
            return _database_unavailable(e, "not ready")
        if not ops_allowed(request):  # load balancers and probes need only this
            return JSONResponse({"ok": True, "status": "ready"})
        model = llm_health(service.triager.model)
        llm = (
            model.model_dump(mode="json")
            if model
            else {"state": "remote" if service.triager.model else "off"}
        )
        return JSONResponse({"ok": True, "status": "ready", "llm": llm, **state})

    async def metrics(request: Request) -> Response:
        if not ops_allowed(request):
            return _error(401, "send Authorization: Bearer <INCIBOT_OPS_TOKEN> (unset: /metrics is off)")
        # Rendered in a worker thread: fleet-wide figures are database reads, never the posting path's locks.
        body = await run_in_threadpool(service.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HideUrlTokens) for f in access_log.filters):
        access_log.addFilter(HideUrlTokens())
    return Starlette(
        routes=[
            Route("/webhooks/change", change_webhook, methods=["POST"]),  # before /webhooks/{source}/{token}
            Route("/webhooks/change/{sender}", change_webhook, methods=["POST"]),
            Route("/webhooks/{source}", webhook, methods=["POST"]),
            Route("/webhooks/{source}/{token}", webhook, methods=["POST"]),
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


def create(settings: Settings, http_slack: bool = True) -> tuple[TriageService, App, Starlette]:
    """Wire the pipeline, the store, the Slack client and the HTTP server from settings."""
    from bot.delivery.slack.app import build_app, web_client
    from bot.store.demo import seed_if_empty
    from bot.store.factory import open_history, open_sql
    from bot.triage.pipeline import Triager
    from bot.triage.trainer import AGREEMENT_WINDOW

    if settings.local_threads is None:
        # Leave a core for webhooks, retrieval and first posts while the local LLM decodes.
        settings = settings.model_copy(update={"local_threads": max(1, (os.cpu_count() or 2) - 1)})
    # Store and history are built here, once (which backends: bot/store/factory.py).
    store, history = open_sql(settings), open_history(settings)
    seed_if_empty(history, store.engine)  # replicas starting together import the demo history once
    verdicts = partial(
        store.watch.verdicts, limit=AGREEMENT_WINDOW
    )  # the LLM's agreement, shared by replicas
    triager = Triager.from_settings(settings, history, verdicts)
    service = TriageService(settings, web_client(settings), triager, store)
    slack_app = build_app(settings, service.client, service)
    return service, slack_app, build_server(settings, service, slack_app if http_slack else None)
