"""sales_days and cohort_months: /stats's sums of closed local days and months

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-26 04:50:00

`/stats` over three years passed over a million sales (first or repeat, the gap since the
previous visit) and grouped them by customer and month for the cohorts: 4-7 s. Purchases are
only ever added (a staff sale at now, an import of visits, which may be in the past), so a day or
a month that is over keeps its numbers until an import adds visits in it or before it (that
import deletes the rows from its earliest visit's day on). The planner tick fills them oldest
first; `/stats` sums them and counts only the rest live. Counts and sums only, nothing about a
person: erasure (/forget) has nothing to reach in them. Empty after the upgrade.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sales_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sales", sa.Integer(), nullable=False),
        sa.Column("firsts", sa.Integer(), nullable=False),
        sa.Column("money_minor", sa.BigInteger(), nullable=False),
        sa.Column("first_minor", sa.BigInteger(), nullable=False),
        sa.Column("gaps", sa.Integer(), nullable=False),
        sa.Column("gap_days", sa.Float(), nullable=False),
        sa.Column("counted_to", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_sales_days")),
    )
    op.create_table(
        "cohort_months",
        sa.Column("cohort", sa.Date(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("returned", sa.Integer(), nullable=False),
        sa.Column("money_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cohort", "month", name=op.f("pk_cohort_months")),
    )
    op.create_index("ix_cohort_months_month", "cohort_months", ["month"])


def downgrade() -> None:
    op.drop_index("ix_cohort_months_month", table_name="cohort_months")
    op.drop_table("cohort_months")
    op.drop_table("sales_days")
