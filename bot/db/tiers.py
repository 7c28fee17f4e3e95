"""Club tiers (`loyalty_tiers`): who is in which tier, and the daily planner's set-wise question
"whose tier changes today" over the last 12 months of purchases (bot/services/tiers.py decides)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, case, delete, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Customer, LoyaltyTier, Purchase

if TYPE_CHECKING:
    from bot.business import Tier


@dataclass(frozen=True)
class Standing:
    """A customer whose tier may change: the rank they qualify for now (1 = the lowest tier,
    0 = none), and what is stored."""

    customer_id: int
    rank: int
    tier: str | None
    drops_at: datetime | None


def _rank(tiers: list[Tier], spend: Any, visits: Any) -> ColumnElement[int]:
    """The highest tier reached by spend (kopecks) OR visits, as its 1-based rank; 0: none."""
    whens = []
    for rank, tier in reversed(list(enumerate(tiers, 1))):
        reached = []
        if tier.min_spend is not None:
            reached.append(spend >= tier.min_spend * 100)
        if tier.min_visits is not None:
            reached.append(visits >= tier.min_visits)
        whens.append((or_(*reached), rank))
    return case(*whens, else_=0) if whens else literal(0)


def _stored_rank(tiers: list[Tier]) -> ColumnElement[int]:
    whens = [(LoyaltyTier.tier == tier.name, rank) for rank, tier in enumerate(tiers, 1)]
    return case(*whens, else_=0) if whens else literal(0)


class TierRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, customer_id: int) -> LoyaltyTier | None:
        return await self.session.get(LoyaltyTier, customer_id)

    async def name_of(self, customer_id: int) -> str | None:
        return await self.session.scalar(
            select(LoyaltyTier.tier).where(LoyaltyTier.customer_id == customer_id)
        )

    async def changing(
        self, tiers: list[Tier], *, since: datetime, now: datetime, limit: int
    ) -> list[Standing]:
        """Customers whose stored tier is not what their purchases in (since, now] give, in two
        set-wise reads (those who bought in the window; stored tiers of those who did not):
        up, a drop to warn, a warned drop that is due, a warned drop to cancel. A warned drop
        not due yet is left out. At most `limit` of each."""
        window = (
            select(
                Purchase.customer_id.label("customer_id"),
                func.sum(Purchase.amount_minor).label("spend"),
                func.count().label("visits"),
            )
            .where(Purchase.at > since, Purchase.at <= now)
            .group_by(Purchase.customer_id)
            .subquery()
        )
        rank = _rank(tiers, window.c.spend, window.c.visits)
        stored = _stored_rank(tiers)
        bought = await self.session.execute(
            select(window.c.customer_id, rank, LoyaltyTier.tier, LoyaltyTier.drops_at)
            .select_from(window)
            .join(Customer, Customer.id == window.c.customer_id)
            .outerjoin(LoyaltyTier, LoyaltyTier.customer_id == window.c.customer_id)
            .where(
                Customer.erased_at.is_(None),
                or_(
                    rank > stored,
                    and_(LoyaltyTier.drops_at.is_not(None), rank >= stored),
                    and_(
                        rank < stored,
                        or_(LoyaltyTier.drops_at.is_(None), LoyaltyTier.drops_at <= now),
                    ),
                    and_(LoyaltyTier.customer_id.is_not(None), stored == 0),  # renamed away
                ),
            )
            .order_by(window.c.customer_id)
            .limit(limit)
        )
        idle = await self.session.execute(
            select(LoyaltyTier.customer_id, literal(0), LoyaltyTier.tier, LoyaltyTier.drops_at)
            .where(
                or_(LoyaltyTier.drops_at.is_(None), LoyaltyTier.drops_at <= now),
                ~exists().where(
                    Purchase.customer_id == LoyaltyTier.customer_id,
                    Purchase.at > since,
                    Purchase.at <= now,
                ),
            )
            .order_by(LoyaltyTier.customer_id)
            .limit(limit)
        )
        return [Standing(int(c), int(r), t, d) for c, r, t, d in [*bought, *idle]]

    async def put(
        self, customer_id: int, tier: str, since: datetime, drops_at: datetime | None = None
    ) -> None:
        row = await self.session.get(LoyaltyTier, customer_id)
        if row is None:
            self.session.add(
                LoyaltyTier(customer_id=customer_id, tier=tier, since=since, drops_at=drops_at)
            )
        else:
            row.tier, row.since, row.drops_at = tier, since, drops_at
        await self.session.flush()

    async def warn_drop(self, customer_id: int, drops_at: datetime | None) -> None:
        row = await self.session.get(LoyaltyTier, customer_id)
        if row is not None:
            row.drops_at = drops_at
            await self.session.flush()

    async def remove(self, customer_id: int) -> int:
        result = await self.session.execute(
            delete(LoyaltyTier).where(LoyaltyTier.customer_id == customer_id)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
