"""Local stand-ins for external services, for tests and benchmarks, on 127.0.0.1: a Slack Web API emulator as
strict as Slack (the manifest's scopes, channel membership, Block Kit, rate limits) that records every call (as
slack-bolt's own tests do), Slack's Socket Mode end (a WebSocket server), and an OpenAI-compatible chat endpoint
that records every request body, with injectable failures."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View


def _send_json(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: Any) -> None:
    data = json.dumps(body).encode()
    h.send_response(status)
    for k, v in headers.items():
        h.send_header(k, v)
    h.send_header("content-type", "application/json")
    h.send_header("content-length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


class _LocalServer:
    """An HTTP server on 127.0.0.1 in a daemon thread; subclasses answer each POST in `on_post`."""

    server: ThreadingHTTPServer

    def _serve(self) -> int:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                owner.on_post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def on_post(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()


MANIFEST = Path(__file__).resolve().parent.parent / "slack-manifest.yaml"


def manifest_scopes(path: Path = MANIFEST) -> set[str]:
    """The bot token scopes the app asks for in its manifest."""
    return set(yaml.safe_load(path.read_text())["oauth_config"]["scopes"]["bot"])


# Web API methods as Slack documents them (docs.slack.dev/reference/methods): the bot scope each needs ("history":
# by the channel's type, HISTORY_SCOPES; "list": by the types asked for, LIST_SCOPES) and its rate-limit tier in
# calls per minute (chat.postMessage: about 1 per second per channel, `post_rate`/`post_burst`). History and
# replies are Tier 3 for internal apps (1 per minute for commercially distributed apps outside the Marketplace).
METHODS: dict[str, tuple[str | None, int]] = {
    "auth.test": (None, 100),
    "chat.postMessage": ("chat:write", 0),
    "chat.postEphemeral": ("chat:write", 100),
    "chat.update": ("chat:write", 50),
    "conversations.history": ("history", 50),
    "conversations.replies": ("history", 50),
    "conversations.join": ("channels:join", 50),
    "conversations.list": ("list", 20),
    "views.open": (None, 100),
    "views.publish": (None, 100),
    "apps.connections.open": ("connections:write", 100),  # app-level token (Socket Mode)
    "files.getUploadURLExternal": ("files:write", 20),
    "files.completeUploadExternal": ("files:write", 20),
}
UPLOAD_PATH = "upload/v1/"  # where files.getUploadURLExternal sends the bytes (files.slack.com's, here local)
HISTORY_SCOPES = {False: "channels:history", True: "groups:history"}  # by channel.private
LIST_SCOPES = {"public_channel": "channels:read", "private_channel": "groups:read"}
MAX_TEXT = 40_000
MAX_BLOCKS = {"message": 50, "modal": 100, "home": 100}


@dataclass
class Channel:
    id: str
    name: str
    private: bool = False
    member: bool = False  # the bot is in it
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Bucket:
    """A token bucket: `rate` per second, up to `burst` at once."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = 0.0

    def take(self, now: float) -> float:
        """0 if a call may go now (and spends it), else the seconds until it may."""
        if self.tokens < 0:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class SlackRefusal(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body = {"ok": False, "error": error, **extra}


class SlackEmulator(_LocalServer):
    """The Slack Web API as strict as Slack: the app's bot scopes come from slack-manifest.yaml (or `scopes`),
    every method checks its scope (`missing_scope` with `needed`/`provided`), the token (`not_authed`,
    `invalid_auth`, `token_revoked`), channel ids where Slack takes no names (`channel_not_found`), the bot's
    membership (`not_in_channel`), Block Kit (`invalid_blocks`, slack_sdk's models and limits), text length
    (`msg_too_long`), message metadata (`invalid_metadata`) and, with `pacing` on, Slack's rate limits (HTTP 429
    with Retry-After: 1 post per second per channel with short bursts, the other methods by tier).

    The workspace: every public channel exists (an id "C..." or a name "#x", whose id is "C-x"), the bot in none
    of them; `add_channel` declares private ones ("G..." ids, or private=True) and memberships. Failures can be
    injected per call (`failures`), for the whole API (`down`) or for chat.* calls to some channels."""

    def __init__(
        self,
        scopes: set[str] | None = None,
        tokens: set[str] | None = None,
        app_tokens: set[str] | None = None,
    ) -> None:
        self.scopes = manifest_scopes() if scopes is None else set(scopes)
        self.tokens = tokens  # valid bot tokens; None: any "xoxb-..." token
        self.app_tokens = app_tokens  # valid app-level tokens (Socket Mode); None: any "xapp-..." token
        self.revoked: set[str] = set()  # tokens Slack answers `token_revoked`
        self.socket_url: str | None = None  # what apps.connections.open answers (SocketModeEmulator)
        self.calls: list[tuple[str, dict[str, Any]]] = []  # refused ones as "method!error" or "method!status"
        self.arrivals: list[float] = []  # time.monotonic() of each call (failed ones too), in order
        # method -> queued failures: (HTTP status, headers), or (0, {}) to drop the connection without an answer
        self.failures: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.down = False  # every call fails with 503 (Slack unavailable)
        self.failing_channels: set[str] = set()  # chat.* calls to these channels (names or ids) fail with 503
        # Answer chat.postMessage this late, after recording it: a crash can fall in between.
        self.delay_s = 0.0
        self.pacing = False  # Slack's rate limits (429 + Retry-After); off: as fast as the caller goes
        self.post_rate, self.post_burst = 1.0, 4  # chat.postMessage per channel: per second, burst
        self.channels: dict[str, Channel] = {}
        self.files: dict[
            str, dict[str, Any]
        ] = {}  # file id -> name, length, content (bytes once uploaded)...
        self._buckets: dict[str, _Bucket] = {}
        self._ts = time.time()
        self._lock = threading.RLock()
        self.port = self._serve()
        self.url = f"http://127.0.0.1:{self.port}/api/"

    @property
    def messages(self) -> dict[str, list[dict[str, Any]]]:
        """channel id -> posted messages, thread replies included, oldest first."""
        return {c.id: c.messages for c in self.channels.values() if c.messages}

    # ---- the workspace ---------------------------------------------------------------------------------------
    def add_channel(self, ref: str, *, private: bool = False, member: bool = False) -> Channel:
        """Declare a channel by id ("C...", "G...") or name ("#x"); a "G" id is private."""
        name = ref[1:] if ref.startswith("#") else ref.removeprefix("C-").removeprefix("G-").lower()
        cid = ref if not ref.startswith("#") else ("G-" if private else "C-") + name
        with self._lock:
            ch = self.channels[cid] = Channel(cid, name, private or cid.startswith("G"), member)
        return ch

    def channel_id(self, channel: str) -> str:
        """The id of a channel given by id or name; an unknown name "#x" is the public channel "C-x"."""
        with self._lock:
            ch = self._channel(channel)
        return ch.id if ch else channel

    def _channel(self, ref: str, ids_only: bool = False) -> Channel | None:
        """The channel `ref` names, None if Slack would not find it (a name where only ids are taken, an unknown
        private one)."""
        if ref.startswith("#") or ref[:1] not in ("C", "G"):
            if ids_only or not ref:
                return None
            name = ref.lstrip("#")
            found = next((c for c in self.channels.values() if c.name == name), None)
            return found or self.channels.setdefault("C-" + name, Channel("C-" + name, name))
        if ref in self.channels:
            return self.channels[ref]
        if ref.startswith("C"):  # every public channel exists
            return self.channels.setdefault(ref, Channel(ref, ref.removeprefix("C-").lower()))
        return None

    # ---- HTTP ------------------------------------------------------------------------------------------------
    def on_post(self, h: BaseHTTPRequestHandler) -> None:
        if h.path.lstrip("/").startswith(UPLOAD_PATH):
            return self._receive_upload(h)
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length).decode("utf-8") if length else ""
        if "json" in h.headers.get("content-type", ""):
            params = json.loads(raw) if raw else {}
        else:
            params = {k: v[0] for k, v in parse_qs(raw).items()}
        auth = h.headers.get("authorization") or ""
        token = (
            auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else params.pop("token", "")
        )
        status, headers, body = self.answer(h.path.removeprefix("/api/").strip("/"), params, token)
        if status == 0:  # the request arrived, its answer is lost: the caller cannot tell what happened
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        _send_json(h, status, headers, body)

    def answer(
        self, method: str, params: dict[str, Any], token: str = ""
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self.arrivals.append(time.monotonic())
            queued = self.failures.get(method)
            channel_down = method.startswith("chat.") and self.channel_id(str(params.get("channel", ""))) in {
                self.channel_id(c) for c in self.failing_channels
            }
            if queued or self.down or channel_down:
                status, headers = queued.pop(0) if queued else (503, {})
                self.calls.append((f"{method}!{status}", params))
                return (
                    status,
                    headers,
                    {"ok": False, "error": "ratelimited" if status == 429 else "internal_error"},
                )
            if method.startswith("respond/"):  # a response_url: no token, no Web API rules
                self.calls.append((method, params))
                return 200, {}, {"ok": True}
            try:
                if (wait := self._paced(method, params)) > 0:
                    self.calls.append((f"{method}!429", params))
                    return 429, {"Retry-After": str(math.ceil(wait))}, {"ok": False, "error": "ratelimited"}
                body = self._call(method, params, token)
            except SlackRefusal as e:
                self.calls.append((f"{method}!{e.body['error']}", params))
                return 200, {}, e.body
            self.calls.append((method, params))
        if method == "chat.postMessage":
            time.sleep(self.delay_s)
        # As Slack, every answer to a token names the token's scopes (what `incibot doctor` compares)
        return 200, {"x-oauth-scopes": ",".join(sorted(self.scopes))}, body

    def _paced(self, method: str, params: dict[str, Any]) -> float:
        if not self.pacing or method not in METHODS:
            return 0.0
        if method == "chat.postMessage":
            key, rate, burst = (
                "post " + self.channel_id(str(params.get("channel", ""))),
                self.post_rate,
                self.post_burst,
            )
        else:
            per_min = METHODS[method][1]
            key, rate, burst = method, per_min / 60, max(1, per_min // 6)  # sporadic bursts welcome
        bucket = self._buckets.setdefault(key, _Bucket(rate, burst))
        return bucket.take(time.monotonic())

    # ---- the methods ------------------------------------------------------------------------------------------
    def _call(self, method: str, params: dict[str, Any], token: str) -> dict[str, Any]:
        if method not in METHODS:
            raise SlackRefusal("unknown_method")
        self._authorize(method, token)
        if method == "apps.connections.open":
            if self.socket_url is None:
                raise SlackRefusal("internal_error")
            return {"ok": True, "url": self.socket_url}
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": "UBOT",
                "bot_id": "BBOT",
                "team_id": "T1",
                "url": "https://x.slack.com/",
            }
        if method.startswith("views."):
            return self._view(method, params)
        if method == "conversations.list":
            return self._list(params)
        if method == "files.getUploadURLExternal":
            return self._upload_url(params)
        if method == "files.completeUploadExternal":
            self._need("files:write")  # before the channel: Slack checks the token's scope first
            return self._complete_upload(params)
        scope = METHODS[method][0]
        ids_only = method not in ("chat.postMessage", "chat.postEphemeral")
        ch = self._channel(str(params.get("channel") or ""), ids_only=ids_only)
        if ch is None:
            raise SlackRefusal("channel_not_found")
        if scope == "history":
            self._need(HISTORY_SCOPES[ch.private])
        elif scope is not None:
            self._need(scope)
        if method in ("chat.postMessage", "chat.postEphemeral"):
            return self._post(method, ch, params)
        if method == "chat.update":
            return self._update(ch, params)
        if method == "conversations.join":
            if ch.private:
                raise SlackRefusal("method_not_supported_for_channel_type")
            already = ch.member
            ch.member = True
            warning = {
                "warning": "already_in_channel",
                "response_metadata": {"warnings": ["already_in_channel"]},
            }
            return {"ok": True, "channel": self._info(ch)} | (warning if already else {})
        if not ch.member:
            raise SlackRefusal("not_in_channel")
        return self._history(method, ch, params)

    def _authorize(self, method: str, token: str) -> None:
        if not token:
            raise SlackRefusal("not_authed")
        if token in self.revoked:
            raise SlackRefusal("token_revoked")
        app_token = method == "apps.connections.open"
        prefix, known = ("xapp-", self.app_tokens) if app_token else ("xoxb-", self.tokens)
        if not token.startswith(prefix):  # an app-level token for a bot method, or the other way round
            wrong_type = token.startswith(("xapp-", "xoxb-"))
            raise SlackRefusal("not_allowed_token_type" if wrong_type else "invalid_auth")
        if known is not None and token not in known:
            raise SlackRefusal("invalid_auth")

    def _need(self, *scopes: str) -> None:
        missing = [s for s in scopes if s not in self.scopes]
        if missing:
            raise SlackRefusal(
                "missing_scope", needed=",".join(missing), provided=",".join(sorted(self.scopes))
            )

    def _post(self, method: str, ch: Channel, params: dict[str, Any]) -> dict[str, Any]:
        if not ch.member:
            if ch.private:
                raise SlackRefusal(
                    "channel_not_found"
                )  # a private channel the bot is not in: it cannot see it
            if method == "chat.postMessage" and "chat:write.public" not in self.scopes:
                raise SlackRefusal("not_in_channel")
        text = params.get("text") or ""
        blocks = _json(params.get("blocks"))
        if not text and not blocks:
            raise SlackRefusal("no_text")
        _check_message(text, blocks)
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{time.time():.6f}"}
        metadata = _json(params.get("metadata"))
        if metadata is not None:
            _check_metadata(metadata)
        thread = params.get("thread_ts")
        fields = {"thread_ts": thread, "metadata": metadata}
        message = self._append(ch, text, blocks or [], {k: v for k, v in fields.items() if v})
        return {"ok": True, "channel": ch.id, "ts": message["ts"], "message": message}

    def _append(self, ch: Channel, text: str, blocks: list[Any], fields: dict[str, Any]) -> dict[str, Any]:
        self._ts = max(self._ts + 0.001, time.time())  # unique, and real time (lookups use it)
        message = {"type": "message", "user": "UBOT", "bot_id": "BBOT", "ts": f"{self._ts:.6f}", "text": text,
                   "blocks": blocks, **fields}  # fmt: skip
        ch.messages.append(message)
        return message

    def add_message(self, channel: str, text: str = "", **fields: Any) -> str:
        """A message the bot posted earlier (e.g. before a crash), with `thread_ts`, `metadata`...; its ts."""
        with self._lock:
            ch = self._channel(channel)
            assert ch is not None, channel
            return str(self._append(ch, text, [], fields)["ts"])

    def _update(self, ch: Channel, params: dict[str, Any]) -> dict[str, Any]:
        message = next((m for m in ch.messages if m["ts"] == params.get("ts")), None)
        if message is None:
            raise SlackRefusal("message_not_found")
        text, blocks = params.get("text") or "", _json(params.get("blocks"))
        _check_message(text, blocks)
        message.update(
            text=text or message["text"], blocks=blocks if blocks is not None else message["blocks"]
        )
        return {"ok": True, "channel": ch.id, "ts": message["ts"], "text": message["text"]}

    def _history(self, method: str, ch: Channel, params: dict[str, Any]) -> dict[str, Any]:
        """.history: the channel's top-level messages, newest first; .replies: a thread, its parent first, oldest
        first. Metadata only with include_all_metadata, as Slack does."""
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or "inf")
        if method == "conversations.replies":
            thread = params.get("ts")
            if not any(m["ts"] == thread and "thread_ts" not in m for m in ch.messages):
                raise SlackRefusal("thread_not_found")
            msgs = [m for m in ch.messages if m["ts"] == thread or m.get("thread_ts") == thread]
        else:
            msgs = [m for m in reversed(ch.messages) if "thread_ts" not in m]
        msgs = [m for m in msgs if oldest <= float(m["ts"]) <= latest]
        if str(params.get("include_all_metadata")).lower() not in ("1", "true"):
            msgs = [{k: v for k, v in m.items() if k != "metadata"} for m in msgs]
        limit = min(int(params.get("limit") or 100), 999)
        start = int(params.get("cursor") or 0)
        page = msgs[start : start + limit]
        more = start + limit < len(msgs)
        return {"ok": True, "messages": page, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}  # fmt: skip

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        types = str(params.get("types") or "public_channel").split(",")
        self._need(*[LIST_SCOPES[t] for t in types if t in LIST_SCOPES])
        shown = [c for c in self.channels.values() if (not c.private and "public_channel" in types)
                 or (c.private and c.member and "private_channel" in types)]  # fmt: skip
        limit = min(int(params.get("limit") or 100), 1000)
        start = int(params.get("cursor") or 0)
        more = start + limit < len(shown)
        return {"ok": True, "channels": [self._info(c) for c in shown[start : start + limit]],
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}  # fmt: skip

    @staticmethod
    def _info(ch: Channel) -> dict[str, Any]:
        return {"id": ch.id, "name": ch.name, "is_channel": True, "is_private": ch.private,
                "is_member": ch.member, "is_archived": False}  # fmt: skip

    def _view(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "views.open" and not params.get("trigger_id"):
            raise SlackRefusal("invalid_arguments")
        if method == "views.publish" and not params.get("user_id"):
            raise SlackRefusal("invalid_arguments")
        view = _json(params.get("view")) or {}
        try:
            View(**view).to_dict()  # slack_sdk's checks: type, title and button lengths, 1..100 blocks...
            _check_blocks(view.get("blocks") or [], MAX_BLOCKS.get(view.get("type", ""), 100))
        except (SlackObjectFormationError, TypeError, ValueError) as e:
            raise SlackRefusal("invalid_arguments", response_metadata={"messages": [str(e)]}) from e
        return {"ok": True, "view": {"id": "V" + uuid.uuid4().hex[:8].upper(), **view}}

    # ---- files: Slack's upload flow (files_upload_v2) ---------------------------------------------------------
    def _upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        """Step 1: a file id and a one-time URL for its bytes (`length` is what the upload must send)."""
        self._need("files:write")
        try:
            length = int(params.get("length") or 0)
        except ValueError:
            length = 0
        if not params.get("filename") or length <= 0:
            raise SlackRefusal("invalid_arguments")
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        self.files[file_id] = {"id": file_id, "name": params["filename"], "length": length, "content": None,
                               "alt_txt": params.get("alt_txt"), "shared": False}  # fmt: skip
        return {
            "ok": True,
            "file_id": file_id,
            "upload_url": f"http://127.0.0.1:{self.port}/{UPLOAD_PATH}{file_id}",
        }

    def _receive_upload(self, h: BaseHTTPRequestHandler) -> None:
        """Step 2: the bytes, POSTed to the URL step 1 gave (no token: the URL is the credential)."""
        data = h.rfile.read(int(h.headers.get("content-length") or 0))
        file_id = h.path.lstrip("/").removeprefix(UPLOAD_PATH)
        with self._lock:
            self.calls.append(("upload", {"file_id": file_id, "bytes": len(data)}))
            f = self.files.get(file_id)
            ok = f is not None and f["content"] is None and len(data) == f["length"]
            if ok and f is not None:
                f["content"] = data
        body = f"OK - {len(data)}".encode() if ok else b"upload rejected"
        h.send_response(200 if ok else 400)
        h.send_header("content-type", "text/plain")
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        """Step 3: the uploaded files shared in a channel (a thread with `thread_ts`), by channel id, as a member."""
        files = _json(params.get("files"))
        if not isinstance(files, list) or not files:
            raise SlackRefusal("invalid_arguments")
        found = [self.files.get(str(f.get("id"))) for f in files if isinstance(f, dict)]
        if len(found) != len(files) or any(f is None or f["content"] is None for f in found):
            raise SlackRefusal("file_not_found")  # never issued, or its bytes never arrived
        channel = str(params.get("channel_id") or "")
        if not channel:  # no channel: uploaded, shared nowhere
            return {"ok": True, "files": [{"id": f["id"]} for f in found if f]}
        ch = self._channel(channel, ids_only=True)
        if ch is None:
            raise SlackRefusal("channel_not_found")
        if not ch.member:
            raise SlackRefusal("not_in_channel")
        thread = params.get("thread_ts")
        if thread and not any(m["ts"] == thread and "thread_ts" not in m for m in ch.messages):
            raise SlackRefusal("invalid_thread_ts")
        shared = []
        for spec, f in zip(files, found, strict=True):
            assert f is not None
            f.update(shared=True, title=spec.get("title") or f["name"], channel=ch.id, thread_ts=thread)
            shared.append({"id": f["id"], "name": f["name"], "title": f["title"]})
        fields = {"thread_ts": thread, "files": shared, "upload": True}
        self._append(ch, params.get("initial_comment") or "", [], {k: v for k, v in fields.items() if v})
        return {"ok": True, "files": shared}

    # ---- for tests ------------------------------------------------------------------------------------------
    def of(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for m, p in self.calls if m == method]

    def refused(self) -> list[str]:
        """Calls Slack's rules refused ("method!error"), injected failures and 429s left out."""
        with self._lock:
            return [m for m, _ in self.calls if "!" in m and not m.split("!")[1].isdigit()]

    def wait_for(self, predicate: Any, timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting; calls so far: {[m for m, _ in self.calls]}")


def _json(value: Any) -> Any:
    """A JSON argument as slack_sdk sends it: an object in a JSON body, a string in a form."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as e:
            raise SlackRefusal("invalid_arguments") from e
    return value


def _check_message(text: str, blocks: Any) -> None:
    if len(text) > MAX_TEXT:
        raise SlackRefusal("msg_too_long")
    if blocks is not None:
        try:
            _check_blocks(blocks, MAX_BLOCKS["message"])
        except (SlackObjectFormationError, TypeError, ValueError) as e:
            raise SlackRefusal("invalid_blocks", errors=[str(e)]) from e


def _check_blocks(blocks: Any, most: int) -> None:
    """Block Kit as slack_sdk's models check it (each block's own limits, and its elements'), plus the count."""
    if not isinstance(blocks, list) or len(blocks) > most:
        raise ValueError(f"more than {most} blocks, or not a list")
    for b in blocks:
        parsed = Block.parse(b) if isinstance(b, dict) else None
        if parsed is None:
            raise ValueError(f"unknown block {str(b)[:100]}")
        parsed.to_dict()  # validates the block and everything in it


def _check_metadata(metadata: Any) -> None:
    if not (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and metadata["event_type"]
        and isinstance(metadata.get("event_payload", {}), dict)
    ):
        raise SlackRefusal("invalid_metadata")


class OpenAIEmulator(_LocalServer):
    """`POST /v1/chat/completions` as OpenAI answers it. Every raw request body is kept in `bodies`, so tests can
    prove what left the process. `reply(request) -> dict` gives the answer's arguments: returned as a tool call
    when the request offers tools, else as JSON content. `failures` queues HTTP errors; `down` drops connections."""

    def __init__(self, reply: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.reply = reply
        self.bodies: list[bytes] = []
        self.failures: list[tuple[int, dict[str, str]]] = []
        self.down = False
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self._serve()}/v1"

    def on_post(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("content-length") or 0))
        with self._lock:
            self.bodies.append(raw)
            if self.down:
                h.close_connection = True
                h.connection.shutdown(2)  # an endpoint that is gone: connection reset
                return
            failure = self.failures.pop(0) if self.failures else None
        time.sleep(self.delay_s)
        if failure is not None:
            status, headers = failure
            _send_json(
                h, status, headers, {"error": {"message": f"emulated {status}", "type": "server_error"}}
            )
        else:
            _send_json(h, 200, {}, self.completion(json.loads(raw)))

    def completion(self, request: dict[str, Any]) -> dict[str, Any]:
        args = self.reply(request)
        message: dict[str, Any] = {"role": "assistant", "content": json.dumps(args)}
        finish = "stop"
        if request.get("tools"):
            name = request["tools"][0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                ],
            }
            finish = "tool_calls"
        return {
            "id": "chatcmpl-emulated",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "emulated"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(b) for b in self.bodies]


