"""Local stand-ins for external services, for tests and benchmarks: a Slack Web API emulator on 127.0.0.1
that records every call (as slack-bolt's own tests do), with injectable failures."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class SlackEmulator:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each call (failed ones too), in order
        self.failures: dict[str, list[tuple[int, dict[str, str]]]] = {}  # method -> queued HTTP failures
        self._ts = 1_700_000_000.0
        self._lock = threading.Lock()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                ctype = self.headers.get("content-type", "")
                if "json" in ctype:
                    params = json.loads(raw) if raw else {}
                else:
                    params = {k: v[0] for k, v in parse_qs(raw).items()}
                method = self.path.removeprefix("/api/").strip("/")
                status, headers, body = emulator.answer(method, params)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                data = json.dumps(body).encode()
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self.arrivals.append(time.monotonic())
            queued = self.failures.get(method)
            if queued:
                status, headers = queued.pop(0)
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
                self._ts += 1
                channel = params.get("channel", "")
                # Slack answers with the channel id; our names "#x" become ids "C-x".
                return 200, {}, {"ok": True, "channel": "C-" + channel.lstrip("#"), "ts": f"{self._ts:.6f}"}
            if method == "chat.update":
                return 200, {}, {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
            return 200, {}, {"ok": True}

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
