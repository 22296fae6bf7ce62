"""The SQL schema (SQLAlchemy Core tables); bot/store/migrations/versions brings a database to it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

meta = MetaData()
tickets = Table(
    "tickets",
    meta,
    Column("key", String(300), primary_key=True),
    Column("ticket", JSON, nullable=False),
    Column("shown", JSON),  # the ticket as posted: redacted once, at intake
    Column("channel", String(200), nullable=False),  # routed at first, then the id Slack answers with
    Column("route", String(200)),  # the channel routing chose (name or id): what storm grouping compares
    Column(
        "status", String(20), nullable=False, default="received", index=True
    ),  # bot.store.tickets.TicketState
    Column("message_ts", String(40)),
    Column("parent_key", String(300), index=True),
    Column("group_count", Integer, default=0),  # members announced in this ticket's thread
    Column("draft", JSON),
    Column("resolution", Text),
    Column("resolved", Integer, default=0),
    Column("attempts", Integer, default=0),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("history_pending", Integer, index=True),  # 1: its labelled incident still has to reach the history
    # NULL/"ticket", or "update": a thread reply under parent_key (received -> posting -> replied, or failed)
    Column("kind", String(20)),
    Column("status_line", Text),  # the latest verdict line on its post ("Confirmed by @alice")
    # The work queue (bot/delivery/queue.py): posted before others when 0 (urgent); not tried before `not_before`;
    # the LLM edit pass holds a posted ticket under a lease (owner, until) so one replica edits it.
    Column("priority", Integer, nullable=False, default=1, server_default="1"),
    Column("not_before", DateTime(timezone=True)),
    Column("lease_owner", String(100)),
    Column("lease_until", DateTime(timezone=True)),
    # Storms (bot/delivery/storms.py): a posted incident's embedding (float32) and when its newest ticket came.
    Column("storm_vector", LargeBinary),
    Column("last_seen", DateTime(timezone=True)),
    Column("announced_at", DateTime(timezone=True)),  # its storm members last listed in its thread
    # 0008: the ticket's (redacted) service, a column so "what else fires on it" is an indexed lookup
    Column("service", String(200)),
    Index("ix_tickets_queue", "status", "priority", "created_at"),
    Index("ix_tickets_service", "service", "created_at"),
    Index("ix_tickets_route", "route", "created_at"),
)
# Per Slack channel: one replica posts to it at a time (a lease), and not before `ready_at` (Slack's pace, or
# the backoff after a failure, shared by all replicas).
lanes = Table(
    "lanes",
    meta,
    Column("channel", String(200), primary_key=True),
    Column("owner", String(100)),
    Column("lease_until", DateTime(timezone=True), nullable=False),
    Column("ready_at", DateTime(timezone=True), nullable=False),
    Column("tokens", Float, nullable=False),  # Slack's per-channel token bucket
    Column("tokens_at", DateTime(timezone=True), nullable=False),
    Column("delay_s", Float, nullable=False),  # doubles with each failure in a row; 0 after a success
)
threads = Table(
    "threads",
    meta,
    Column("thread", String(300), primary_key=True),  # the sender's incident: bot.models.SenderIncident
    Column("source", String(40), nullable=False),
    Column("state", JSON, nullable=False),
    Column("open", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_threads_source_open", "source", "open"),
)
feedback = Table(
    "feedback",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_key", String(300), nullable=False, index=True),
    Column("action", String(20), nullable=False),  # confirm | correct | reject
    Column("user_id", String(100), nullable=False),
    Column("labels", JSON),
    Column("fix", Text),
    Column("reason", Text),
    Column("fix_playbook", String(100)),  # 0006
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
)
modes = Table(  # the drafting mode, as a log: the newest row is in force (bot/watch/mode.py)
    "modes",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mode", String(40), nullable=False),
    Column("user_id", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
alerts = Table(  # the monitor's alert episodes (bot/watch/monitor.py)
    "alerts",
    meta,
    Column("name", String(300), primary_key=True),
    Column("open", Integer, nullable=False),
    Column("detail", Text),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
changes = Table(  # change events (bot/intake/changes/), one row per (source, id): a redelivery is a duplicate
    "changes",
    meta,
    Column("source", String(40), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("service", String(200), nullable=False),
    Column("kind", String(20), nullable=False),  # bot.models.ChangeKind
    Column("summary", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),  # when it happened, as its sender says
    Column("link", Text),
    Column("author", String(200)),
    Column("environment", String(200)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("ix_changes_service_at", "service", "at"),
    Index("ix_changes_at", "at"),  # retention
)
