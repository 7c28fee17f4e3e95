"""points_requests: paying part of a sale with points, confirmed by the customer in their chat

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-26 05:40:00

Staff ask (a button under /sale's answer, or `/sale … points:N`); the customer confirms or
declines with one tap. A request is pending until then, or expired after its `expires_at`;
nothing is spent while it is pending (the ledger gets its spending entry at the confirmation,
in the same transaction that reduces the sale's amount). `amount_minor` keeps the sale's amount
as it was when asked: the original, once the sale is reduced.
"""

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

STATES = "state IN ('pending', 'confirmed', 'declined', 'expired')"


def upgrade() -> None:
    op.create_table(
        "points_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=False),
        sa.Column("staff_name", sa.String(length=128), nullable=False),
        sa.Column("created_at", bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("decided_at", bot.db.models.UTCDateTime(), nullable=True),
        sa.CheckConstraint("points > 0", name=op.f("ck_points_requests_points_positive")),
        sa.CheckConstraint(STATES, name=op.f("ck_points_requests_state")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_points_requests_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_points_requests_purchase_id_purchases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_requests")),
    )
    op.create_index(
        op.f("ix_points_requests_purchase_id"), "points_requests", ["purchase_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_points_requests_purchase_id"), table_name="points_requests")
    op.drop_table("points_requests")
