"""The two-replica rig of test_replicas.py and test_replicas_faults.py (one file each, so that the two xdist
workers can share them): one PostgreSQL cluster and one Chroma server per test module, two `incibot serve`
replicas on them, the Slack emulator, and webhook senders that behave like real ones."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.backends import ChromaServer, Postgres
from benchmarks.core import scaled_history
from benchmarks.serving import Server, deliveries
from bot.config import Settings
from bot.store.factory import open_history
from bot.taxonomy import Taxonomy
from testkit.emulators import SlackEmulator
from tests.conftest import SMALL_HISTORY

COLLECTION = "replicas"
SERVICES = ["openai", "anthropic", "google", "meta"]
ROUTES = {s: f"#oncall-{s}" for s in SERVICES} | {"down": "#down", "up": "#up"}
# Fast Slack pace, quick storm flushes and short leases: a test's tickets reach Slack in seconds.
FAST = {
    "INCIBOT_LEASE_S": "3",
    "INCIBOT_SLACK_CHANNEL_RATE": "20",
    "INCIBOT_SLACK_CHANNEL_BURST": "20",
    "INCIBOT_STORM_FLUSH_S": "0.5",
    "INCIBOT_SLACK_OUTBOX_BACKOFF_MAX_S": "2",
    "INCIBOT_HISTORY_RETRY_S": "1",
    "INCIBOT_CHANNEL_ROUTES": json.dumps(ROUTES),
}


@dataclass
class Backends:
    pg: Postgres
    chroma: ChromaServer
    dir: Path


@contextlib.contextmanager
def running_backends(tmp: Path) -> Iterator[Backends]:
    """One PostgreSQL cluster (a fresh database per test) and one Chroma server whose collection holds a small
    history, shared by a whole test module (its `backends` fixture)."""
    pg = Postgres()
    chroma = ChromaServer(tmp / "chroma")

    settings = Settings(data_dir=tmp / "seed", seed_demo_history=False, llm_backend="none",
                        chroma_host="127.0.0.1", chroma_port=chroma.port, collection=COLLECTION)  # fmt: skip
    open_history(settings).upsert(SMALL_HISTORY)
    yield Backends(pg, chroma, tmp)
    chroma.stop()
    try:
        pg.stop()
    finally:
        pg.remove()


@dataclass
class Pair:
    servers: list[Server]
    url: str
    log_problems_at_start: list[str]


@contextlib.contextmanager
def running_pair(backends: Backends, emu: SlackEmulator) -> Iterator[Pair]:
    """Two replicas with a fast Slack pace, started at the same moment on an empty database, shared by a test
    module's tests that do not need another pace (its `pair` fixture; the kill test replaces the one it kills)."""
    url = backends.pg.database("shared")
    servers = start_replicas(backends, emu, "shared", FAST, url=url)
    yield Pair(servers, url, log_problems(servers))
    stop_all(servers)


def start_replicas(
    b: Backends, emu: SlackEmulator, db: str, env: dict[str, str], n: int = 2, url: str | None = None
) -> list[Server]:
    """n replicas on a fresh database `db` (or on `url`), started together."""
    url = url or b.pg.database(db)
    chroma = ("127.0.0.1", b.chroma.port)
    servers = [
        Server(b.dir, COLLECTION, emu, llm="none", env_extra=env, database_url=url, chroma=chroma, wait=False)
        for _ in range(n)
    ]
    for s in servers:
        s.wait_ready()
    return servers


def stop_all(servers: list[Server]) -> None:
    for s in servers:
        s.stop()


class Sender:
    """Webhook senders as PagerDuty or Alertmanager behave: a 429/503 is retried after its Retry-After, a dropped
    connection is retried at the next replica (a load balancer). Records every answer; `accepted` holds the keys
    answered 202."""

    def __init__(self, servers: list[Server], give_up_s: float = 120.0) -> None:
        self.servers, self.give_up_s = servers, give_up_s
        self.accepted: dict[str, float] = {}  # key -> when it was accepted (time.monotonic())
        self.statuses: list[int] = []
        self.retry_after: list[str | None] = []  # the Retry-After header of each 503
        self.dead: set[int] = set()  # replicas known to be gone
        self.lock = threading.Lock()

    def send(self, payload: dict[str, Any], replica: int) -> int:
        deadline = time.monotonic() + self.give_up_s
        while time.monotonic() < deadline:
            i = replica
            while i in self.dead and len(self.dead) < len(self.servers):
                i = (i + 1) % len(self.servers)
            try:
                r = self.servers[i].send(payload)
            except httpx.TransportError:
                with self.lock:
                    self.dead.add(i)
                continue
            with self.lock:
                self.statuses.append(r.status_code)
                if r.status_code == 503:
                    self.retry_after.append(r.headers.get("retry-after"))
            if r.status_code == 202:
                with self.lock:
                    self.accepted[f"generic:{payload['id']}"] = time.monotonic()
                return 202
            if r.status_code in (429, 503):
                time.sleep(min(float(r.headers.get("retry-after") or 1), 5.0))
                continue
            return r.status_code
        return 0

    def burst(self, payloads: list[dict[str, Any]], seconds: float, workers: int = 16) -> None:
        """Each payload at its slot in `seconds`, round-robin over the replicas."""
        start = time.monotonic()

        def fire(i: int) -> None:
            time.sleep(max(0.0, start + i * seconds / len(payloads) - time.monotonic()))
            self.send(payloads[i], i % len(self.servers))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fire, range(len(payloads))))


def distinct(n: int, prefix: str, services: list[str] = SERVICES) -> list[dict[str, Any]]:
    """n different incidents (the demo history's), none of them suggesting personal-data exposure."""
    tax = Taxonomy.load(Settings(seed_demo_history=False).taxonomy_path)
    incs = [i for i in scaled_history(n * 2) if tax.privacy_match(f"{i.title}\n{i.text}") is None][:n]
    return [{"id": f"{prefix}-{k}", "title": inc.title, "text": inc.text, "service": services[k % len(services)]}
            for k, inc in enumerate(incs)]  # fmt: skip


def messages_by_key(emu: SlackEmulator) -> dict[str, list[dict[str, Any]]]:
    """ticket key -> every message (ts, thread_ts, channel) that carried it, from the emulator's channels."""
    out: dict[str, list[dict[str, Any]]] = {}
    for channel, msgs in list(emu.messages.items()):
        for m in list(msgs):
            payload = (m.get("metadata") or {}).get("event_payload") or {}
            for key in [payload["key"]] if "key" in payload else payload.get("keys", []):
                out.setdefault(key, []).append(m | {"channel": channel})
    return out


def doubled(emu: SlackEmulator, keys: set[str]) -> dict[str, int]:
    """Of `keys`, those not delivered exactly once (a key never delivered counts 0)."""
    got = deliveries(emu)
    return {k: len(got.get(k, [])) for k in keys if len(got.get(k, [])) != 1}


def log_problems(servers: list[Server], since: dict[int, int] | None = None) -> list[str]:
    """Tracebacks and errors in the replicas' logs (after `since`: port -> characters, from `log_sizes`)."""
    return [
        f"{s.log.name}: {line}"
        for s in servers
        for line in s.log.read_text()[(since or {}).get(s.port, 0) :].splitlines()
        if "Traceback" in line or " ERROR" in line or "Error:" in line
    ]


def log_sizes(servers: list[Server]) -> dict[int, int]:
    return {s.port: len(s.log.read_text()) for s in servers}
