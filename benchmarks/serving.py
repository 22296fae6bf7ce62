"""Serving benchmarks over HTTP on 127.0.0.1: webhook -> first Slack post -> LLM edit, a burst of tickets, and
the serving process's peak memory. The bot runs as a real `incibot serve` subprocess; Slack is the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks.core import lat, scaled_history
from bot.net import free_port
from bot.server import webhook_signature
from testkit.emulators import SlackEmulator

SECRET = "bench-secret"
OPS_TOKEN = "bench-ops-token"  # /metrics and /healthz details


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout this module runs from


class Server:
    """`incibot serve` in a subprocess, pointed at the emulator. A server started again with the same `db` (a
    SQLite file) or `database_url` resumes the first one's tickets (the kill tests). Several servers given the same
    `database_url`, `chroma` (host, port) and `collection` are replicas of one bot. `wait=False` returns at once
    (call `wait_ready`): replicas starting together."""

    def __init__(
        self,
        data_dir: Path,
        collection: str,
        emu: SlackEmulator,
        llm: str,
        db: Path | None = None,
        env_extra: dict[str, str] | None = None,
        database_url: str | None = None,
        chroma: tuple[str, int] | None = None,
        wait: bool = True,
    ) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("INCIBOT_")}
        # This checkout's code, whatever the caller's working directory or PYTHONPATH.
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        env.update({
            "INCIBOT_DATA_DIR": str(data_dir), "INCIBOT_COLLECTION": collection, "INCIBOT_SEED_DEMO_HISTORY": "false",
            "INCIBOT_LLM_BACKEND": llm, "INCIBOT_SLACK_BOT_TOKEN": "xoxb-bench", "INCIBOT_SLACK_SIGNING_SECRET": "s",
            "INCIBOT_SLACK_API_URL": emu.url, "INCIBOT_WEBHOOK_SECRET": SECRET, "INCIBOT_PORT": str(self.port),
            "INCIBOT_OPS_TOKEN": OPS_TOKEN,
            "INCIBOT_DATABASE_URL": database_url or f"sqlite:///{db or data_dir / f'bench-{self.port}.db'}",
        })  # fmt: skip
        if chroma is not None:
            env.update({"INCIBOT_CHROMA_HOST": chroma[0], "INCIBOT_CHROMA_PORT": str(chroma[1])})
        env.update(env_extra or {})
        self.log = data_dir / f"serve-{self.port}.log"
        with self.log.open("w") as log:  # a file, not a pipe: a chatty server must never block on stderr
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve"], env=env, stderr=log, cwd=REPO_ROOT
            )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            timeout=30,
            headers={"Authorization": f"Bearer {OPS_TOKEN}"},
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not start in {timeout:.0f} s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.kill()
        self.proc.wait(timeout=30)

    def send(self, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        ts = str(int(time.time()))
        headers = {"content-type": "application/json", "x-incibot-timestamp": ts,
                   "x-incibot-signature": webhook_signature(SECRET, ts, body)}  # fmt: skip
        return self.http.post("/webhooks/generic", content=body, headers=headers)

    def model_server_rss_mb(self) -> float | None:
        """Peak RSS of the bundled model's server process (None with a remote LLM or none)."""
        pid = self.http.get("/healthz").json().get("llm", {}).get("pid")
        return peak_rss_mb(pid) if pid else None

    def stop(self) -> float:
        if self.proc.poll() is not None:  # killed, or exited on its own
            return 0.0
        rss = peak_rss_mb(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return rss


def deliveries(emu: SlackEmulator) -> dict[str, list[tuple[float, str]]]:
    """ticket key -> (arrival time at the emulator, "post" or "thread") of every message that carried it: its
    own post, or a thread reply listing it under a storm. Exactly one entry per ticket means exactly once."""
    out: dict[str, list[tuple[float, str]]] = {}
    for (method, params), t in zip(list(emu.calls), list(emu.arrivals), strict=False):
        if method != "chat.postMessage":
            continue
        meta = params.get("metadata") or {}
        payload = meta.get("event_payload") or {}
        for key in [payload["key"]] if "key" in payload else payload.get("keys", []):
            out.setdefault(key, []).append((t, "thread" if params.get("thread_ts") else "post"))
    return out


def _first_post_times(emu: SlackEmulator) -> dict[str, float]:
    return {k: v[0][0] for k, v in deliveries(emu).items()}


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
        model_rss = server.model_server_rss_mb()
        return {"webhook_to_first_post_s": lat(first), "webhook_to_llm_edit_s": lat(edit),
                "serving_peak_rss_mb": server.stop(), "model_server_peak_rss_mb": model_rss}  # fmt: skip
    finally:
        if server.proc.poll() is None:
            server.stop()
        emu.close()


STORM_ALERTS = [
    ("HighErrorRate", "5xx ratio {v}% on chat completions"), ("GPUMemoryPressure", "HBM usage {v}% on node gpu-{n}"),
    ("InferenceLatencyP99", "p99 latency {v} s for streaming requests"), ("TokenThroughputDrop", "tokens/s down {v}%"),
    ("SafetyFilterSpike", "{v}% of prompts blocked by the safety classifier"),
]  # fmt: skip
STORM_SCOPE = [("openai", "gpt-4o", "eastus"), ("openai", "o3-mini", "westeurope"), ("anthropic", "claude-3.5", "us-east-1"),
               ("google", "gemini-2.0", "asia-southeast1")]  # fmt: skip


def storm_tickets(n: int, noise_share: float = 0.1, seed: int = 5) -> list[dict[str, Any]]:
    """n webhook payloads: most are repeated pages of 20 underlying incidents (an alert x a model/region, each
    firing again and again with other values), the rest distinct incidents from the demo history."""
    import random

    rng = random.Random(seed)
    noise = scaled_history(int(n * noise_share))
    out: list[dict[str, Any]] = []
    for i in range(n):
        if i % int(1 / noise_share) == 0 and noise:
            inc = noise.pop()
            out.append({"id": f"storm-{i}", "title": inc.title, "text": inc.text, "service": inc.service})
            continue
        alert, what = STORM_ALERTS[rng.randrange(len(STORM_ALERTS))]
        service, model, region = STORM_SCOPE[rng.randrange(len(STORM_SCOPE))]
        detail = what.format(v=rng.randint(5, 95), n=rng.randint(1, 64))
        out.append({"id": f"storm-{i}", "service": service,
                    "title": f"[FIRING] {alert} {model} {region}", "text": f"{alert}: {detail} ({model}, {region})"})  # fmt: skip
    return out


def burst(
    servers: list[Server], tickets: list[dict[str, Any]], seconds: float
) -> tuple[float, dict[str, float], list[int]]:
    """Send the tickets evenly over `seconds`, round-robin over the servers, 16 at a time: (when it started, key ->
    when it was accepted, the status codes of those refused; 0 for a dropped connection)."""
    sent: dict[str, float] = {}
    refused: list[int] = []

    def fire(i: int) -> None:
        time.sleep(max(0.0, start + i * seconds / len(tickets) - time.monotonic()))
        t = time.monotonic()
        try:
            r = servers[i % len(servers)].send(tickets[i])
        except httpx.TransportError:
            refused.append(0)
            return
        if r.status_code == 202:
            sent[f"generic:{tickets[i]['id']}"] = t
        else:
            refused.append(r.status_code)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(fire, range(len(tickets))))
    return start, sent, refused


