"""Alembic's entry: migrations run on the connection `bot.store.migrations.upgrade` hands over (never from a URL in
a file: the store's settings are the only place the database is named)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
