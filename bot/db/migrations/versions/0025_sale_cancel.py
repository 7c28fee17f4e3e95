"""purchases: a sale staff cancelled (a mistake) is marked, with who cancelled it and when

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-26 07:00:00

A cancelled purchase is kept (the points ledger's entries, the survey, a package's or stamp's
line name it) but no longer counts anywhere: every ORM read of purchases leaves it out
(bot/db/sales.py). What it caused is undone in the cancelling transaction
(bot/services/sale_cancel.py). The two indexes purchases are read by carry the column, so that
"not cancelled" is checked in the index, and the reads stay index-only.
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
    # every read of purchases adds "not cancelled": the indexes the reads are served from carry
    # the column, so they still need no table row (an index-only scan, SQLite's covering index)
    op.drop_index("ix_purchases_customer_at", table_name="purchases")
    op.create_index(
        "ix_purchases_customer_at", "purchases", ["customer_id", "at", "id", "cancelled_at"]
    )
    op.drop_index("ix_purchases_at", table_name="purchases")
    op.create_index("ix_purchases_at", "purchases", ["at", "cancelled_at"])


def downgrade() -> None:
    op.drop_index("ix_purchases_at", table_name="purchases")
    op.create_index("ix_purchases_at", "purchases", ["at"])
    op.drop_index("ix_purchases_customer_at", table_name="purchases")
    op.create_index("ix_purchases_customer_at", "purchases", ["customer_id", "at", "id"])
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_column("cancelled_by_name")
        batch_op.drop_column("cancelled_by_id")
        batch_op.drop_column("cancelled_at")
