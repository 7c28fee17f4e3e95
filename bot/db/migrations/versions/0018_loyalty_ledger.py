"""loyalty_entries: the points ledger (cashback accruals, spending, expiry, staff corrections)

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-26 05:10:00

Append-only: a balance is the sum of a customer's `points`, never a stored number that two
writers could both overwrite. An expiry entry names the accrual it closes (`accrual_id`, unique),
so the expiry planner settles each accrual once. Erasure (/forget) deletes a customer's rows.
Empty after the upgrade: sales before it earned nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

KINDS = "kind IN ('accrual', 'spending', 'expiry', 'correction')"


def upgrade() -> None:
    op.create_table(
        "loyalty_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("accrual_id", sa.Integer(), nullable=True),
        sa.Column("staff_id", sa.BigInteger(), nullable=True),
        sa.Column("staff_name", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(KINDS, name=op.f("ck_loyalty_entries_kind")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_loyalty_entries_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_loyalty_entries_purchase_id_purchases"),
        ),
        sa.ForeignKeyConstraint(
            ["accrual_id"],
            ["loyalty_entries.id"],
            name=op.f("fk_loyalty_entries_accrual_id_loyalty_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_entries")),
        sa.UniqueConstraint("accrual_id", name=op.f("uq_loyalty_entries_accrual_id")),
    )
    op.create_index("ix_loyalty_entries_customer", "loyalty_entries", ["customer_id", "id"])
    op.create_index(
        "ix_loyalty_entries_expiring",
        "loyalty_entries",
        ["expires_at"],
        sqlite_where=sa.text("kind = 'accrual'"),
        postgresql_where=sa.text("kind = 'accrual'"),
    )
    op.create_index(
        "uq_loyalty_entries_accrual_purchase",
        "loyalty_entries",
        ["purchase_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'accrual'"),
        postgresql_where=sa.text("kind = 'accrual'"),
    )


def downgrade() -> None:
    op.drop_index("uq_loyalty_entries_accrual_purchase", table_name="loyalty_entries")
    op.drop_index("ix_loyalty_entries_expiring", table_name="loyalty_entries")
    op.drop_index("ix_loyalty_entries_customer", table_name="loyalty_entries")
    op.drop_table("loyalty_entries")
