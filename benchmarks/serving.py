"""Serving benchmarks over HTTP on 127.0.0.1: webhook -> first Slack post -> LLM edit, a burst of tickets, and
the serving process's peak memory. The bot runs as a real `incibot serve` subprocess; Slack is the emulator."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks.core import lat, scaled_history
from bot.emulators import SlackEmulator
from bot.server import webhook_signature

SECRET = "bench-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """`incibot serve` in a subprocess, pointed at the emulator."""

    def __init__(self, data_dir: Path, collection: str, emu: SlackEmulator, llm: str) -> None:
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("INCIBOT_")}
        env.update({
            "INCIBOT_DATA_DIR": str(data_dir), "INCIBOT_COLLECTION": collection, "INCIBOT_SEED_DEMO_HISTORY": "false",
            "INCIBOT_LLM_BACKEND": llm, "INCIBOT_SLACK_BOT_TOKEN": "xoxb-bench", "INCIBOT_SLACK_SIGNING_SECRET": "s",
            "INCIBOT_SLACK_API_URL": emu.url, "INCIBOT_WEBHOOK_SECRET": SECRET, "INCIBOT_PORT": str(self.port),
            "INCIBOT_DATABASE_URL": f"sqlite:///{data_dir / f'bench-{self.port}.db'}",
        })  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"], env=env, stderr=subprocess.PIPE, text=True
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not start in 120 s")

    def send(self, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        ts = str(int(time.time()))
        headers = {"content-type": "application/json", "x-incibot-timestamp": ts,
                   "x-incibot-signature": webhook_signature(SECRET, ts, body)}  # fmt: skip
        return self.http.post("/webhooks/generic", content=body, headers=headers)

    def stop(self) -> float:
        rss = peak_rss_mb(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return rss


def _first_post_times(emu: SlackEmulator) -> dict[str, float]:
    """ticket key -> arrival time of its chat.postMessage at the emulator."""
    out: dict[str, float] = {}
    for (method, params), t in zip(list(emu.calls), list(emu.arrivals), strict=False):
        if method == "chat.postMessage":
            for el in (params.get("blocks") or [])[-1:]:
                for b in el.get("elements", [])[:1]:
                    out.setdefault(b.get("value", ""), t)
    return out


def _wait(predicate: Any, timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.01)
    raise TimeoutError("the bot did not answer in time")


def bench_end_to_end(data_dir: Path, collection: str, n: int) -> dict[str, Any]:
    emu = SlackEmulator()
    server = Server(data_dir, collection, emu, llm="local")
    try:
        first, edit = [], []
        for i, inc in enumerate(scaled_history(n + 7)[7:]):
            key = f"generic:e2e-{i}-{time.time_ns()}"
            t0 = time.monotonic()
            server.send({"id": key.removeprefix("generic:"), "title": inc.title, "text": inc.text})
            first.append(_wait(lambda k=key: _first_post_times(emu).get(k)) - t0)
            # The LLM edit is the chat.update whose buttons carry this ticket's key.
            _wait(lambda k=key: [u for u in emu.of("chat.update") if k in json.dumps(u.get("blocks"))])
            edit.append(time.monotonic() - t0)
        return {"webhook_to_first_post_s": lat(first), "webhook_to_llm_edit_s": lat(edit),
                "serving_peak_rss_mb": server.stop()}  # fmt: skip
    finally:
        if server.proc.poll() is None:
            server.stop()
        emu.close()


def bench_burst(data_dir: Path, collection: str, n: int, seconds: float) -> dict[str, Any]:
    """n tickets spread over `seconds`, first posts only (LLM off: its queue would take hours to drain)."""
    emu = SlackEmulator()
    server = Server(data_dir, collection, emu, llm="none")
    incidents = scaled_history(n)
    sent: dict[str, float] = {}
    accepted: set[str] = set()

    def fire(i: int) -> None:
        key = f"burst-{i}"
        target = start + i * seconds / n
        time.sleep(max(0.0, target - time.monotonic()))
        t = time.monotonic()
        r = server.send({"id": key, "title": incidents[i].title, "text": incidents[i].text})
        if r.status_code == 202:
            sent[f"generic:{key}"] = t
            accepted.add(f"generic:{key}")

    try:
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(fire, range(n)))
        send_done = time.monotonic()
        deadline = send_done + 300
        while time.monotonic() < deadline and len(set(_first_post_times(emu)) & accepted) < len(accepted):
            time.sleep(0.2)
        posted = _first_post_times(emu)
        all_posts = [
            b.get("value") for m, p in emu.calls if m == "chat.postMessage"
            for el in (p.get("blocks") or [])[-1:] for b in el.get("elements", [])[:1]
        ]  # fmt: skip
        delays = [posted[k] - sent[k] for k in accepted if k in posted]
        done = max(posted.values()) if posted else send_done
        return {
            "tickets": n,
            "over_s": seconds,
            "accepted": len(accepted),
            "posted": len(set(posted) & accepted),
            "lost": len(accepted - set(posted)),
            "duplicated": len(all_posts) - len(set(all_posts)),
            "throughput_per_s": len(posted) / max(1e-9, done - start),
            "queue_delay_s": lat(delays),
            "peak_rss_mb": server.stop(),
        }
    finally:
        if server.proc.poll() is None:
            server.stop()
        emu.close()
