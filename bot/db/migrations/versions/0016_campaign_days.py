"""campaign_days: what each campaign's arm brought, per local day of assignment, for closed days

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 04:55:00

`/stats campaigns` over three years sought every assigned customer's purchases (about 1.5
million seeks, 9.5 s on SQLite). A day whose window (the day plus `[campaigns] window_days`) has
passed no longer changes, so its counts are kept here by the planner tick and the report sums
them; only the last window's days are counted live. Counts only, nothing personal: erasure has
nothing to reach in it. Empty after the upgrade: the planner fills the past, 30 days a run.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_days",
        sa.Column("campaign", sa.String(length=40), nullable=False),
        sa.Column("arm", sa.String(length=8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("redeemed", sa.Integer(), nullable=False),
        sa.Column("came_back", sa.Integer(), nullable=False),
        sa.Column("revenue_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "arm", "day", name=op.f("pk_campaign_days")),
    )
    op.create_index("ix_campaign_days_day", "campaign_days", ["day"])


def downgrade() -> None:
    op.drop_index("ix_campaign_days_day", table_name="campaign_days")
    op.drop_table("campaign_days")
