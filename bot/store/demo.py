"""The bundled demo history (public status-page and post-incident data) and a sample ticket."""

from __future__ import annotations

import contextlib
import gzip
from importlib import resources

from sqlalchemy import Engine

from bot.models import HistoricalIncident, Ticket
from bot.store.migrations import SEED_LOCK_ID, exclusive
from bot.store.vectors import VectorStore

SAMPLE_TICKET = Ticket(
    id="sample-1",
    title="Elevated error rates and timeouts on chat completions for gpt-4o in East US since 14:05 UTC",
    text=(
        "Customers report HTTP 500 and 504 responses from the chat completions endpoint. Error rate went from "
        "0.1% to 7% at 14:05 UTC, mostly for gpt-4o; other models look normal. No deployment announced."
    ),
    service="openai",
    source="demo",
)


def demo_history() -> list[HistoricalIncident]:
    data = resources.files("bot").joinpath("resources/demo_history.jsonl.gz").read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return [HistoricalIncident.model_validate_json(line) for line in lines if line.strip()]


def seed_if_empty(store: VectorStore, engine: Engine | None = None) -> int:
    """Import the demo history into an empty default collection; returns how many were added. With the SQL
    store's `engine`, replicas starting together take turns: the first imports, the others find it there."""
    if not store.settings.seed_demo_history or store.name != store.settings.collection:
        return 0
    with exclusive(engine, SEED_LOCK_ID) if engine is not None else contextlib.nullcontext():
        return store.upsert(demo_history()) if store.count() == 0 else 0
