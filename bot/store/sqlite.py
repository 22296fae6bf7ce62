"""The embedded default store's engine: SQLite set up so that a burst of webhooks is a queue, not an outage.

SQLite lets one connection write at a time; a write that waits longer than its busy timeout fails with `database
is locked`, which the server answers 503 "database unavailable" (bot/server.py). Three settings let many request
and worker threads share that one writer:

- the write-ahead log: reads neither wait for the writer nor hold up its commit (in the default rollback-journal
  mode a commit waits for every read in progress, a report or the CLI on the same file included);
- this process's writes queue on a lock, taken at a transaction's first write and given back after its commit:
  a waiting thread is woken as the lock is freed. SQLite's own busy handler polls instead, sleeping up to 100 ms
  between tries, so under a burst the database sat idle while writers slept, and an unlucky one lost every round
  until its timeout;
- a busy timeout of SQLITE_BUSY_S, for writers in other processes on the same file.

pysqlite opens a transaction at its first INSERT/UPDATE/DELETE (reads before it run outside any transaction), so
that first write is where SQLite's lock is taken too: a `BEGIN IMMEDIATE` would take it no earlier.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

# How long a write waits for the ones before it before its request is answered 503. Beyond this, senders have
# stopped waiting too (GitHub gives up after 10 s) and retry: a 503 with Retry-After is then the honest answer.
SQLITE_BUSY_S = 15.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_LOCKS: dict[str, threading.Lock] = {}  # per database file: every engine on it in this process shares it


def sqlite_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    args = {"timeout": SQLITE_BUSY_S, "factory": _QueuedWrites}
    engine = create_engine(url, pool_pre_ping=True, connect_args=args)
    event.listen(engine, "connect", _write_ahead_log)
    return engine


def _write_ahead_log(dbapi_connection: Any, _record: Any) -> None:
    # Persistent once set; synchronous stays FULL, the default: a webhook is answered once its ticket is on disk.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


class _QueuedWrites(sqlite3.Connection):
    """A connection that holds its database's write lock (this process's) from its first write to the end of the
    transaction."""

    def __init__(self, database: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._queue = _LOCKS.setdefault(os.path.abspath(database), threading.Lock())
        self._holding = False

    def cursor(self, factory: Any = None) -> sqlite3.Cursor:
        return super().cursor(factory or _Cursor)

    def before(self, sql: str) -> None:
        if not self._holding and sql.lstrip()[:7].upper().startswith(_WRITES):
            # As SQLite would after its own timeout: a 503, not a request that hangs.
            if not self._queue.acquire(timeout=SQLITE_BUSY_S):
                raise sqlite3.OperationalError("database is locked (waited for this process's other writes)")
            self._holding = True

    def _done(self) -> None:
        if getattr(self, "_holding", False):  # not set if the file could not be opened
            self._holding = False
            self._queue.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._done()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._done()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._done()

    def __del__(self) -> None:  # dropped without close (never by the pool): never keep the others waiting
        self._done()


class _Cursor(sqlite3.Cursor):
    connection: _QueuedWrites

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        self.connection.before(sql)
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:
        self.connection.before(sql)
        return super().executemany(sql, seq_of_parameters)
