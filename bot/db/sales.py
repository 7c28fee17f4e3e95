"""Cancelled sales (`purchases.cancelled_at`, migration 0025): the rows the cancel needs.

A sale staff cancelled stays in `purchases` (the points ledger's entries, its survey, a stamp or
a package line name it by a foreign key, and the ledger is never edited), but it no longer
counts anywhere: every ORM read of `Purchase` in any session gets `cancelled_at IS NULL` added
(`_counted_only`, aliases and subqueries included, and the reads inside an INSERT … SELECT or an
UPDATE of another table: a planner's rows, a segment), so /stats, cycles, segments, tiers, the
card and whatever is written later see the purchase as gone, without each query saying so. A
read that must see it too (the cancel itself, /mydata) sets `WITH_CANCELLED` in its execution
options; a statement writing purchases themselves (erasure, a merge) reaches every row it names.
An imported visit is never cancelled, so the import's look-up of `import_key` is unaffected.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from bot.db.models import (
    LedgerKind,
    LoyaltyEntry,
    PointsRequest,
    PointsRequestState,
    Purchase,
    Referral,
    ReferralState,
    Survey,
)

WITH_CANCELLED = "carebot_with_cancelled"

# built once: a lambda's criteria is cached with the statement, so this costs no compilation
_COUNTED = with_loader_criteria(
    Purchase, lambda cls: cls.cancelled_at.is_(None), include_aliases=True
)


@event.listens_for(Session, "do_orm_execute")
def _counted_only(state: ORMExecuteState) -> None:
    """Every ORM SELECT leaves cancelled purchases out, unless asked (`WITH_CANCELLED`); a lazy
    load of an object's own columns is left alone (it was read already). So does the SELECT
    inside an INSERT … SELECT, UPDATE or DELETE (a planner's rows for the outbox, a segment):
    only a statement that writes purchases themselves (erasure, a merge, the cancel) is left to
    reach every row it names."""
    if state.execution_options.get(WITH_CANCELLED, False):
        return
    if state.is_select:
        if not state.is_column_load and not state.is_relationship_load:
            state.statement = state.statement.options(_COUNTED)
    elif state.is_insert or state.is_update or state.is_delete:
        target = getattr(state.statement, "table", None)  # annotated: compared by name
        if getattr(target, "name", None) != Purchase.__tablename__:
            state.statement = state.statement.options(_COUNTED)


class SaleCancelRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def purchase(self, purchase_id: int, *, for_update: bool = False) -> Purchase | None:
        """The purchase, cancelled or not."""
        query = select(Purchase).where(Purchase.id == purchase_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(
            query.execution_options(populate_existing=True, **{WITH_CANCELLED: True})
        )

    async def cancel(self, purchase_id: int, at: datetime, staff_id: int, staff_name: str) -> bool:
        """Mark it cancelled unless it is already: one conditional update, so of two cancels at
        once one wins (PostgreSQL re-reads the row the other one updated and finds it marked)."""
        result = await self.session.execute(
            update(Purchase)
            .where(Purchase.id == purchase_id, Purchase.cancelled_at.is_(None))
            .values(cancelled_at=at, cancelled_by_id=staff_id, cancelled_by_name=staff_name)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]

    async def spent_on(self, purchase_id: int) -> int:
        """Points paid for this sale (pay with points): its spending entries, as a positive sum."""
        spent = await self.session.scalar(
            select(func.coalesce(func.sum(LoyaltyEntry.points), 0)).where(
                LoyaltyEntry.purchase_id == purchase_id,
                LoyaltyEntry.kind == LedgerKind.SPENDING,
            )
        )
        return -int(spent or 0)

    async def accrued_on(self, purchase_id: int) -> int:
        """The sale's cashback (its one accrual; 0 if none)."""
        points = await self.session.scalar(
            select(LoyaltyEntry.points).where(
                LoyaltyEntry.purchase_id == purchase_id, LoyaltyEntry.kind == LedgerKind.ACCRUAL
            )
        )
        return int(points or 0)

    async def pending_requests(self, purchase_id: int) -> list[int]:
        """Pay-with-points requests of the sale still waiting for the customer."""
        return list(
            await self.session.scalars(
                select(PointsRequest.id).where(
                    PointsRequest.purchase_id == purchase_id,
                    PointsRequest.state == PointsRequestState.PENDING,
                )
            )
        )

    async def drop_unanswered_survey(self, purchase_id: int) -> None:
        """The sale's survey, when it was never answered (its question was not sent)."""
        await self.session.execute(
            delete(Survey).where(Survey.purchase_id == purchase_id, Survey.answered_at.is_(None))
        )

    async def unreward(self, referral_id: int) -> bool:
        """A friend's first purchase cancelled: the referral waits for one again (REWARDED →
        JOINED, conditional: once)."""
        result = await self.session.execute(
            update(Referral)
            .where(Referral.id == referral_id, Referral.state == ReferralState.REWARDED)
            .values(state=ReferralState.JOINED, bought_at=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]

    async def latest_visit(
        self, customer_id: int, service_id: str
    ) -> tuple[int, datetime, str | None] | None:
        """(id, when, master) of the customer's latest counted visit of the service."""
        row = (
            await self.session.execute(
                select(Purchase.id, Purchase.at, Purchase.master_id)
                .where(Purchase.customer_id == customer_id, Purchase.service_id == service_id)
                .order_by(Purchase.at.desc(), Purchase.id.desc())
                .limit(1)
            )
        ).first()
        return (row[0], row[1], row[2]) if row else None
