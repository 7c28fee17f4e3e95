"""loyalty_tiers: each customer's current club tier, since when, and a warned drop's date

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-26 05:45:00

One row per customer in a tier (bot/services/tiers.py); the daily planner moves them up at once
(congratulated) and down a month after a warning (`drops_at`), unless they qualify again.
"""

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loyalty_tiers",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("since", bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("drops_at", bot.db.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_loyalty_tiers_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_loyalty_tiers")),
    )


def downgrade() -> None:
    op.drop_table("loyalty_tiers")
