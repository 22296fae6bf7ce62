"""What every history importer is: a source of pages of `HistoricalIncident` records (or `Skipped` ones), each
page ending at a cursor from which the import can resume.

An importer only reads and converts; `run.py` writes, counts and keeps the checkpoint, so a new source is one
module with `pages()` and one registry line in `__init__.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from bot.clock import aware
from bot.config import Settings
from bot.intake.files import InputError
from bot.intake.importers.mapping import LabelMapping
from bot.models import HistoricalIncident


class SourceError(InputError):
    """The source cannot be read (credentials, rate limits past the retries, an answer of the wrong shape): one
    line naming the source and what to do. An `InputError`, so the command line shows it as one line."""


class Skipped(BaseModel):
    """A record left out, and why (listed by `history import`)."""

    id: str
    reason: str


class ImportOptions(BaseModel):
    """What the command line asks of an importer."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    settings: Settings
    mapping: LabelMapping = Field(default_factory=LabelMapping)
    since: datetime | None = None
    path: Path | None = None  # the folder or export file, for sources read from disk


class Page(BaseModel):
    """Records of one page and the cursor of the next (None: this was the last)."""

    records: list[HistoricalIncident | Skipped]
    next_cursor: str | None = None


class Importer(Protocol):
    """One source of history. `pages` starts at `cursor` (None: the beginning) and yields pages in a stable
    order, so that a checkpoint of the next cursor resumes without gaps or repeats."""

    name: str
    needs_path: bool
    credential: str  # what the operator must grant: named in `SourceError`s and in docs/history.md

    def pages(self, options: ImportOptions, cursor: str | None) -> Iterator[Page]: ...


def parse_time(value: object) -> datetime | None:
    """An API's ISO 8601 time (a trailing Z, fractions, offsets); naive means UTC. None when unreadable."""
    if isinstance(value, datetime):
        return aware(value)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return aware(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None
