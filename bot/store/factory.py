"""Where the stores are built: the only module that names their concrete classes, so swapping a backend touches
this file and the backend's own module."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config import Settings
from bot.store.sql import Store

if TYPE_CHECKING:  # numpy loads with it: not for a command that only opens the database (`incibot mode`)
    from bot.store.vectors import VectorStore


def open_history(settings: Settings, collection: str | None = None) -> VectorStore:
    """The vector history; `collection` defaults to `settings.collection`. Raises `HistoryError`."""
    from bot.store.chroma import ChromaHistory  # chromadb loads only when a history is opened

    return ChromaHistory(settings, collection)


def open_sql(settings: Settings) -> Store:
    """Tickets, verdicts, the work queue and mode changes, at `settings.db_url` (migrated on open)."""
    return Store(settings.db_url)
