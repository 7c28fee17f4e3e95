"""care chat, purchases, notes, staff audit

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 01:46:00.198329
"""

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "care_topics",
        sa.Column("tg_user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("created_at", bot.db.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tg_user_id", name=op.f("pk_care_topics")),
    )
    with op.batch_alter_table("care_topics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_care_topics_thread_id"), ["thread_id"], unique=False)

    op.create_table(
        "care_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tg_user_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("admin_message_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=4096), nullable=True),
        sa.Column("staff_id", sa.BigInteger(), nullable=True),
        sa.Column("at", bot.db.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_care_messages_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_messages")),
    )
    with op.batch_alter_table("care_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_care_messages_admin_message_id"), ["admin_message_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_care_messages_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_care_messages_tg_user_id"), ["tg_user_id"], unique=False
        )

    op.create_table(
        "purchases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("service_id", sa.String(length=32), nullable=True),
        sa.Column("master_id", sa.String(length=32), nullable=True),
        sa.Column("at", bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=True),
        sa.Column("staff_name", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_purchases_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
    )
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purchases_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_purchases_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "staff_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=False),
        sa.Column("staff_name", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_staff_actions_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_actions")),
    )
    with op.batch_alter_table("staff_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_actions_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_staff_actions_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "staff_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=False),
        sa.Column("staff_name", sa.String(length=128), nullable=False),
        sa.Column("at", bot.db.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_staff_notes_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_notes")),
    )
    with op.batch_alter_table("staff_notes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_notes_customer_id"), ["customer_id"], unique=False
        )

    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redeemed_by_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("redeemed_by_name", sa.String(length=128), nullable=True))

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_folded", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("blocked_at", bot.db.models.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_customers_name_folded"), ["name_folded"], unique=False)

    op.execute("UPDATE customers SET name_folded = lower(name) WHERE name IS NOT NULL")


def downgrade() -> None:

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_name_folded"))
        batch_op.drop_column("blocked_at")
        batch_op.drop_column("name_folded")

    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_column("redeemed_by_name")
        batch_op.drop_column("redeemed_by_id")

    with op.batch_alter_table("staff_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_notes_customer_id"))

    op.drop_table("staff_notes")
    with op.batch_alter_table("staff_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_actions_customer_id"))
        batch_op.drop_index(batch_op.f("ix_staff_actions_at"))

    op.drop_table("staff_actions")
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchases_customer_id"))
        batch_op.drop_index(batch_op.f("ix_purchases_at"))

    op.drop_table("purchases")
    with op.batch_alter_table("care_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_care_messages_tg_user_id"))
        batch_op.drop_index(batch_op.f("ix_care_messages_customer_id"))
        batch_op.drop_index(batch_op.f("ix_care_messages_admin_message_id"))

    op.drop_table("care_messages")
    with op.batch_alter_table("care_topics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_care_topics_thread_id"))

    op.drop_table("care_topics")
