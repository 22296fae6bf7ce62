"""Tickets whose labelled incident could not be written to the history yet (history store down).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("history_pending", sa.Integer, nullable=True))
    op.create_index("ix_tickets_history_pending", "tickets", ["history_pending"])


def downgrade() -> None:
    op.drop_index("ix_tickets_history_pending", "tickets")
    op.drop_column("tickets", "history_pending")
