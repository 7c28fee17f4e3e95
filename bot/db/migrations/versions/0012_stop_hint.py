"""when a customer was first told how to stop offers (customers.stop_hint_at)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 01:10:00

The first marketing message a customer receives carries one line saying how to stop them; the
moment it was claimed for a message is kept on the customer, set once (a conditional update, so
two senders at once tell it once). Customers before this revision have none: their next offer
tells them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("stop_hint_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("stop_hint_at")
