"""loyalty_entries.bonus_key: a bonus credited once per its key (a birthday's, once a year);
points_requests: the planner's seek for requests left unanswered

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-26 07:10:00

The birthday bonus (`[loyalty.cashback] birthday_bonus`) is credited with the greeting, keyed
`birthday:<customer>:<year>`: the unique index makes "once a year" a database fact, whatever
planner ticks, restarts or a second sender do. Other entries have none (NULL: not unique).
A pending request to pay with points past its expiry is closed by a planner that tells the staff
who asked (bot/services/points_pay.py); the partial index finds them without reading the rest.
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("loyalty_entries", sa.Column("bonus_key", sa.String(length=64), nullable=True))
    op.create_index("uq_loyalty_entries_bonus_key", "loyalty_entries", ["bonus_key"], unique=True)
    op.create_index(
        "ix_points_requests_pending",
        "points_requests",
        ["expires_at"],
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_points_requests_pending", table_name="points_requests")
    op.drop_index("uq_loyalty_entries_bonus_key", table_name="loyalty_entries")
    with op.batch_alter_table("loyalty_entries", schema=None) as batch_op:
        batch_op.drop_column("bonus_key")
