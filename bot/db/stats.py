"""The owner's numbers (`bot.services.stats`): sales split into first and repeat, customers,
months and cohorts, set-wise.

A repeat sale is any purchase but a customer's first: imported visits count as history, and an
erased customer's purchases stay (their anonymous row keeps its id), so the totals add up. Two
sales at the same moment are ordered by id. What makes it fast (issue 17: a million purchases in
under 2 s): the index on purchases (customer_id, at, id) (migration 0013) gives each purchase the
one before it, by an ordered scan of the index alone (no table row is read for it) or, for a
short period on SQLite, by one seek a sale; customers' first purchases come from a grouped scan
of it; money and counts per period or month are range scans on `at`, reading the rows of that
time only. Customers' sleep is one pass over the customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    exists,
    extract,
    func,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.db.models import Customer, Cycle, Purchase, UTCDateTime
from bot.services.stats_figures import Cohort, MonthShare

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


@dataclass(frozen=True)
class Sleepers:
    """Customers by their sleep (`bot.services.stats.Customers` says what each means)."""

    sleeping: int = 0
    lost: int = 0
    asleep_at_start: int = 0
    woke: int = 0
    fell_asleep: int = 0


@dataclass(frozen=True)
class Month:
    """A local calendar month as a UTC range [start, end)."""

    first_day: date
    start: datetime
    end: datetime


class StatsRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def prepare(self) -> None:
        """For this read transaction only (SET LOCAL), on PostgreSQL: no JIT (compiling these
        statements took longer, 0.5 s, than running them) and memory enough to group a million
        sales by customer and month without spilling to disk (the default is 4 MB)."""
        if self._postgres:
            await self.session.execute(text("SET LOCAL jit = off"))
            await self.session.execute(text("SET LOCAL work_mem = '64MB'"))

    def _days_between(self, later: Any, earlier: Any) -> ColumnElement[Any]:
        if self._postgres:
            return extract("epoch", later - earlier) / DAY_SECONDS
        return func.julianday(later) - func.julianday(earlier)  # SQLite keeps text datetimes

    def _previous(self, periods: Sequence[tuple[datetime, datetime]], *, buyers_only: bool) -> Any:
        """The purchases in the periods with the time of the customer's purchase just before each
        (`prev_at`, NULL for their first) and the days since it (`gap`), labelled with their
        period's index (`k`) and start: an ordered scan of the (customer_id, at, id) index (no
        table row read). All is computed in the window's own select, once a row (SQLite would
        repeat an outer select's expressions in each aggregate). With `buyers_only`, over the
        histories of the customers who bought in the periods only (worth it when the periods are
        a small part of the history: the list of buyers costs a range scan and a set)."""
        since, until = min(start for start, _ in periods), max(end for _, end in periods)
        order = (Purchase.at, Purchase.id)  # two sales at the same moment: the earlier row first
        prev_at = func.lag(Purchase.at).over(partition_by=Purchase.customer_id, order_by=order)
        at = Purchase.at
        buyers = select(Purchase.customer_id).where(at >= since, at < until)
        k = case(*((and_(at >= start, at < end), i) for i, (start, end) in enumerate(periods)))
        start = case(
            *((and_(at >= start, at < end), literal(start, UTCDateTime)) for start, end in periods)
        )
        return (
            select(
                Purchase.id.label("id"),
                at.label("at"),
                k.label("k"),
                start.label("start"),
                prev_at.label("prev_at"),
                self._days_between(at, prev_at).label("gap"),
            )
            .where(at < until, Purchase.customer_id.in_(buyers) if buyers_only else true())
            .subquery("ranked")
        )

    def _previous_by_seek(self, periods: Sequence[tuple[datetime, datetime]]) -> Any:
        """The same rows as `_previous` (and each sale's amount), for periods that are a small
        part of the history: the sales of the periods by a range scan of `at`, and for each the
        purchase before it by one seek on the (customer_id, at, id) index, backwards from the
        sale: cheaper than scanning the buyers' whole history. Materialized, so the seek runs
        once a sale whatever reads its result."""
        since, until = min(start for start, _ in periods), max(end for _, end in periods)
        at = Purchase.at
        before = aliased(Purchase)
        prev_at = (
            select(before.at)
            .where(
                before.customer_id == Purchase.customer_id,
                tuple_(before.at, before.id) < tuple_(Purchase.at, Purchase.id),
            )
            .order_by(before.at.desc(), before.id.desc())
            .limit(1)
            .correlate(Purchase)
            .scalar_subquery()
        )
        k = case(*((and_(at >= start, at < end), i) for i, (start, end) in enumerate(periods)))
        start = case(
            *((and_(at >= start, at < end), literal(start, UTCDateTime)) for start, end in periods)
        )
        seeks = (
            select(
                Purchase.id.label("id"),
                at.label("at"),
                Purchase.amount_minor.label("amount"),
                k.label("k"),
                start.label("start"),
                prev_at.label("prev_at"),
            )
            .where(at >= since, at < until)
            .cte("seeks")
            .prefix_with("MATERIALIZED")
        )
        c = seeks.c
        return select(
            c.id,
            c.at,
            c.amount,
            c.k,
            c.start,
            c.prev_at,
            self._days_between(c.at, c.prev_at).label("gap"),
        ).subquery("ranked")

    async def sales(self, periods: Sequence[tuple[datetime, datetime]]) -> list[PeriodSales]:
        """Each period's sales split into first and repeat, its customers new and returning, and
        the intervals between visits ending in it (a purchase within a day of the previous one
        is the same visit, not an interval). The periods do not overlap. A constant number of
        statements whatever the number of sales: the counts in one pass grouped by period (one
        set of sums a row: SQLite's cost is per aggregate and row), the money by range scans."""
        if not periods:
            return []
        since, until = min(start for start, _ in periods), max(end for _, end in periods)
        first_ever = (await self.session.execute(select(func.min(Purchase.at)))).scalar()
        history = until - first_ever if first_ever is not None else until - since
        if not self._postgres and (until - since) * 2 < history:
            # a short part of the history, on SQLite: a seek a sale (0.8 s of CPU instead of 1.1
            # for 3 months of a million sales; PostgreSQL's per-row subplans cost more than its
            # window pass, 1.3 s against 0.5 s, so it always passes over the index)
            r = self._previous_by_seek(periods).c
            amount: Any = r.amount
        else:  # most of it: one ordered pass over the index
            r = self._previous(periods, buyers_only=False).c
            amount = select(Purchase.amount_minor).where(Purchase.id == r.id).scalar_subquery()
        first = r.prev_at.is_(None)
        counted_gap = r.gap >= 1  # NULL (no previous) is not >= 1
        rows = await self.session.execute(
            select(
                r.k,
                func.count(),
                func.count(case((first, 1))),
                func.coalesce(func.sum(case((first, amount))), 0),  # first sales' rows only
                # a customer's first sale in the period is the one whose previous is before it
                func.count(case((or_(first, r.prev_at < r.start), 1))),
                func.count(case((r.prev_at < r.start, 1))),  # bought before the period
                func.count(case((counted_gap, 1))),
                func.coalesce(func.sum(case((counted_gap, r.gap))), 0),
            )
            .where(r.at >= since, r.k.is_not(None))
            .group_by(r.k)
        )
        counts = {int(row[0]): row[1:] for row in rows}
        money = (
            await self.session.execute(
                select(
                    *(
                        select(func.coalesce(func.sum(Purchase.amount_minor), 0))
                        .where(Purchase.at >= start, Purchase.at < end)
                        .scalar_subquery()
                        for start, end in periods
                    )
                )
            )
        ).one()
        found = []
        for i in range(len(periods)):
            v = counts.get(i, (0, 0, 0, 0, 0, 0, 0.0))
            found.append(
                PeriodSales(
                    sales=int(v[0]),
                    first=int(v[1]),
                    money_minor=int(money[i] or 0),
                    first_minor=int(v[2]),
                    customers=int(v[3]),
                    returning=int(v[4]),
                    gaps=int(v[5]),
                    gap_days=float(v[6]),
                )
            )
        return found

    async def sleepers(
        self, *, now: datetime, start: datetime, end: datetime, lost_since: datetime
    ) -> Sleepers:
        """The period's customers by their sleep, in one pass over the customers (each one's
        latest cycle looked up a fixed number of times, not once per number):

        - asleep now: `queries.sleeping(now)`, the rule of `/sleeping` itself;
        - lost: of them, asleep since `lost_since` or before. Asleep now, their sleep began at
          their latest cycle's sleep moment (`sleeps_at`), so that is compared;
        - fell asleep: of them, the sleep moment in the period [start, end);
        - asleep at the start: by the rhythm they have now (their latest cycle keeps how long
          after a visit they fall asleep: `sleeps_at - last_visit_at`, the factor × interval),
          the time since their last purchase before the start was at least that (bookings of
          the past are not known, so they do not count here); woke: of them, bought in it.
        """
        from bot.db import queries  # queries imports the repositories, which import this module

        cycle = aliased(Cycle)

        def latest(value: Any) -> Any:  # of the customer's latest cycle, as queries.latest_visit
            return (
                select(value)
                .where(cycle.customer_id == Customer.id)
                .order_by(cycle.last_visit_at.desc(), cycle.last_purchase_id.desc())
                .limit(1)
                .correlate(Customer)
                .scalar_subquery()
            )

        last_before = (
            select(func.max(Purchase.at))
            .where(Purchase.customer_id == Customer.id, Purchase.at < start)
            .correlate(Customer)
            .scalar_subquery()
        )
        each = (
            select(
                Customer.id.label("id"),
                case((queries.sleeping(now), 1), else_=0).label("asleep"),
                latest(cycle.sleeps_at).label("sleeps_at"),
                latest(self._days_between(cycle.sleeps_at, cycle.last_visit_at)).label("span"),
                self._days_between(literal(start, UTCDateTime), last_before).label("since_last"),
            )
            .where(queries.known())
            .cte("sleepers")
            .prefix_with("MATERIALIZED")  # each customer's look-ups once, whatever counts them
        )
        c = each.c
        asleep = c.asleep == 1
        fell = and_(asleep, c.sleeps_at >= start, c.sleeps_at < end)
        at_start = c.since_last >= c.span  # NULL (no purchase before, or no cycle) is not
        bought = exists().where(
            Purchase.customer_id == c.id, Purchase.at >= start, Purchase.at < end
        )
        row = (
            await self.session.execute(
                select(
                    func.count(case((asleep, 1))),
                    func.count(case((and_(asleep, c.sleeps_at <= lost_since), 1))),
                    func.count(case((fell, 1))),
                    func.count(case((at_start, 1))),
                    func.count(case((and_(at_start, bought), 1))),
                )
            )
        ).one()
        return Sleepers(
            sleeping=int(row[0]),
            lost=int(row[1]),
            fell_asleep=int(row[2]),
            asleep_at_start=int(row[3]),
            woke=int(row[4]),
        )

    def _months(self, months: Sequence[Month]) -> Any:
        """The months as a table (i, start, end) to join sales to by their time: each month is
        then a range scan of the index on `at`. A union of one-row selects, as SQLite does not
        name the columns of a VALUES list."""
        return union_all(
            *(
                select(
                    literal(i, Integer).label("i"),
                    literal(m.start, UTCDateTime).label("start"),
                    literal(m.end, UTCDateTime).label("end"),
                )
                for i, m in enumerate(months)
            )
        ).subquery("months")

    async def months(self, months: Sequence[Month]) -> list[MonthShare]:
        """Each month's sales and money, and of them the repeat ones (not a customer's first)."""
        if not months:
            return []
        table = self._months(months)
        m = table.c
        totals = dict.fromkeys(range(len(months)), (0, 0))
        rows = await self.session.execute(
            select(m.i, func.count(), func.sum(Purchase.amount_minor))
            .select_from(Purchase)
            .join(table, and_(Purchase.at >= m.start, Purchase.at < m.end))
            .group_by(m.i)
        )
        for i, count, money in rows:
            totals[i] = (int(count), int(money or 0))
        firsts = self._firsts(months[0].start, months[-1].end)
        f = firsts.c
        table = self._months(months)
        m = table.c
        first_rows = await self.session.execute(
            select(m.i, func.count(), func.sum(self._first_amount(firsts)))
            .select_from(firsts)
            .join(table, and_(f.at >= m.start, f.at < m.end))
            .group_by(m.i)
        )
        first = {int(i): (int(count), int(money or 0)) for i, count, money in first_rows}
        return [
            MonthShare(
                month=month.first_day,
                sales=totals[i][0],
                repeat=totals[i][0] - first.get(i, (0, 0))[0],
                money_minor=totals[i][1],
                repeat_minor=totals[i][1] - first.get(i, (0, 0))[1],
            )
            for i, month in enumerate(months)
        ]

    def _firsts(self, start: datetime, end: datetime) -> Any:
        """Customers whose first purchase ever is in [start, end), and its time: a grouped scan
        of the (customer_id, at, id) index alone."""
        first_at = func.min(Purchase.at)
        return (
            select(Purchase.customer_id.label("customer_id"), first_at.label("at"))
            .group_by(Purchase.customer_id)
            .having(and_(first_at >= start, first_at < end))
            .subquery("firsts")
        )

    def _first_amount(self, firsts: Any) -> Any:
        """The amount of a customer's first purchase (of two at that moment, the first row's):
        one seek and one row per customer."""
        return (
            select(Purchase.amount_minor)
            .where(Purchase.customer_id == firsts.c.customer_id, Purchase.at == firsts.c.at)
            .order_by(Purchase.id)
            .limit(1)
            .scalar_subquery()
        )

    async def cohorts(self, months: Sequence[Month], cohorts: int) -> list[Cohort]:
        """Customers by the month of their first purchase (the first `cohorts` of `months`), and
        how many of them bought again in each month since, up to the last of `months`; what they
        spent in their first 12 months."""
        if not months or cohorts < 1:
            return []
        firsts = self._firsts(months[0].start, months[cohorts - 1].end)
        table = self._months(months)
        m = table.c
        cohort = (  # each newcomer's month of first purchase
            select(firsts.c.customer_id.label("customer_id"), m.i.label("ci"))
            .select_from(firsts)
            .join(table, and_(firsts.c.at >= m.start, firsts.c.at < m.end))
            .cte("cohort")
            .prefix_with("MATERIALIZED")  # once: PostgreSQL misjudges the firsts' count
        )
        table = self._months(months)
        m = table.c
        visits = (  # each customer's purchases by month: one range scan of `at` a month
            select(
                Purchase.customer_id.label("customer_id"),
                m.i.label("mi"),
                func.count().label("n"),
                func.sum(Purchase.amount_minor).label("money"),
            )
            .select_from(Purchase)
            .join(table, and_(Purchase.at >= m.start, Purchase.at < m.end))
            .group_by(Purchase.customer_id, m.i)
            .cte("visits")
            .prefix_with("MATERIALIZED")
        )
        c, v = cohort.c, visits.c
        since = (v.mi - c.ci).label("k")
        rows = await self.session.execute(
            select(
                c.ci,
                since,
                func.count(),
                func.count(case((or_(v.mi > c.ci, v.n >= 2), 1))),
                func.sum(case((v.mi - c.ci < 12, v.money), else_=0)),
            )
            .select_from(cohort)
            .join(visits, and_(v.customer_id == c.customer_id, v.mi >= c.ci))
            .group_by(c.ci, since)
        )
        grid: dict[int, dict[int, tuple[int, int, int]]] = {}
        for ci, k, count, returned, money in rows:
            grid.setdefault(int(ci), {})[int(k)] = (int(count), int(returned), int(money or 0))
        found = []
        for i in range(cohorts):
            cells = grid.get(i, {})
            found.append(
                Cohort(
                    month=months[i].first_day,
                    customers=cells.get(0, (0, 0, 0))[0],  # all bought in their first month
                    returned=tuple(cells.get(k, (0, 0, 0))[1] for k in range(len(months) - i)),
                    revenue_12m_minor=sum(cell[2] for cell in cells.values()),
                )
            )
        return found
