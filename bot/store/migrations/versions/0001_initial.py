"""Tickets and feedback, as the bot stored them before schema versions.

A database made by the old `create_all` (with or without the columns added later) is adopted: what is missing
is added, nothing is touched.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tickets() -> list[sa.Column]:
    return [
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("ticket", sa.JSON, nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("route", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("message_ts", sa.String(40)),
        sa.Column("parent_key", sa.String(300)),
        sa.Column("group_count", sa.Integer),
        sa.Column("draft", sa.JSON),
        sa.Column("resolution", sa.Text),
        sa.Column("resolved", sa.Integer),
        sa.Column("attempts", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    insp = sa.inspect(op.get_bind())
    if not insp.has_table("tickets"):
        op.create_table("tickets", *_tickets())
        op.create_index("ix_tickets_status", "tickets", ["status"])
        op.create_index("ix_tickets_parent_key", "tickets", ["parent_key"])
    else:
        have = {c["name"] for c in insp.get_columns("tickets")}
        for col in _tickets():
            if col.name not in have:
                op.add_column("tickets", sa.Column(col.name, col.type, nullable=True))
    if not insp.has_table("feedback"):
        op.create_table(
            "feedback",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("ticket_key", sa.String(300), nullable=False),
            sa.Column("action", sa.String(20), nullable=False),
            sa.Column("user_id", sa.String(100), nullable=False),
            sa.Column("labels", sa.JSON),
            sa.Column("fix", sa.Text),
            sa.Column("reason", sa.Text),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
        op.create_index("ix_feedback_ticket_key", "feedback", ["ticket_key"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("tickets")
