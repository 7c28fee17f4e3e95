"""referral_links and referrals: bring a friend (personal links, who brought whom)

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-26 06:00:00

`referral_links`: one random token per customer (`?start=ref_<token>`), made at their first
/card. `referrals`: one row per newcomer who came by a link and gave their phone: joined (the
friend's bonus credited), refused (a known phone, themselves, a loop) or rewarded (the friend
bought; the reward credited once). `phone_key` is a keyed fingerprint, unique: one bonus per
phone. /forget deletes the erased customer's link and unlinks them from the rows (NULL).
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

STATES = "state IN ('joined', 'refused', 'rewarded')"


def upgrade() -> None:
    op.create_table(
        "referral_links",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_referral_links_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_referral_links")),
        sa.UniqueConstraint("token", name=op.f("uq_referral_links_token")),
    )
    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=True),
        sa.Column("friend_id", sa.Integer(), nullable=True),
        sa.Column("phone_key", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("refused", sa.String(length=16), nullable=True),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
        sa.Column("bought_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(STATES, name=op.f("ck_referrals_state")),
        sa.ForeignKeyConstraint(
            ["referrer_id"], ["customers.id"], name=op.f("fk_referrals_referrer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["friend_id"], ["customers.id"], name=op.f("fk_referrals_friend_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint("friend_id", name=op.f("uq_referrals_friend_id")),
        sa.UniqueConstraint("phone_key", name=op.f("uq_referrals_phone_key")),
    )
    op.create_index("ix_referrals_referrer_id", "referrals", ["referrer_id"])
    op.create_index("ix_referrals_joined_at", "referrals", ["joined_at"])


def downgrade() -> None:
    op.drop_index("ix_referrals_joined_at", table_name="referrals")
    op.drop_index("ix_referrals_referrer_id", table_name="referrals")
    op.drop_table("referrals")
    op.drop_table("referral_links")
