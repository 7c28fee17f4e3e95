"""a consent can end by the owner's retention period (consents.via 'retention')

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 01:00:00

A customer inactive for the business file's `[retention] inactive_customers_years` is erased as
`/forget` erases; their consents end with that, recorded as `via = 'retention'` (they did not
withdraw them themselves).
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BEFORE = ("button", "stop", "unsubscribe", "forget", "import", "legacy")
AFTER = (*BEFORE, "retention")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    allowed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({allowed})"


def _check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("consents") as batch:
        batch.drop_constraint(op.f("ck_consents_via"), type_="check")
    with op.batch_alter_table("consents") as batch:
        batch.create_check_constraint(op.f("ck_consents_via"), _one_of("via", values))


def upgrade() -> None:
    _check(AFTER)


def downgrade() -> None:
    op.execute("UPDATE consents SET via = 'forget' WHERE via = 'retention'")
    _check(BEFORE)
