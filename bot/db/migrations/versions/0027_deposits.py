"""deposits and deposit_marks: deposits through Telegram Payments; bookings may be held

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-26 07:00:00

`bookings.state` may be `held`: the time is held (its cells taken, as any booking's) while the
customer pays the deposit. `deposits`: one per booking that asks one: the amount, the hold's
end, the invoice's payload (`token`), and the payment when it came (Telegram's charge id, unique,
and the provider's); awaiting, expired, paid, counted (into the visit's sale), kept (a late
cancellation, a no-show) or refund_due. /forget unlinks the customer (NULL) and keeps the money
record. `deposit_marks`: customers staff marked "only with deposit"; /forget deletes theirs.
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

BOOKING_STATES = ("pending", "confirmed", "declined", "cancelled", "done", "no_show", "held")
BEFORE = BOOKING_STATES[:-1]  # what 0009 checks: a downgrade goes back to it
DEPOSIT_STATES = "state IN ('awaiting', 'expired', 'paid', 'counted', 'kept', 'refund_due')"


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_constraint(op.f("ck_bookings_state"), type_="check")
        batch.create_check_constraint(op.f("ck_bookings_state"), _one_of("state", BOOKING_STATES))
    op.create_table(
        "deposits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("service_id", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("hold_until", sa.DateTime(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("paid_at", sa.DateTime(), nullable=True),
        sa.Column("paid_minor", sa.BigInteger(), nullable=True),
        sa.Column("telegram_charge_id", sa.String(length=128), nullable=True),
        sa.Column("provider_charge_id", sa.String(length=128), nullable=True),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("purchase_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(DEPOSIT_STATES, name=op.f("ck_deposits_state")),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_deposits_amount_positive")),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_deposits_booking_id_bookings")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_deposits_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_deposits_purchase_id_purchases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deposits")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_deposits_booking_id")),
        sa.UniqueConstraint("token", name=op.f("uq_deposits_token")),
        sa.UniqueConstraint("telegram_charge_id", name=op.f("uq_deposits_telegram_charge_id")),
    )
    op.create_index("ix_deposits_customer_id", "deposits", ["customer_id"])
    op.create_index("ix_deposits_state_hold", "deposits", ["state", "hold_until"])
    op.create_table(
        "deposit_marks",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=False),
        sa.Column("staff_name", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_deposit_marks_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_deposit_marks")),
    )


def downgrade() -> None:
    op.drop_table("deposit_marks")
    op.drop_index("ix_deposits_state_hold", table_name="deposits")
    op.drop_index("ix_deposits_customer_id", table_name="deposits")
    op.drop_table("deposits")
    # a held time is let go: its booking is a cancelled one (its cells freed)
    op.execute(
        "DELETE FROM booking_cells WHERE booking_id IN (SELECT id FROM bookings WHERE state = 'held')"
    )
    op.execute("UPDATE bookings SET state = 'cancelled', reason = 'unpaid' WHERE state = 'held'")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_constraint(op.f("ck_bookings_state"), type_="check")
        batch.create_check_constraint(op.f("ck_bookings_state"), _one_of("state", BEFORE))
