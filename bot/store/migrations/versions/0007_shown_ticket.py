"""The ticket as people see it (redacted unless configured otherwise), made once at intake: posts, replies,
storm listings and redraws read it instead of redacting the ticket again.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("shown", sa.JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("tickets", "shown")
