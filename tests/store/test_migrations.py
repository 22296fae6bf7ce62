"""Schema versions (Alembic, bot/store/migrations/): every revision together builds the schema the code declares,
and databases from before a column, or from before migrations, are brought up to date and keep their rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import inspect

from bot.store.migrations import current, head
from bot.store.sql import Store
from tests.helpers import receive


def test_a_database_from_before_migrations_is_adopted(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:  # the schema as `create_all` made it before the `route` column
        c.execute("CREATE TABLE tickets (key VARCHAR(300) PRIMARY KEY, ticket JSON NOT NULL, channel VARCHAR(200) "
                  "NOT NULL, status VARCHAR(20) NOT NULL, message_ts VARCHAR(40), parent_key VARCHAR(300), "
                  "group_count INTEGER, draft JSON, resolution TEXT, resolved INTEGER, attempts INTEGER, "
                  "last_error TEXT, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)")  # fmt: skip
        c.execute("INSERT INTO tickets (key, ticket, channel, status, created_at, updated_at) VALUES "
                  "('generic:old', '{\"id\": \"generic:old\", \"title\": \"old\"}', '#incidents', 'drafted', "
                  "'2024-01-01 00:00:00', '2024-01-01 00:00:00')")  # fmt: skip
    store = Store(f"sqlite:///{db}")
    assert current(store.engine) == head()
    assert "route" in {c["name"] for c in inspect(store.engine).get_columns("tickets")}
    row = store.get("generic:old")
    assert (
        row is not None and row.status == "drafted" and row.route == "#incidents"
    )  # no route yet: its channel
    Store(f"sqlite:///{db}")  # opening it again changes nothing


def test_migrations_make_the_schema_the_code_expects(tmp_path: Path) -> None:
    """Every revision together builds exactly the tables, columns and indexes `bot/store/sql.py` declares (bot/store/schema.py)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bot.store.schema import meta
    from bot.store.sql import Store

    store = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    with store.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), meta)
    assert diff == []


def test_old_databases_get_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE tickets (key VARCHAR(300) PRIMARY KEY, ticket JSON NOT NULL, channel VARCHAR(200) "
                  "NOT NULL, status VARCHAR(20) NOT NULL, message_ts VARCHAR(40), draft JSON, resolution TEXT, "
                  "resolved INTEGER, attempts INTEGER, last_error TEXT, created_at DATETIME NOT NULL, "
                  "updated_at DATETIME NOT NULL)")  # fmt: skip
    from bot.store.sql import Store

    store = Store(f"sqlite:///{db}")
    # stored as a webhook's ticket is (the receiver), on the upgraded schema
    assert (
        receive(store, {"id": "k", "title": "t"}, "#c") == "accepted"
        and store.get("generic:k").group_count == 0
    )
