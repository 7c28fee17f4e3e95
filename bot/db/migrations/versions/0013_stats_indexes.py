"""the index /stats reads purchases by (purchases.customer_id, at, id)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 04:00:00

`/stats` asks, for each sale of a period, for the customer's purchase just before it (is the
sale their first? how long since the previous visit?), and for each customer, their first
purchase: one index seek each on (customer_id, at, id) instead of ranking every purchase ever
made (40-60 s on a million purchases before this index, see bench/stats.py). The id is in it
because two sales at the same moment are ordered by it.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_purchases_customer_at", "purchases", ["customer_id", "at", "id"])


def downgrade() -> None:
    op.drop_index("ix_purchases_customer_at", table_name="purchases")
