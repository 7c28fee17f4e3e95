"""stamps: the stamp card (`[loyalty.stamps]`), an append-only ledger per customer

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-26 07:00:00

One row per event of a customer's stamp card, never updated: `stamp` (a sale of a matching
service, `purchase_id`, unique: one stamp per sale), `reward` (the card completed: its stamps
used, the reward coupon issued, `coupon_id`), `withdrawn` (a stamp whose sale was cancelled,
`ref_id` the stamp) and `reopened` (a completion undone because its stamp was withdrawn while the
coupon was unused, `ref_id` the reward). `ref_id` is unique: a stamp is withdrawn once, a card
reopened once. The progress is a replay of the rows (bot/services/stamps.py). /forget deletes
the customer's rows.
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

KINDS = "kind IN ('stamp', 'reward', 'withdrawn', 'reopened')"


def upgrade() -> None:
    op.create_table(
        "stamps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=True),
        sa.Column("coupon_id", sa.Integer(), nullable=True),
        sa.Column("ref_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(KINDS, name=op.f("ck_stamps_kind")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_stamps_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_stamps_purchase_id_purchases")
        ),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["coupons.id"], name=op.f("fk_stamps_coupon_id_coupons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stamps")),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_stamps_purchase_id")),
        sa.UniqueConstraint("coupon_id", name=op.f("uq_stamps_coupon_id")),
        sa.UniqueConstraint("ref_id", name=op.f("uq_stamps_ref_id")),
    )
    op.create_index("ix_stamps_customer", "stamps", ["customer_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_stamps_customer", table_name="stamps")
    op.drop_table("stamps")
