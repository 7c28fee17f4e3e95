"""The points ledger (`loyalty_entries`): rows are only ever added; a balance is their sum.

Spending guards the balance twice: the customer's row is locked first (PostgreSQL's
`SELECT … FOR UPDATE`; SQLite takes the write lock at BEGIN IMMEDIATE), so two staff members
spending the same points wait for each other, and the entry is inserted only if the balance
covers it (`INSERT … SELECT … WHERE balance >= points`), so it never goes negative.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, cast, exists, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.db.models import Customer, LedgerKind, LoyaltyEntry, OutboxKind


@dataclass(frozen=True)
class Line:
    """One ledger entry as the FIFO rules read it."""

    id: int
    kind: str
    points: int
    created_at: datetime
    expires_at: datetime | None
    accrual_id: int | None


class LoyaltyRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _sum(self, customer_id: int):  # type: ignore[no-untyped-def]
        return (
            select(func.coalesce(func.sum(LoyaltyEntry.points), 0))
            .where(LoyaltyEntry.customer_id == customer_id)
            .scalar_subquery()
        )

    async def lock(self, customer_id: int) -> bool:
        """Hold the customer's row till the transaction ends (their ledger's writers queue on
        it); False if there is no such customer."""
        found = await self.session.scalar(
            select(Customer.id).where(Customer.id == customer_id).with_for_update()
        )
        return found is not None

    async def balance(self, customer_id: int) -> int:
        return int(await self.session.scalar(select(self._sum(customer_id))) or 0)

    async def balances(self, customer_ids: Iterable[int]) -> dict[int, int]:
        ids = list(customer_ids)
        rows = await self.session.execute(
            select(LoyaltyEntry.customer_id, func.sum(LoyaltyEntry.points))
            .where(LoyaltyEntry.customer_id.in_(ids))
            .group_by(LoyaltyEntry.customer_id)
        )
        found = {int(c): int(p or 0) for c, p in rows}
        return {i: found.get(i, 0) for i in ids}

    async def lines(self, customer_id: int) -> list[Line]:
        """The customer's whole ledger, oldest first."""
        rows = await self.session.execute(
            select(
                LoyaltyEntry.id,
                LoyaltyEntry.kind,
                LoyaltyEntry.points,
                LoyaltyEntry.created_at,
                LoyaltyEntry.expires_at,
                LoyaltyEntry.accrual_id,
            )
            .where(LoyaltyEntry.customer_id == customer_id)
            .order_by(LoyaltyEntry.id)
        )
        return [Line(*row) for row in rows]

    async def recent(self, customer_id: int, limit: int) -> list[LoyaltyEntry]:
        """The customer's last `limit` entries that moved points (an expiry of 0 only marks an
        accrual settled), newest first: the history /card shows."""
        return list(
            await self.session.scalars(
                select(LoyaltyEntry)
                .where(LoyaltyEntry.customer_id == customer_id, LoyaltyEntry.points != 0)
                .order_by(LoyaltyEntry.id.desc())
                .limit(limit)
            )
        )

    async def add(self, entry: LoyaltyEntry) -> LoyaltyEntry:
        """An entry that cannot take the balance below zero (an accrual, an expiry of what is
        left, a correction upward)."""
        if entry.points < 0 and entry.kind != LedgerKind.EXPIRY:
            raise ValueError("a debit goes through `debit`")
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def has_accrual(self, purchase_id: int) -> bool:
        return bool(
            await self.session.scalar(
                select(
                    exists().where(
                        LoyaltyEntry.purchase_id == purchase_id,
                        LoyaltyEntry.kind == LedgerKind.ACCRUAL,
                    )
                )
            )
        )

    async def bonus(self, key: str) -> int | None:
        """The points of the bonus credited under this key (`bonus_key`); None: none yet."""
        return await self.session.scalar(
            select(LoyaltyEntry.points).where(LoyaltyEntry.bonus_key == key)
        )

    async def debit(
        self,
        customer_id: int,
        kind: LedgerKind,
        points: int,
        at: datetime,
        *,
        purchase_id: int | None = None,
        staff_id: int | None = None,
        staff_name: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Take `points` (> 0) off the balance if it covers them: one conditional insert after
        the customer's row is locked. False (nothing written) if it does not."""
        if points <= 0:
            raise ValueError("a debit takes a positive number of points")
        if not await self.lock(customer_id):
            return False
        values: dict[str, Any] = {
            "customer_id": literal(customer_id),
            "kind": literal(str(kind)),
            "points": literal(-points),
            "purchase_id": literal(purchase_id, LoyaltyEntry.purchase_id.type),
            "staff_id": literal(staff_id, LoyaltyEntry.staff_id.type),
            "staff_name": literal(staff_name, LoyaltyEntry.staff_name.type),
            "reason": literal(reason, LoyaltyEntry.reason.type),
            "created_at": literal(at, LoyaltyEntry.created_at.type),
        }
        covered = select(*values.values()).where(self._sum(customer_id) >= points)
        result = await self.session.execute(insert(LoyaltyEntry).from_select(list(values), covered))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def expiring_customers(self, now: datetime, limit: int) -> list[int]:
        """Customers with an accrual expired by `now` that no expiry entry has closed yet,
        soonest first: at most `limit` accruals' worth (a planner run's bound)."""
        closing = aliased(LoyaltyEntry)
        rows = await self.session.execute(
            select(LoyaltyEntry.customer_id)
            .where(
                LoyaltyEntry.kind == LedgerKind.ACCRUAL,
                LoyaltyEntry.expires_at <= now,
                ~exists().where(closing.accrual_id == LoyaltyEntry.id),
            )
            .order_by(LoyaltyEntry.expires_at)
            .limit(limit)
        )
        return list(dict.fromkeys(int(c) for (c,) in rows))

    async def of_customer_count(self, customer_id: int) -> int:
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(LoyaltyEntry)
                .where(LoyaltyEntry.customer_id == customer_id)
            )
            or 0
        )

    def reminder_rows(
        self, key_prefix: str, template: str, *, now: datetime, until: datetime, due_at: datetime
    ) -> Select[Any]:
        """Outbox rows (an offer each) for the accruals expiring after `now` and by `until` that
        are not settled, of customers who may get offers; keyed `<prefix><accrual id>`, due by
        the expiry. Whether points are left is the composer's question, at send time."""
        from bot.db import queries  # both import the repositories, which import this module
        from bot.db.repositories import planned_rows

        closing = aliased(LoyaltyEntry)
        return (
            planned_rows(
                literal(key_prefix, String) + cast(LoyaltyEntry.id, String),
                LoyaltyEntry.customer_id,
                kind=OutboxKind.MARKETING,
                template=template,
                data={},
                not_before=now,
                not_after=LoyaltyEntry.expires_at,
                due_at=due_at,
                now=now,
            )
            .select_from(LoyaltyEntry)
            .join(Customer, Customer.id == LoyaltyEntry.customer_id)
            .where(
                LoyaltyEntry.kind == LedgerKind.ACCRUAL,
                LoyaltyEntry.expires_at > now,
                LoyaltyEntry.expires_at <= until,
                ~exists().where(closing.accrual_id == LoyaltyEntry.id),
                queries.may_get_offers(),
            )
        )
