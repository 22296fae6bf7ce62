"""Shared test wiring: a service on emulators, answers that fit the triage schema, corpora."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.config import Settings
from bot.intake.receiver import Receiver
from bot.intake.senders import parse
from bot.server import create
from bot.service import TriageService
from bot.store.schema import tickets
from bot.store.sql import Store
from bot.store.tickets import TicketRow, TicketState
from bot.taxonomy import Taxonomy
from bot.triage.prepare import Preparer
from bot.triage.redact import redactor
from testkit.emulators import OpenAIEmulator, SlackEmulator
from tests.conftest import SMALL_HISTORY

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent  # the checkout
CORPORA = TESTS / "corpora"
PAYLOADS = TESTS / "payloads"  # real deliveries, one folder per sender (provenance in its README)
OPS_TOKEN = "ops-test-token"
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}  # /metrics and the details of /healthz


def corpus(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (CORPORA / f"{name}.jsonl").read_text().splitlines() if line.strip()]


def schema_answer(schema: dict[str, Any], **text: Any) -> dict[str, Any]:
    """A schema-valid triage answer: the first allowed value of every enum, plus the given free text."""
    defs = schema.get("$defs", {})
    out: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if "$ref" in prop:
            prop = defs[prop["$ref"].split("/")[-1]]
        if "enum" in prop:
            out[name] = prop["enum"][0]
        elif prop.get("type") == "array" and "enum" in prop.get("items", {}):
            out[name] = [prop["items"]["enum"][0]]
        elif prop.get("type") == "array" and "$ref" in prop.get("items", {}):
            out[name] = [defs[prop["items"]["$ref"].split("/")[-1]]["enum"][0]]
        elif prop.get("type") == "array":
            out[name] = ["Roll back the latest change in the affected region."]
        else:
            out[name] = "Compare error rates per model version since the rollout to isolate the change."
    out.update(text)
    return out


def tool_answer(request: dict[str, Any], **text: Any) -> dict[str, Any]:
    """For OpenAIEmulator: answer the request's tool schema."""
    return schema_answer(request["tools"][0]["function"]["parameters"], **text)


TENANT = {"TENANT_ID": r"\btnt-[0-9a-f]{8}\b"}  # an organisation-specific pattern from configuration


def external(settings: Settings, llm: OpenAIEmulator, **kw: object) -> Settings:
    """The settings with an external (OpenAI-compatible) LLM: the emulator, and TENANT as a redaction pattern."""
    return settings.model_copy(
        update={
            "llm_backend": "openai",
            "openai_base_url": llm.url,
            "openai_model": "emulated",
            "redact_patterns": TENANT,
            **kw,
        }
    )


def make_service(tmp: Path, emu: SlackEmulator, **overrides: Any) -> TriageService:
    defaults: dict[str, Any] = {
        "data_dir": tmp,
        "seed_demo_history": False,
        "llm_backend": "none",
        "slack_bot_token": "xoxb-test",
        "ops_token": OPS_TOKEN,
        "slack_signing_secret": "s",
        "slack_api_url": emu.url,
        "default_channel": "#incidents",
        "channel_routes": {"openai": "#genai-oncall", "anthropic": "#claude-oncall"},
        "slack_retries": 2,
        "slack_outbox_backoff_max_s": 0.5,
        "storm_flush_s": 0.2,
    }
    settings = Settings(**(defaults | overrides))
    service, _, _ = create(settings)
    service.history.upsert(SMALL_HISTORY)
    return service


def accept(service: TriageService, payload: dict[str, Any]) -> str:
    """A generic-webhook ticket through the same parser the HTTP endpoint uses."""
    return service.accept(parse("generic", payload))


def receive(store: Store, payload: dict[str, Any], channel: str | None = None) -> str:
    """A generic-webhook ticket stored on a bare store (no service, no workers) the way the product stores it: the
    receiver decides, redacts and prioritises it, then `Store.record`s it; the Outcome value ("accepted",
    "duplicate", ...). Its key is "generic:<id>"; `channel` overrides routing."""
    settings = Settings(seed_demo_history=False, llm_backend="none")
    preparer = Preparer(redactor(), settings.max_text_chars, settings.redact_in_slack)
    receiver = Receiver(settings, store, preparer, Taxonomy.load(settings.taxonomy_path))
    return receiver.receive(parse("generic", payload), channel, lambda: None).receipt.status


def rows_in(store: Store, *statuses: TicketState | str) -> list[TicketRow]:
    """The stored tickets in these states, oldest first (read from the tickets table)."""
    query = select(tickets).where(tickets.c.status.in_([str(s) for s in statuses]))
    with store.engine.connect() as c:
        rows = c.execute(query.order_by(tickets.c.created_at, tickets.c.key)).mappings()
        return [TicketRow.of(r) for r in rows]


def top_level_posts(emu: SlackEmulator) -> list[dict[str, Any]]:
    return [p for p in emu.of("chat.postMessage") if not p.get("thread_ts")]


def posted_keys(emu: SlackEmulator) -> list[str]:
    """Ticket keys in the order their own post reached Slack (from the message metadata)."""
    out = []
    for p in top_level_posts(emu):
        meta = p.get("metadata")
        meta = json.loads(meta) if isinstance(meta, str) else meta or {}
        out.append(meta.get("event_payload", {}).get("key"))
    return out


def grouped_keys(emu: SlackEmulator) -> list[str]:
    """Ticket keys listed in thread replies (storm members)."""
    out: list[str] = []
    for p in emu.of("chat.postMessage"):
        if p.get("thread_ts"):
            meta = p.get("metadata")
            meta = json.loads(meta) if isinstance(meta, str) else meta or {}
            out.extend(meta.get("event_payload", {}).get("keys", []))
    return out


def wait_until(predicate: Any, timeout: float = 120.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---- a ticket's post, its thread replies and edits, found by the ticket key in the message metadata ------------
def post_of(emu: SlackEmulator, key: str) -> dict[str, Any]:
    """The ticket's own (top-level) post."""
    return emu.wait_for(
        lambda: next((p for p in emu.of("chat.postMessage") if not p.get("thread_ts")
                      and (p.get("metadata") or {}).get("event_payload", {}).get("key") == key), None),
        timeout=30,
    )  # fmt: skip


def replies(emu: SlackEmulator, key: str) -> list[dict[str, Any]]:
    """Thread replies with news about the ticket `key` (any occurrence key starting with it)."""
    return [p for p in emu.of("chat.postMessage") if p.get("thread_ts")
            and (p.get("metadata") or {}).get("event_payload", {}).get("key", "").startswith(f"{key}~")]  # fmt: skip


def reply_count(emu: SlackEmulator, key: str, n: int) -> list[dict[str, Any]]:
    return emu.wait_for(lambda: (r := replies(emu, key)) and len(r) >= n and r, timeout=30)


def last_edit(emu: SlackEmulator, service: TriageService, key: str, needle: str) -> str:
    ts = service.store.get(key).message_ts
    return emu.wait_for(
        lambda: next((s for u in reversed(emu.of("chat.update")) if u.get("ts") == ts
                      and needle in (s := json.dumps(u["blocks"]))), None),
        timeout=30,
    )  # fmt: skip
