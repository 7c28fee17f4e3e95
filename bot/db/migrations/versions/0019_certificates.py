"""certificates: gift certificates and their uses (append-only; the balance is the amount less them)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-26 05:10:00

A certificate is issued by staff for an amount (`/gift`), claimed by whoever opens its link first
(`customer_id`, `claimed_at`: one conditional update) and spent in parts with `/redeem`; each
spending is a row of `certificate_uses`, never an update of a balance, so the balance is always
the amount less the uses and two staff at once cannot spend it twice (the certificate's row is
locked while a use is checked and written). `for_name` is staff's free text about the person:
erasure blanks it with the owner link.
"""

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("for_name", sa.String(length=64), nullable=True),
        sa.Column("issued_by_id", sa.BigInteger(), nullable=False),
        sa.Column("issued_by_name", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("claimed_at", bot.db.models.UTCDateTime(), nullable=True),
        sa.Column("expires_at", bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("created_at", bot.db.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_certificates_amount_positive")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_certificates_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("code", name=op.f("uq_certificates_code")),
    )
    op.create_index(
        op.f("ix_certificates_customer_id"), "certificates", ["customer_id"], unique=False
    )
    op.create_table(
        "certificate_uses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("at", bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=False),
        sa.Column("staff_name", sa.String(length=128), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_certificate_uses_amount_positive")),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_certificate_uses_certificate_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_uses")),
    )
    op.create_index(
        op.f("ix_certificate_uses_certificate_id"),
        "certificate_uses",
        ["certificate_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_certificate_uses_certificate_id"), table_name="certificate_uses")
    op.drop_table("certificate_uses")
    op.drop_index(op.f("ix_certificates_customer_id"), table_name="certificates")
    op.drop_table("certificates")