class SocketModeEmulator:
    """Slack's end of Socket Mode on 127.0.0.1: a WebSocket server (ws://) whose URL the Slack emulator's
    apps.connections.open answers. A connecting app is greeted with `hello`; `send` delivers an envelope
    (`events_api`, `slash_commands`, `interactive`), with Slack's retry fields, and returns the app's
    acknowledgement's payload, failing if it does not come within Slack's 3 seconds."""

    ACK_S = 3.0

    def __init__(self, slack: SlackEmulator) -> None:
        from websockets.sync.server import serve

        self._cond = threading.Condition()
        self._conns: list[Any] = []
        self.acks: dict[
            str, tuple[float, dict[str, Any]]
        ] = {}  # envelope id -> (monotonic time, ack payload)
        self.server = serve(self._session, "127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/link/?ticket=emulated"
        slack.socket_url = self.url

    def _session(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        ws.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"},
                            "debug_info": {"host": "emulated", "approximate_connection_time": 3600}}))  # fmt: skip
        with self._cond:
            self._conns.append(ws)
            self._cond.notify_all()
        try:
            for raw in ws:
                msg = json.loads(raw)
                with self._cond:
                    self.acks[msg["envelope_id"]] = (time.monotonic(), msg.get("payload") or {})
                    self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                self._conns.remove(ws)

    def wait_connected(self, timeout: float = 120.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._conns, timeout):
                raise AssertionError(f"no Socket Mode connection within {timeout:.0f} s")

    def send(
        self, kind: str, payload: dict[str, Any], retry_attempt: int = 0, retry_reason: str = ""
    ) -> dict[str, Any]:
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, "retry_attempt": retry_attempt,
                    "retry_reason": retry_reason, "accepts_response_payload": kind != "events_api"}  # fmt: skip
        with self._cond:
            conn = self._conns[-1]
        t0 = time.monotonic()
        conn.send(json.dumps(envelope))
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self.acks, self.ACK_S):
                raise AssertionError(f"{kind} envelope not acknowledged within {self.ACK_S:.0f} s")
            at, ack = self.acks[envelope_id]
        assert at - t0 < self.ACK_S
        return ack

    def close(self) -> None:
        self.server.shutdown()
