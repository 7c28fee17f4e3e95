"""campaigns and their arms on outbox rows (outbox.campaign, outbox.arm), the winners table

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 04:00:00

Each automatic message or broadcast row records which campaign it belongs to and the arm its
customer fell into ("a", "b" or "holdout"), so `/stats campaigns` is reproducible; a held-out
row is written, skipped at once with error_code "holdout", and never sent. Rows before this
revision have no campaign (they are not counted). `campaign_winners` keeps the variant the owner
made a campaign's default. The index on (created_at, campaign, …) of the campaigns' rows only
covers what the campaign report reads of a period, so it never visits the table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# The codes as of 0009, and with this revision's (tests/unit/test_states.py reads the newest).
BEFORE = (
    "blocked",
    "erased",
    "opted_out",
    "no_marketing",
    "late",
    "cancelled",
    "obsolete",
    "refused",
    "gave_up",
)
OUTBOX_ERRORS = (*BEFORE, "holdout")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    allowed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({allowed}) OR {column} IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("campaign", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("arm", sa.String(length=8), nullable=True))
        batch.drop_constraint(op.f("ck_outbox_error_code"), type_="check")
        batch.create_check_constraint(
            op.f("ck_outbox_error_code"), _one_of("error_code", OUTBOX_ERRORS)
        )
        batch.create_index(
            "ix_outbox_campaign_created",
            ["created_at", "campaign", "customer_id", "arm", "state", "coupon_id"],
            sqlite_where=sa.text("campaign IS NOT NULL"),
            postgresql_where=sa.text("campaign IS NOT NULL"),
        )
    op.create_table(
        "campaign_winners",
        sa.Column("campaign", sa.String(length=40), nullable=False),
        sa.Column("arm", sa.String(length=8), nullable=False),
        sa.Column("chosen_at", sa.DateTime(), nullable=False),
        sa.Column("chosen_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("campaign", name=op.f("pk_campaign_winners")),
    )


def downgrade() -> None:
    op.drop_table("campaign_winners")
    op.execute("DELETE FROM outbox WHERE error_code = 'holdout'")  # never sent: nothing lost
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_campaign_created")
        batch.drop_constraint(op.f("ck_outbox_error_code"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_error_code"), _one_of("error_code", BEFORE))
        batch.drop_column("arm")
        batch.drop_column("campaign")
