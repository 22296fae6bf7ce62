"""The embedded store's SQLite engine (bot/store/sqlite.py): the write-ahead log, the busy timeout, and this
process's write lock, held from a transaction's first write to its end and given back on every path out (a lock
kept would turn every later write into a 503)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from bot.clock import utcnow
from bot.store.schema import modes
from bot.store.sql import Store
from bot.store.sqlite import _LOCKS, SQLITE_BUSY_S


def test_wal_and_busy_timeout(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'incibot.db'}")
    with store.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA busy_timeout")).scalar() == SQLITE_BUSY_S * 1000
        assert c.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL: answered once on disk


def test_the_write_lock_is_held_from_the_first_write_to_the_end_of_the_transaction(tmp_path: Path) -> None:
    db = tmp_path / "incibot.db"
    store = Store(f"sqlite:///{db}")
    lock = _LOCKS[os.path.abspath(db)]
    row = {"id": 1, "mode": "shadow", "user_id": "U1", "created_at": utcnow()}
    with store.engine.connect() as c:
        c.execute(select(modes))
        assert not lock.locked()  # reads never take it
        c.execute(insert(modes).values(**row))
        assert lock.locked()
        c.execute(select(modes))
        c.commit()
        assert not lock.locked()
        c.execute(insert(modes).values(**row | {"id": 2}))
        c.rollback()
        assert not lock.locked()
    with pytest.raises(IntegrityError), store.engine.begin() as c:
        c.execute(insert(modes).values(**row))  # a duplicate: the transaction is rolled back
    assert not lock.locked()
    with store.engine.connect() as c:
        c.execute(insert(modes).values(**row | {"id": 3}))
    assert not lock.locked()  # returned to the pool uncommitted: rolled back
    with store.engine.connect() as c:
        c.execute(insert(modes).values(**row | {"id": 4}))
        c.invalidate()  # a connection found broken is closed, never returned
    assert not lock.locked()
    with store.engine.connect() as c:
        assert [r.id for r in c.execute(select(modes))] == [1]
