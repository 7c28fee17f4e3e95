"""consents say how they were given; the privacy version each customer agreed to; imported
customers and visits; destruction records

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 01:00:00

Consents recorded before this revision say `legacy` for how. Each customer's
`data_consent_version` is backfilled from their latest personal-data consent, if it granted.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The values as of this revision (bot/db/models.py's StrEnums may grow; a later migration follows).
CONSENT_KINDS = ("personal_data", "marketing")
CONSENT_VIA = ("button", "stop", "unsubscribe", "forget", "import", "legacy")
ERASURE_REASONS = ("forget", "retention")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    allowed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({allowed})"


def upgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.add_column(
            sa.Column("via", sa.String(length=16), nullable=False, server_default="legacy")
        )
    with op.batch_alter_table("consents") as batch:
        batch.alter_column("via", server_default=None)
        batch.create_check_constraint(op.f("ck_consents_kind"), _one_of("kind", CONSENT_KINDS))
        batch.create_check_constraint(op.f("ck_consents_via"), _one_of("via", CONSENT_VIA))
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("data_consent_version", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("imported_at", sa.DateTime(), nullable=True))
    op.execute(
        """
        UPDATE customers SET data_consent_version = (
            SELECT c.version FROM consents c
            WHERE c.customer_id = customers.id AND c.kind = 'personal_data'
            ORDER BY c.at DESC, c.id DESC LIMIT 1
        )
        WHERE erased_at IS NULL AND (
            SELECT c.granted FROM consents c
            WHERE c.customer_id = customers.id AND c.kind = 'personal_data'
            ORDER BY c.at DESC, c.id DESC LIMIT 1
        )
        """
    )
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("import_key", sa.String(length=80), nullable=True))
        batch.create_unique_constraint(op.f("uq_purchases_import_key"), ["import_key"])
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(_one_of("reason", ERASURE_REASONS), name=op.f("ck_erasures_reason")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_index(op.f("ix_erasures_customer_id"), "erasures", ["customer_id"])
    op.create_index(op.f("ix_erasures_at"), "erasures", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_erasures_at"), table_name="erasures")
    op.drop_index(op.f("ix_erasures_customer_id"), table_name="erasures")
    op.drop_table("erasures")
    with op.batch_alter_table("purchases") as batch:
        batch.drop_constraint(op.f("uq_purchases_import_key"), type_="unique")
        batch.drop_column("import_key")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("imported_at")
        batch.drop_column("data_consent_version")
    with op.batch_alter_table("consents") as batch:
        batch.drop_constraint(op.f("ck_consents_via"), type_="check")
        batch.drop_constraint(op.f("ck_consents_kind"), type_="check")
        batch.drop_column("via")
