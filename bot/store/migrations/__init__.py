"""Schema versions of the bot's SQL store, with Alembic: `upgrade(engine)` brings any database to the newest.

Run by every process that opens the store, so it must be safe when several start at once: on PostgreSQL the
upgrade holds a transaction-scoped advisory lock (the others wait, then find the schema current); on SQLite,
a lock file beside the database does the same. Databases from before migrations (tables made by
`create_all`, no `alembic_version`) are adopted by the first revision, which only adds what is missing.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

HERE = Path(__file__).resolve().parent
PG_LOCK_ID = 0x1C1B07  # any constant shared by every replica of the bot
SEED_LOCK_ID = 0x1C1B08  # the demo history's import (bot/store/demo.py)


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


@contextlib.contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    db = engine.url.database
    if not db or db == ":memory:":
        yield
        return
    with open(f"{db}.migrate.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def exclusive(engine: Engine, lock_id: int = PG_LOCK_ID) -> Iterator[Connection]:
    """A transaction no other replica holds at the same time (PostgreSQL: an advisory lock; SQLite: a lock file)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
            yield conn
        return
    lock = _sqlite_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
    with lock, engine.begin() as conn:
        yield conn


def upgrade(engine: Engine) -> None:
    cfg = _config()
    with exclusive(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def head() -> str | None:
    """The newest revision."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: Engine) -> str | None:
    """The revision a database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