def tally(
    emu: SlackEmulator,
    got: dict[str, list[tuple[float, str]]],
    sent: dict[str, float],
    refused: list[int],
    seconds: float,
) -> dict[str, Any]:
    """What a burst came to in Slack: accepted, refused, lost, doubled, top-level posts and thread replies."""
    posts = emu.of("chat.postMessage")
    return {
        "tickets": len(sent) + len(refused), "over_s": seconds, "accepted": len(sent), "refused": len(refused),
        "refused_status": dict(Counter(refused)),  # HTTP status per refusal (0: the connection failed)
        "lost": len(set(sent) - set(got)), "duplicated": sum(len(v) - 1 for v in got.values()),
        "top_level_posts": len([p for p in posts if not p.get("thread_ts")]),
        "thread_replies": len([p for p in posts if p.get("thread_ts")]),
    }  # fmt: skip


def bench_storm(
    data_dir: Path, collection: str, n: int, seconds: float, llm: str = "none", channels: int = 4
) -> dict[str, Any]:
    """n tickets over `seconds` over HTTP, most of them repeats of a few incidents: what reaches Slack, how fast,
    whether anything is lost or doubled, and the server's peak memory. LLM off by default: a storm is about the
    first posts (the LLM edits would queue behind them for many minutes on 2 cores)."""
    emu = SlackEmulator()
    routes = json.dumps({s: f"#oncall-{s}" for s, _, _ in STORM_SCOPE[:channels]})
    server = Server(data_dir, collection, emu, llm=llm, env_extra={"INCIBOT_CHANNEL_ROUTES": routes})
    try:
        _, sent, refused = burst([server], storm_tickets(n), seconds)
        # A scrape while the outbox still drains the storm: it must answer, and fast (no posting-path lock).
        t_scrape = time.monotonic()
        scrape = server.http.get("/metrics")
        scrape_s = time.monotonic() - t_scrape
        (data_dir / "metrics-during-storm.txt").write_text(scrape.text)
        accepted = set(sent)
        _wait(lambda: accepted <= set(deliveries(emu)), timeout=600)
        time.sleep(5.0)  # anything sent twice would show up by now
        got = deliveries(emu)
        own = [got[k][0][0] - sent[k] for k in accepted if got[k][0][1] == "post"]
        listed = [got[k][0][0] - sent[k] for k in accepted if got[k][0][1] == "thread"]
        return {
            **tally(emu, got, sent, refused, seconds),
            "grouped_tickets": sum(1 for v in got.values() if v[0][1] == "thread"),
            "chat_updates": len(emu.of("chat.update")),
            "to_own_post_s": lat(own),
            "to_thread_listing_s": lat(listed),
            "metrics_scrape": {
                "status": scrape.status_code,
                "seconds": round(scrape_s, 3),
                "lines": len(scrape.text.splitlines()),
                "saved": str(data_dir / "metrics-during-storm.txt"),
            },
            "peak_rss_mb": server.stop(),
        }
    finally:
        if server.proc.poll() is None:
            server.stop()
        emu.close()


