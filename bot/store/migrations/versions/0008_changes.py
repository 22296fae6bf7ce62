"""Why now: change events (deploys, configuration, flags, models, infrastructure) per service, and each ticket's
service as a column, both indexed by service and time so the lookups on the posting path stay cheap.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("source", sa.String(40), primary_key=True),
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("link", sa.Text, nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("environment", sa.String(200), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_changes_service_at", "changes", ["service", "at"])
    op.create_index("ix_changes_at", "changes", ["at"])
    op.add_column("tickets", sa.Column("service", sa.String(200), nullable=True))
    # Tickets stored before: their service from the stored (redacted) ticket.
    tickets = sa.table("tickets", sa.column("service", sa.String), sa.column("ticket", sa.JSON),
                       sa.column("kind", sa.String))  # fmt: skip
    op.execute(
        sa.update(tickets)
        .where(sa.or_(tickets.c.kind.is_(None), tickets.c.kind == "ticket"))
        .values(service=tickets.c.ticket["service"].as_string())
    )
    op.create_index("ix_tickets_service", "tickets", ["service", "created_at"])
    op.create_index("ix_tickets_route", "tickets", ["route", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_tickets_route", "tickets")
    op.drop_index("ix_tickets_service", "tickets")
    op.drop_column("tickets", "service")
    op.drop_index("ix_changes_at", "changes")
    op.drop_index("ix_changes_service_at", "changes")
    op.drop_table("changes")
