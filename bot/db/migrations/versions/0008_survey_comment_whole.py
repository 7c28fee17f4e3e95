"""survey comments kept whole: as long as a Telegram message, not cut at 2,000 characters

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("surveys") as batch:
        batch.alter_column("comment", type_=sa.Text(), existing_type=sa.String(length=2000))


def downgrade() -> None:
    with op.batch_alter_table("surveys") as batch:
        batch.alter_column("comment", type_=sa.String(length=2000), existing_type=sa.Text())
