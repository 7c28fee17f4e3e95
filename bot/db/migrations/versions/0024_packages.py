"""packages: prepaid packages (абонементы) customers bought, and the visits each one paid

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-26 07:10:00

`packages`: one row per package sold with `/sale … package:<name>` (`[[loyalty.packages]]`):
its name and service, how many visits it holds and how many were used (`used`, moved by a
conditional update, so two staff at once use one visit once; a CHECK keeps it within 0 and
`visits`), the price charged, the sale that bought it (unique), when it expires (NULL: never) and when it
was withdrawn (its sale cancelled before any visit used it).
`package_visits`: one row per visit a package paid (the visit's sale, unique, recorded with
amount 0); a cancelled visit's row is deleted and its visit given back. /forget deletes the
customer's rows of both.
"""

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "packages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("service_id", sa.String(length=32), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False),
        sa.Column("sold_at", bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", bot.db.models.UTCDateTime(), nullable=True),
        sa.Column("withdrawn_at", bot.db.models.UTCDateTime(), nullable=True),
        sa.CheckConstraint("visits >= 1", name=op.f("ck_packages_visits_positive")),
        sa.CheckConstraint("used >= 0 AND used <= visits", name=op.f("ck_packages_used_within")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_packages_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_packages_purchase_id_purchases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packages")),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_packages_purchase_id")),
    )
    op.create_index("ix_packages_customer_service", "packages", ["customer_id", "service_id"])
    op.create_index(op.f("ix_packages_expires_at"), "packages", ["expires_at"])
    op.create_table(
        "package_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False),
        sa.Column("at", bot.db.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"], ["packages.id"], name=op.f("fk_package_visits_package_id_packages")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_package_visits_purchase_id_purchases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_package_visits")),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_package_visits_purchase_id")),
    )
    op.create_index(op.f("ix_package_visits_package_id"), "package_visits", ["package_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_package_visits_package_id"), table_name="package_visits")
    op.drop_table("package_visits")
    op.drop_index(op.f("ix_packages_expires_at"), table_name="packages")
    op.drop_index("ix_packages_customer_service", table_name="packages")
    op.drop_table("packages")
