"""The stamp card's ledger (`stamps`, append-only). The rules are bot/services/stamps.py's; the
rows are written in the callers' transactions (the sale's, the cancellation's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, String, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Coupon, OutboxKind, StampEntry, StampKind


def reward_message(
    key: str,
    customer_id: int,
    coupon_id: int,
    *,
    template: str,
    data: dict[str, Any],
    now: datetime,
    not_after: datetime,
) -> Select[Any]:
    """The receipt of a completed card, a service message carrying its coupon (for
    `OutboxRepo.plan`)."""
    from bot.db.repositories import planned_rows  # repositories imports this module

    return planned_rows(
        literal(key, String),
        literal(customer_id, Integer),
        coupon_id=literal(coupon_id, Integer),
        kind=OutboxKind.SERVICE,
        template=template,
        data=data,
        not_before=now,
        not_after=not_after,
        due_at=now,
        now=now,
    )


class StampRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lines(self, customer_id: int) -> list[StampEntry]:
        """The customer's card, oldest first (the order it is replayed in)."""
        return list(
            await self.session.scalars(
                select(StampEntry)
                .where(StampEntry.customer_id == customer_id)
                .order_by(StampEntry.id)
            )
        )

    async def of_purchase(self, purchase_id: int) -> StampEntry | None:
        """The stamp a sale gave, if it gave one."""
        return await self.session.scalar(
            select(StampEntry).where(
                StampEntry.purchase_id == purchase_id, StampEntry.kind == StampKind.STAMP
            )
        )

    async def add(self, entry: StampEntry) -> StampEntry:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def withdraw_coupon(self, coupon_id: int, now: datetime) -> bool:
        """Void the reward coupon if it is still unused (a conditional update: a redemption at the
        same instant wins or loses, never both). True when it was voided."""
        done = await self.session.execute(
            update(Coupon)
            .where(
                Coupon.id == coupon_id,
                Coupon.redeemed_at.is_(None),
                Coupon.voided_at.is_(None),
            )
            .values(voided_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(done, "rowcount", 0))

    async def erase(self, customer_id: int) -> int:
        """/forget: the customer's card goes (their coupons are voided by the erasure itself)."""
        result = await self.session.execute(
            delete(StampEntry)
            .where(StampEntry.customer_id == customer_id)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)
