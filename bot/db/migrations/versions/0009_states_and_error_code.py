"""states and kinds the database checks; why an outbox row will never go as a code

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 00:00:00

`outbox.error_code` is filled for the rows already closed, from the words `last_error` held
(broadcast progress told a block by their first three characters until now).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The values as of this revision (bot/db/models.py's StrEnums may grow; a later migration follows).
OUTBOX_STATES = ("pending", "sending", "sent", "failed", "skipped", "expired")
OUTBOX_KINDS = ("service", "marketing", "relay")
OUTBOX_ERRORS = (
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
BOOKING_STATES = ("pending", "confirmed", "declined", "cancelled", "done", "no_show")
BOOKING_SOURCES = ("offer", "menu", "reschedule")
BROADCAST_STATES = ("scheduled", "sending", "done", "cancelled")
CARE_DIRECTIONS = ("in", "out")

# Closed rows, from their words to their code (first match wins).
BACKFILL = (
    ("state = 'failed' AND last_error LIKE '403%'", "blocked"),
    ("state = 'failed' AND last_error LIKE 'gave up:%'", "gave_up"),
    ("state = 'failed'", "refused"),
    ("state = 'expired'", "late"),
    (
        "state = 'skipped' AND last_error IN ('blocked', 'erased', 'opted_out', 'no_marketing', 'cancelled')",
        "last_error",
    ),
    ("state = 'skipped' AND last_error = 'late'", "late"),
    ("state = 'skipped'", "obsolete"),
)


def _one_of(column: str, values: tuple[str, ...], nullable: bool = False) -> str:
    allowed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({allowed})" + (f" OR {column} IS NULL" if nullable else "")


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("error_code", sa.String(length=16), nullable=True))
    for condition, code in BACKFILL:
        value = code if code == "last_error" else f"'{code}'"
        op.execute(
            f"UPDATE outbox SET error_code = {value} WHERE error_code IS NULL AND {condition}"
        )
    with op.batch_alter_table("outbox") as batch:
        batch.create_check_constraint(op.f("ck_outbox_state"), _one_of("state", OUTBOX_STATES))
        batch.create_check_constraint(op.f("ck_outbox_kind"), _one_of("kind", OUTBOX_KINDS))
        batch.create_check_constraint(
            op.f("ck_outbox_error_code"), _one_of("error_code", OUTBOX_ERRORS, True)
        )
    with op.batch_alter_table("bookings") as batch:
        batch.create_check_constraint(op.f("ck_bookings_state"), _one_of("state", BOOKING_STATES))
        batch.create_check_constraint(
            op.f("ck_bookings_source"), _one_of("source", BOOKING_SOURCES)
        )
    with op.batch_alter_table("broadcasts") as batch:
        batch.create_check_constraint(
            op.f("ck_broadcasts_state"), _one_of("state", BROADCAST_STATES)
        )
    with op.batch_alter_table("care_messages") as batch:
        batch.create_check_constraint(
            op.f("ck_care_messages_direction"), _one_of("direction", CARE_DIRECTIONS)
        )


def downgrade() -> None:
    with op.batch_alter_table("care_messages") as batch:
        batch.drop_constraint(op.f("ck_care_messages_direction"), type_="check")
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_constraint(op.f("ck_broadcasts_state"), type_="check")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_constraint(op.f("ck_bookings_source"), type_="check")
        batch.drop_constraint(op.f("ck_bookings_state"), type_="check")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("ck_outbox_error_code"), type_="check")
        batch.drop_constraint(op.f("ck_outbox_kind"), type_="check")
        batch.drop_constraint(op.f("ck_outbox_state"), type_="check")
        batch.drop_column("error_code")
