"""The bot on the bundled model's real llama.cpp server, for test_model_server.py and test_model_server_faults.py
(two files, so that the two xdist workers share them: `--dist loadfile` keeps a file on one worker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from bot.config import Settings
from bot.models import Ticket
from bot.net import free_port
from bot.server import create
from bot.service import TriageService
from testkit.emulators import SlackEmulator
from tests.conftest import SMALL_HISTORY
from tests.helpers import OPS, OPS_TOKEN, top_level_posts, wait_until

TICKET = Ticket(
    id="t1", title="Elevated 500 errors on chat completions", text="Since 14:05 UTC, gpt-4o only."
)


def bot(tmp: Path, emu: SlackEmulator, **overrides: Any) -> tuple[TriageService, TestClient]:
    """A running bot on the local model (its own server per test: each test's faults stay its own)."""
    settings = Settings(
        **{
            "data_dir": tmp,
            "seed_demo_history": False,
            "llm_backend": "local",
            "local_threads": 1,
            "slack_bot_token": "xoxb-test",
            "ops_token": OPS_TOKEN,
            "slack_signing_secret": "s",
            "slack_api_url": emu.url,
            "slack_retries": 2,
            "storm_similarity": 1.01,
            # A port of its own makes a server of its own, not the one other tests share.
            "local_server_port": free_port(),
        }
        | overrides
    )
    service, _, server = create(settings)
    service.history.upsert(SMALL_HISTORY)
    service.start()
    return service, TestClient(server, headers=OPS)


def health(client: TestClient) -> dict[str, Any]:
    return client.get("/healthz").json()["llm"]


def final_update(service: TriageService, emu: SlackEmulator, key: str) -> dict[str, Any]:
    """The edit that replaces a ticket's retrieval draft: the LLM draft, or a retrieval-only draft saying why."""
    ts = wait_until(lambda: getattr(service.store.get(key), "message_ts", None), 120, f"{key} posted")

    def done() -> dict[str, Any] | None:
        for u in emu.of("chat.update"):
            text = json.dumps(u.get("blocks"))
            if u.get("ts") == ts and ("LLM draft" in text or "Retrieval-only draft" in text):
                return u
        return None

    return emu.wait_for(done, timeout=180)


def posts_of(emu: SlackEmulator, key: str) -> int:
    return sum(key in json.dumps(p) for p in top_level_posts(emu))


def ticket(n: int) -> dict[str, Any]:
    return {
        "id": f"m-{n}",
        "title": f"Elevated 500 errors on chat completions ({n})",
        "text": "Since 14:05 UTC.",
    }
