"""waitlist_entries and waitlist_offers: the waitlist that fills freed times

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-26 07:30:00

`waitlist_entries`: a customer waiting for a time: a service, a master or any (NULL), local days
[first_day, last_day], and optionally a time of day (`from_minute`, `to_minute`: minutes after
local midnight). Deleted when left, booked through an offer, or past its last day.
`waitlist_offers`: a freed time offered to one waiting customer (offered, taken, gone); unique
per customer and time, so the next round goes to the next ones; `answer_by` ends the round.
/forget deletes the customer's rows of both.
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

STATES = "state IN ('offered', 'taken', 'gone')"


def upgrade() -> None:
    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.String(length=32), nullable=False),
        sa.Column("master_id", sa.String(length=32), nullable=True),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("from_minute", sa.Integer(), nullable=True),
        sa.Column("to_minute", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_waitlist_entries_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
    )
    op.create_index(
        "ix_waitlist_entries_customer_id", "waitlist_entries", ["customer_id"], unique=False
    )
    op.create_index(
        "ix_waitlist_entries_service_days", "waitlist_entries", ["service_id", "last_day"]
    )
    op.create_table(
        "waitlist_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("service_id", sa.String(length=32), nullable=False),
        sa.Column("master_id", sa.String(length=32), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("offered_at", sa.DateTime(), nullable=False),
        sa.Column("answer_by", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.CheckConstraint(STATES, name=op.f("ck_waitlist_offers_state")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_waitlist_offers_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["waitlist_entries.id"],
            name=op.f("fk_waitlist_offers_entry_id_waitlist_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_offers")),
        sa.UniqueConstraint(
            "customer_id", "master_id", "starts_at", name=op.f("uq_waitlist_offers_customer_id")
        ),
    )
    op.create_index("ix_waitlist_offers_customer_id", "waitlist_offers", ["customer_id"])
    op.create_index("ix_waitlist_offers_entry_id", "waitlist_offers", ["entry_id"])
    op.create_index("ix_waitlist_offers_slot", "waitlist_offers", ["master_id", "starts_at"])


def downgrade() -> None:
    op.drop_index("ix_waitlist_offers_slot", table_name="waitlist_offers")
    op.drop_index("ix_waitlist_offers_entry_id", table_name="waitlist_offers")
    op.drop_index("ix_waitlist_offers_customer_id", table_name="waitlist_offers")
    op.drop_table("waitlist_offers")
    op.drop_index("ix_waitlist_entries_service_days", table_name="waitlist_entries")
    op.drop_index("ix_waitlist_entries_customer_id", table_name="waitlist_entries")
    op.drop_table("waitlist_entries")
