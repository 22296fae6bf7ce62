"""The playbook an engineer's fix maps to, kept with the verdict: the LLM's playbook pick is measured against it
by every replica without mapping old fixes again.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("fix_playbook", sa.String(100), nullable=True))


def downgrade() -> None:
    op.drop_column("feedback", "fix_playbook")
