"""Where an interrupted import resumes: `<data_dir>/imports/<source>.json` holds the cursor of the next page not
yet written, for the run it belongs to (collection, --since, path). Another run's checkpoint is ignored, not
reused: resuming a different query at its offset would skip records."""

from __future__ import annotations

import contextlib
from pathlib import Path

from pydantic import BaseModel, ValidationError

from bot.fileio import replace_atomically


class Checkpoint(BaseModel):
    source: str
    run: str  # what identifies the run: collection, since and path
    cursor: str


class Checkpoints:
    def __init__(self, data_dir: Path, source: str, run: str) -> None:
        self.path = data_dir / "imports" / f"{source}.json"
        self.source, self.run = source, run

    def load(self) -> str | None:
        """The cursor to resume from; None: start at the beginning (none kept, another run's, or unreadable)."""
        try:
            cp = Checkpoint.model_validate_json(self.path.read_text(encoding="utf-8"))
        except (OSError, ValidationError):
            return None
        return cp.cursor if cp.run == self.run else None

    def save(self, cursor: str | None) -> None:
        """After a page is written: its next cursor, or, at the end, no checkpoint (a new run starts over and
        finds every record unchanged)."""
        if cursor is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        cp = Checkpoint(source=self.source, run=self.run, cursor=cursor)
        replace_atomically(self.path, lambda tmp: tmp.write_text(cp.model_dump_json(), encoding="utf-8"))
