"""The fleet-wide drafting mode (a log: the newest row is in force), the monitor's alert episodes, and each post's
verdict line (kept with the ticket, no longer in one process's memory).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "modes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("mode", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("open", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])
    op.add_column("tickets", sa.Column("status_line", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("tickets", "status_line")
    op.drop_index("ix_feedback_created_at", "feedback")
    op.drop_table("alerts")
    op.drop_table("modes")
