"""Sender incidents and their occurrences (`threads`), and thread replies stored as tickets of kind `update`.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("thread", sa.String(300), primary_key=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("open", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_threads_source_open", "threads", ["source", "open"])
    op.add_column("tickets", sa.Column("kind", sa.String(20), nullable=True))


def downgrade() -> None:
    op.drop_column("tickets", "kind")
    op.drop_index("ix_threads_source_open", "threads")
    op.drop_table("threads")
