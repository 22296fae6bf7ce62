"""Local stand-ins for external services, for tests and benchmarks, on 127.0.0.1: a Slack Web API emulator
that records every call (as slack-bolt's own tests do) and an OpenAI-compatible chat endpoint that records every
request body, both with injectable failures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


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


class SlackEmulator(_LocalServer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each call (failed ones too), in order
        # method -> queued failures: (HTTP status, headers), or (0, {}) to drop the connection without an answer
        self.failures: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.down = False  # every call fails with 503 (Slack unavailable)
        self.failing_channels: set[str] = set()  # chat.* calls to these channels (names or ids) fail with 503
        # Answer chat.postMessage this late, after recording it: a crash can fall in between.
        self.delay_s = 0.0
        self.messages: dict[str, list[dict[str, Any]]] = {}  # channel id -> posted messages, replies included
        self._ts = time.time()
        self._lock = threading.Lock()
        self.port = self._serve()
        self.url = f"http://127.0.0.1:{self.port}/api/"

    def on_post(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length).decode("utf-8") if length else ""
        if "json" in h.headers.get("content-type", ""):
            params = json.loads(raw) if raw else {}
        else:
            params = {k: v[0] for k, v in parse_qs(raw).items()}
        status, headers, body = self.answer(h.path.removeprefix("/api/").strip("/"), params)
        if status == 0:  # the request arrived, its answer is lost: the caller cannot tell what happened
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        _send_json(h, status, headers, body)

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
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
            self.calls.append((method, params))
            if method == "auth.test":
                return (
                    200,
                    {},
                    {
                        "ok": True,
                        "user_id": "UBOT",
                        "bot_id": "BBOT",
                        "team_id": "T1",
                        "url": "https://x.slack.com/",
                    },
                )
            if method == "chat.postMessage":
                self._ts = max(self._ts + 0.001, time.time())  # unique, and real time (lookups use it)
                channel = self.channel_id(params.get("channel", ""))
                message = {"ts": f"{self._ts:.6f}", "text": params.get("text", "")}
                for k in ("thread_ts", "metadata"):
                    if params.get(k):
                        value = params[k]
                        message[k] = (
                            json.loads(value) if isinstance(value, str) and k == "metadata" else value
                        )
                self.messages.setdefault(channel, []).append(message)
                answer = {"ok": True, "channel": channel, "ts": message["ts"]}
            else:
                answer = None
        if answer is not None:
            time.sleep(self.delay_s)
            return 200, {}, answer
        with self._lock:
            if method in ("conversations.history", "conversations.replies"):
                return 200, {}, self.history(method, params)
            if method == "chat.update":
                return 200, {}, {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
            return 200, {}, {"ok": True}

    @staticmethod
    def channel_id(channel: str) -> str:
        """Slack answers with channel ids; our names "#x" become ids "C-x" (either is accepted)."""
        return channel if channel.startswith("C-") else "C-" + channel.lstrip("#")

    def history(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Newest first, as Slack does; .replies gives a thread, .history the channel's top-level messages."""
        channel = self.channel_id(params.get("channel", ""))
        oldest = float(params.get("oldest") or 0)
        thread = params.get("ts")
        msgs = [
            m
            for m in self.messages.get(channel, [])
            if float(m["ts"]) >= oldest
            and (m.get("thread_ts") == thread if method == "conversations.replies" else "thread_ts" not in m)
        ]
        limit = int(params.get("limit") or 100)
        start = int(params.get("cursor") or 0)
        page = list(reversed(msgs))[start : start + limit]
        more = start + limit < len(msgs)
        return {"ok": True, "channel": channel, "messages": page, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}  # fmt: skip

    def of(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for m, p in self.calls if m == method]

    def wait_for(self, predicate: Any, timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting; calls so far: {[m for m, _ in self.calls]}")


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
