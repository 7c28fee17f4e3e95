"""One person in two rows, made one: a customer imported from the owner's previous base (no
Telegram account) and the row their own consent in Telegram just made, when they share the same
phone. The imported row is kept (its id is in the import's visit keys, so a second import of the
same file still finds it); everything of the new row moves onto it and the new row goes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Base, Customer


def _references() -> list[tuple[Table, Column[Any]]]:
    """Every column that points at a customer, found in the schema itself: a table added later
    (by any feature) moves with the rest without this module knowing about it."""
    found = []
    customers = Customer.__table__
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if any(fk.column.table is customers for fk in column.foreign_keys):
                found.append((table, column))
    return found


class MergeRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def imported_by_phone(self, phone: str) -> Customer | None:
        """The imported customer with this phone who has no Telegram account yet (not erased),
        locked: a second account sharing the same phone at the same instant waits, then finds it
        taken (PostgreSQL re-checks `tg_user_id IS NULL` on the locked row). The import keeps one
        row per phone; should there be two, the oldest is taken and the other stays as it is."""
        query = (
            select(Customer)
            .where(
                Customer.phone == phone,
                Customer.tg_user_id.is_(None),
                Customer.erased_at.is_(None),
                Customer.imported_at.is_not(None),
            )
            .order_by(Customer.id)
            .limit(1)
            .with_for_update()
        )
        return (await self.session.scalars(query)).one_or_none()

    async def move_everything(self, source: Customer, target: Customer) -> None:
        """Every row of `source` (consents, coupons, messages, visits, …) becomes `target`'s, and
        `source` is deleted, which frees its Telegram account for `target` (unique)."""
        for table, column in _references():
            if column.primary_key:  # derived per customer (cycles): learned again from the visits
                await self.session.execute(delete(table).where(column == source.id))
            else:
                await self.session.execute(
                    update(table).where(column == source.id).values({column.name: target.id})
                )
        await self.session.delete(source)
        await self.session.flush()
