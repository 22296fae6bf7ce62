"""Idle memory of `incibot serve` (the bot and its children, e.g. the local model server): after a first start on
an empty data dir (which embeds the demo history) and after a restart on the same data dir.

    .venv/bin/python -m benchmarks.idle_memory [none|local ...]     # prints one line per LLM backend
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bot.net import free_port

IDLE_S = 45  # after /healthz answers: background training and the model server's load have settled


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (from ps: no extra dependency)."""
    rows = [line.split() for line in subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid=,rss="], capture_output=True, text=True, check=True).stdout.splitlines()]  # fmt: skip
    children: dict[int, list[int]] = {}
    rss = {}
    for p, pp, r in ((int(a), int(b), int(c)) for a, b, c in rows):
        children.setdefault(pp, []).append(p)
        rss[p] = r
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack += children.get(p, [])
    return total / 1024


def idle_rss(data_dir: Path, llm: str) -> tuple[float, float]:
    """(seconds until /healthz answered, idle RSS in MB) of one start of `incibot serve`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIBOT_")}
    env |= {"INCIBOT_DATA_DIR": str(data_dir), "INCIBOT_PORT": str(port), "INCIBOT_LLM_BACKEND": llm,
            "INCIBOT_SLACK_BOT_TOKEN": "xoxb-idle", "INCIBOT_SLACK_SIGNING_SECRET": "s",
            "INCIBOT_SLACK_API_URL": "http://127.0.0.1:9/api/"}  # fmt: skip
    t0 = time.monotonic()
    with (data_dir / "serve.log").open("a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, stdout=log, stderr=log)
    try:
        while time.monotonic() - t0 < 600:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        ready = time.monotonic() - t0
        # A first start trains the classifier in the background: idle means after it is saved (else the "restart"
        # would train again and measure a second first start).
        models = data_dir / "models"
        while time.monotonic() - t0 < 600 and not list(models.glob("*.joblib")):
            time.sleep(1)
        time.sleep(IDLE_S)
        return ready, tree_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


def main(backends: list[str]) -> None:
    for llm in backends or ["none", "local"]:
        data = Path(tempfile.mkdtemp(prefix="incibot-idle-"))
        (r1, m1), (r2, m2) = idle_rss(data, llm), idle_rss(data, llm)
        print(f"llm={llm}: first start ready in {r1:.0f} s, idle {m1:.0f} MB; "
              f"restart ready in {r2:.0f} s, idle {m2:.0f} MB", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
