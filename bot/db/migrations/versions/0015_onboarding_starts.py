"""onboarding_starts: newcomers' /start counted per local day and deep-link source

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 04:40:00

The funnel's "started" step: nothing about a newcomer is stored before the data-consent button,
so those who pressed /start and left at the consent question were invisible. This table keeps
only counts (the business's local day, the `src_…` source or "" for none, how many), no user id
and nothing personal, so it needs no consent and erasure has nothing to reach in it. Days before
this revision have no rows: the funnel shows "started" as at least "consented".
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "onboarding_starts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=48), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "source", name=op.f("pk_onboarding_starts")),
    )


def downgrade() -> None:
    op.drop_table("onboarding_starts")
