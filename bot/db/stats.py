"""The owner's numbers (`bot.services.stats`): sales split into first and repeat, set-wise.

One statement for any number of periods, whatever the number of sales: every purchase before the
last period's end gets its place in its customer's history by window functions (its number, the
customer's first purchase, the one before it), and each period is a set of conditional sums over
that. A repeat sale is any purchase but a customer's first: imported visits count as history, and
an erased customer's purchases stay (their anonymous row keeps its id), so the totals add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, extract, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Purchase

DAY_SECONDS = 86400


@dataclass(frozen=True)
class PeriodSales:
    """The sales of one period [start, end) and the customers behind them."""

    sales: int = 0
    first: int = 0  # a customer's first purchase ever (the customer is new in the period)
    money_minor: int = 0
    first_minor: int = 0
    customers: int = 0  # distinct customers who bought in the period
    returning: int = 0  # of them, those who had bought before the period
    gaps: int = 0  # intervals between a customer's visits that ended in the period
    gap_days: float = 0.0  # their sum, in days

    @property
    def repeat(self) -> int:
        return self.sales - self.first

    @property
    def repeat_minor(self) -> int:
        return self.money_minor - self.first_minor

    @property
    def new(self) -> int:
        return self.first


class StatsRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _days_between(
        self, later: ColumnElement[datetime], earlier: ColumnElement[datetime]
    ) -> ColumnElement[Any]:
        if self.session.get_bind().dialect.name == "postgresql":
            return extract("epoch", later - earlier) / DAY_SECONDS
        return func.julianday(later) - func.julianday(earlier)  # SQLite keeps text datetimes

    async def sales(self, periods: Sequence[tuple[datetime, datetime]]) -> list[PeriodSales]:
        """Each period's sales split into first and repeat, its customers new and returning, and
        the intervals between visits ending in it (a purchase within a day of the previous one
        is the same visit, not an interval)."""
        if not periods:
            return []
        customer_id, at = Purchase.customer_id, Purchase.at
        order = (at, Purchase.id)  # two sales at the same moment: the earlier row first
        ranked = (
            select(
                customer_id.label("customer_id"),
                Purchase.amount_minor.label("amount"),
                at.label("at"),
                func.row_number().over(partition_by=customer_id, order_by=order).label("n"),
                func.min(at).over(partition_by=customer_id).label("first_at"),
                func.lag(at).over(partition_by=customer_id, order_by=order).label("prev_at"),
            )
            .where(at < max(end for _, end in periods))
            .subquery("ranked")
        )
        r = ranked.c
        gap = self._days_between(r.at, r.prev_at)
        columns = []
        for start, end in periods:
            inside = and_(r.at >= start, r.at < end)
            first = and_(inside, r.n == 1)
            counted_gap = and_(inside, r.prev_at.is_not(None), gap >= 1)
            columns += [
                func.count(case((inside, 1))),
                func.count(case((first, 1))),
                func.coalesce(func.sum(case((inside, r.amount))), 0),
                func.coalesce(func.sum(case((first, r.amount))), 0),
                func.count(func.distinct(case((inside, r.customer_id)))),
                func.count(func.distinct(case((and_(inside, r.first_at < start), r.customer_id)))),
                func.count(case((counted_gap, 1))),
                func.coalesce(func.sum(case((counted_gap, gap))), 0),
            ]
        row = (await self.session.execute(select(*columns).select_from(ranked))).one()
        width = 8
        found = []
        for i in range(len(periods)):
            v = row[i * width : (i + 1) * width]
            found.append(
                PeriodSales(
                    sales=int(v[0]),
                    first=int(v[1]),
                    money_minor=int(v[2]),
                    first_minor=int(v[3]),
                    customers=int(v[4]),
                    returning=int(v[5]),
                    gaps=int(v[6]),
                    gap_days=float(v[7]),
                )
            )
        return found
