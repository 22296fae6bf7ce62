"""Stateless replicas: the work queue's priority, retry time and leases on tickets, the per-channel lanes
(lease, pace, backoff), and storm state (each posted incident's embedding and when it was last seen).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = [
    sa.Column("priority", sa.Integer, nullable=False, server_default="1"),
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("storm_vector", sa.LargeBinary, nullable=True),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
    sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
]


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("tickets", column)
    op.create_index("ix_tickets_queue", "tickets", ["status", "priority", "created_at"])
    op.create_table(
        "lanes",
        sa.Column("channel", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("tokens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delay_s", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lanes")
    op.drop_index("ix_tickets_queue", "tickets")
    for column in reversed(COLUMNS):
        op.drop_column("tickets", column.name)
