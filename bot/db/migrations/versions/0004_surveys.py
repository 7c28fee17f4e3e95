"""surveys

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 02:28:32.094817
"""

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.String(length=32), nullable=True),
        sa.Column("master_id", sa.String(length=32), nullable=True),
        sa.Column("planned_at", bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("closes_at", bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("answered_at", bot.db.models.UTCDateTime(), nullable=True),
        sa.Column("comment", sa.String(length=2000), nullable=True),
        sa.Column("alert_message_id", sa.Integer(), nullable=True),
        sa.Column("resolved_at", bot.db.models.UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_surveys_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_surveys_purchase_id_purchases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_surveys_purchase_id")),
    )
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_surveys_answered_at"), ["answered_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_surveys_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_surveys_planned_at"), ["planned_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_surveys_planned_at"))
        batch_op.drop_index(batch_op.f("ix_surveys_customer_id"))
        batch_op.drop_index(batch_op.f("ix_surveys_answered_at"))

    op.drop_table("surveys")
