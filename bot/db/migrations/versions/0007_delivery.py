"""one delivery path: relays and staff replies are outbox rows

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 19:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A coalesced relay or a staff reply with formatting can be longer than 4,096 characters of
    # HTML while its visible text fits Telegram's limit.
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("text", type_=sa.Text(), existing_type=sa.String(length=4096))
    # Relays and staff replies are claimed before anything else: found by kind, not by sorting.
    op.create_index("ix_outbox_kind_state_due", "outbox", ["kind", "state", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_kind_state_due", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("text", type_=sa.String(length=4096), existing_type=sa.Text())
