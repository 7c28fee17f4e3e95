"""business_connections, business_chats, business_messages: Telegram Business

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-26 07:40:00

`business_connections`: each Telegram Business account that connected the bot (its owner, the
rights the owner gave, on or off), updated by every `business_connection` update.
`business_chats`: a customer's chat with a connected account: the account they last wrote to and
when (the bot may answer there for 24 hours after), their card when found by their phone.
`business_messages`: the messages of those chats as Telegram numbers them (to follow edits and
deletions), each pointing at its care-history row, which holds the words. /forget deletes a
customer's rows of the last two.
"""

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "business_connections",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("owner_user_id", sa.BigInteger(), nullable=False),
        sa.Column("owner_name", sa.String(length=256), nullable=False),
        sa.Column("rights", sa.JSON(), nullable=False),
        sa.Column("can_reply", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("connected_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_connections")),
    )
    op.create_index(
        "ix_business_connections_owner_user_id",
        "business_connections",
        ["owner_user_id"],
        unique=False,
    )
    op.create_table(
        "business_chats",
        sa.Column("tg_user_id", sa.BigInteger(), nullable=False),
        sa.Column("connection_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("last_in_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_business_chats_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("tg_user_id", name=op.f("pk_business_chats")),
    )
    op.create_index(
        "ix_business_chats_customer_id", "business_chats", ["customer_id"], unique=False
    )
    op.create_table(
        "business_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=128), nullable=False),
        sa.Column("tg_user_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("care_id", sa.Integer(), nullable=True),
        sa.Column("from_owner", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("edited_at", sa.DateTime(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_business_messages_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_messages")),
        sa.UniqueConstraint(
            "connection_id",
            "tg_user_id",
            "message_id",
            name=op.f("uq_business_messages_connection_id"),
        ),
    )
    op.create_index(
        "ix_business_messages_tg_user_id", "business_messages", ["tg_user_id"], unique=False
    )
    op.create_index(
        "ix_business_messages_customer_id", "business_messages", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("business_messages")
    op.drop_table("business_chats")
    op.drop_table("business_connections")
