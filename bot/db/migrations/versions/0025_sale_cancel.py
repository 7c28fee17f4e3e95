"""purchases: a sale staff cancelled (a mistake) is marked, with who cancelled it and when

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-26 07:00:00

A cancelled purchase is kept (the points ledger's entries, the survey, a package's or stamp's
line name it) but no longer counts anywhere: every ORM read of purchases leaves it out
(bot/db/sales.py). What it caused is undone in the cancelling transaction
(bot/services/sale_cancel.py).
"""

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancelled_at", bot.db.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("cancelled_by_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("cancelled_by_name", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_column("cancelled_by_name")
        batch_op.drop_column("cancelled_by_id")
        batch_op.drop_column("cancelled_at")