def bench_replicas(
    data_dir: Path,
    replicas: int,
    n: int,
    seconds: float,
    llm: str = "none",
    channels: int = 4,
    collection: str = "replicas",
    env_extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """n storm tickets over `seconds`, round-robin over `replicas` `incibot serve` processes that share one
    PostgreSQL database, one Chroma server collection (the demo history, imported by the first replica) and the
    Slack emulator: webhook -> first delivery latency, delivered tickets per second, lost and doubled tickets."""
    from benchmarks.backends import ChromaServer, Postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    pg, chroma, emu = Postgres(), ChromaServer(data_dir / "chroma"), SlackEmulator()
    servers: list[Server] = []
    try:
        url = pg.database("bench_replicas")
        routes = json.dumps({s: f"#oncall-{s}" for s, _, _ in STORM_SCOPE[:channels]})
        env = {"INCIBOT_CHANNEL_ROUTES": routes, **(env_extra or {})}

        def replica(seed: bool, wait: bool) -> Server:
            extra = env | {"INCIBOT_SEED_DEMO_HISTORY": "true" if seed else "false"}
            return Server(data_dir, collection, emu, llm=llm, env_extra=extra, database_url=url,
                          chroma=("127.0.0.1", chroma.port), wait=wait)  # fmt: skip

        # One replica imports the demo history into the empty collection; the others start once it is there
        # (started together, every replica would import it: each sees an empty collection).
        servers.append(replica(seed=True, wait=True))
        servers += [replica(seed=False, wait=False) for _ in range(replicas - 1)]
        for s in servers:
            s.wait_ready()
        start, sent, refused = burst(servers, storm_tickets(n), seconds)
        accepted = set(sent)
        _wait(lambda: accepted <= set(deliveries(emu)), timeout=600)
        time.sleep(5.0)  # anything sent twice would show up by now
        got = deliveries(emu)
        first = {k: got[k][0] for k in accepted}
        last = max((t for t, _ in first.values()), default=start)
        return {
            "replicas": replicas,
            **tally(emu, got, sent, refused, seconds),
            "webhook_to_first_delivery_s": lat([t - sent[k] for k, (t, _) in first.items()]),
            "webhook_to_own_post_s": lat([t - sent[k] for k, (t, how) in first.items() if how == "post"]),
            "delivered_per_s": round(len(accepted) / max(last - start, 1e-9), 2),
            "drained_after_s": round(last - start, 2),
            "peak_rss_mb": [round(s.stop(), 1) for s in servers],
        }
    finally:
        for s in servers:
            s.stop()
        chroma.stop()
        emu.close()
        pg.stop()
        pg.remove()
