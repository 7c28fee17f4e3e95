"""The owner's numbers (`bot.services.stats`): sales split into first and repeat, customers,
months and cohorts, set-wise.

A repeat sale is any purchase but a customer's first: imported visits count as history, and an
erased customer's purchases stay (their anonymous row keeps its id), so the totals add up. Two
sales at the same moment are ordered by id. What makes it fast (issue 17: a million purchases in
under 2 s): the index on purchases (customer_id, at, id) (migration 0013) gives each purchase the
one before it, by an ordered scan of the index alone (no table row is read for it) or, for a
short period on SQLite, by one seek a sale; customers' first purchases come from a grouped scan
of it; money and counts per period or month are range scans on `at`, reading the rows of that
time only. Customers' sleep is one pass over the customers. Days and months that are over are
kept summed in `sales_days` and `cohort_months` (`StatsService.close` fills them with these same
statements, restricted to those days and months), so a report counts only the rest live.
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
    delete,
    exists,
    extract,
    func,
    insert,
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

from bot.db.models import CohortMonth, Customer, Cycle, Purchase, SalesDay, UTCDateTime
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
        share = 40 if self._postgres else 2
        if (until - since) * share < history:
            # a short part of the history, on SQLite: a seek a sale (0.8 s of CPU instead of 1.1
            # for 3 months of a million sales; PostgreSQL's per-row subplans cost more than its
            # window pass, 1.3 s against 0.5 s, so it seeks only for under a fortieth of it: the open part
            # of a report whose past is summed from `sales_days`)
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

    def _months(self, months: Sequence[Month], numbers: Sequence[int] | None = None) -> Any:
        """The months as a table (i, start, end) to join sales to by their time: each month is
        then a range scan of the index on `at`. A union of one-row selects, as SQLite does not
        name the columns of a VALUES list. `i` is the month's place, or its number given."""
        numbers = numbers if numbers is not None else range(len(months))
        return union_all(
            *(
                select(
                    literal(numbers[i], Integer).label("i"),
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

    async def cohort_cells(
        self, cohorts: Sequence[Month], months: Sequence[Month]
    ) -> dict[tuple[date, date], tuple[int, int, int]]:
        """Per (cohort, month): of the customers whose first purchase ever was in the cohort's
        month, how many bought in the month, how many of those bought again (in a later month
        than their first, or twice in it), and what they spent in it. The rules of the cohorts
        chart, the same for the live months and for closing them (`cohort_months`). The month's
        buyers by range scans of `at`; each one's first purchase by one seek on the
        (customer_id, at, id) index."""
        if not cohorts or not months:
            return {}
        every = sorted({m.first_day: m for m in (*cohorts, *months)}.values(), key=_first_day)
        index = {m.first_day: i for i, m in enumerate(every)}
        table = self._months(months, [index[m.first_day] for m in months])
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
        v = visits.c
        buyers = select(v.customer_id).distinct().subquery("buyers")
        first_at = (
            select(func.min(Purchase.at))
            .where(Purchase.customer_id == buyers.c.customer_id)
            .correlate(buyers)
            .scalar_subquery()
        )
        firsts = (
            select(buyers.c.customer_id.label("customer_id"), first_at.label("at"))
            .cte("firsts")
            .prefix_with("MATERIALIZED")  # one seek a buyer, whatever reads it
        )
        table = self._months(cohorts, [index[m.first_day] for m in cohorts])
        m = table.c
        f = firsts.c
        cohort = (  # each buyer's cohort, when it is one of `cohorts`
            select(f.customer_id.label("customer_id"), m.i.label("ci"))
            .select_from(firsts)
            .join(table, and_(f.at >= m.start, f.at < m.end))
            .subquery("cohort")
        )
        c = cohort.c
        rows = await self.session.execute(
            select(
                c.ci,
                v.mi,
                func.count(),
                func.count(case((or_(v.mi > c.ci, v.n >= 2), 1))),
                func.sum(v.money),
            )
            .select_from(cohort)
            .join(visits, and_(v.customer_id == c.customer_id, v.mi >= c.ci))
            .group_by(c.ci, v.mi)
        )
        return {
            (every[int(ci)].first_day, every[int(mi)].first_day): (
                int(count),
                int(returned),
                int(money or 0),
            )
            for ci, mi, count, returned, money in rows
        }

    async def cohorts(self, months: Sequence[Month], cohorts: int) -> list[Cohort]:
        """Customers by the month of their first purchase (the first `cohorts` of `months`), and
        how many of them bought again in each month since, up to the last of `months`; what they
        spent in their first 12 months."""
        if not months or cohorts < 1:
            return []
        cells = await self.cohort_cells(months[:cohorts], months)
        return cohorts_of([m.first_day for m in months], cohorts, cells)

    # Closed days and months (`sales_days`, `cohort_months`): see `StatsService.close`.

    async def first_purchase_at(self) -> datetime | None:
        return await self.session.scalar(select(func.min(Purchase.at)))

    async def days_closed_through(self) -> date | None:
        """The last closed day: every day from the first purchase's to it is closed."""
        return await self.session.scalar(select(func.max(SalesDay.day)))

    async def months_closed_through(self) -> date | None:
        """The first day of the last closed month (each closed month has its own cell)."""
        return await self.session.scalar(select(func.max(CohortMonth.month)))

    async def stale_since(self) -> datetime | None:
        """The earliest purchase written after the closed days were counted (the ids after the
        last one counted: a few, today's), when one is older than they are: a closed day it
        falls in is wrong, from its day on."""
        counted_to = select(func.max(SalesDay.counted_to)).scalar_subquery()
        return await self.session.scalar(
            select(func.min(Purchase.at)).where(Purchase.id > func.coalesce(counted_to, 0))
        )

    async def last_purchase_id(self) -> int:
        return int(await self.session.scalar(select(func.max(Purchase.id))) or 0)

    async def closed_days(self, first: date, last: date) -> list[tuple[date, PeriodSales]]:
        """The closed days from `first` to `last` (their distinct customers are not kept)."""
        d = SalesDay
        rows = await self.session.execute(
            select(d.day, d.sales, d.firsts, d.money_minor, d.first_minor, d.gaps, d.gap_days)
            .where(d.day >= first, d.day <= last)
            .order_by(d.day)
        )
        return [
            (
                day,
                PeriodSales(
                    sales=int(sales),
                    first=int(firsts),
                    money_minor=int(money),
                    first_minor=int(first_minor),
                    gaps=int(gaps),
                    gap_days=float(gap_days),
                ),
            )
            for day, sales, firsts, money, first_minor, gaps, gap_days in rows
        ]

    async def close_days(self, days: Sequence[tuple[date, PeriodSales]], counted_to: int) -> None:
        """These days closed with these numbers, counted with the purchases up to the id
        `counted_to` (closing a day again replaces it)."""
        if not days:
            return
        await self.session.execute(
            delete(SalesDay).where(SalesDay.day.in_([day for day, _ in days]))
        )
        await self.session.execute(
            insert(SalesDay),
            [
                {
                    "day": day,
                    "sales": s.sales,
                    "firsts": s.first,
                    "money_minor": s.money_minor,
                    "first_minor": s.first_minor,
                    "gaps": s.gaps,
                    "gap_days": s.gap_days,
                    "counted_to": counted_to,
                }
                for day, s in days
            ],
        )

    async def closed_cells(
        self, cohorts: Sequence[date], months: Sequence[date]
    ) -> dict[tuple[date, date], tuple[int, int, int]]:
        """The closed months' cohort cells (see `cohort_cells`)."""
        if not cohorts or not months:
            return {}
        c = CohortMonth
        rows = await self.session.execute(
            select(c.cohort, c.month, c.customers, c.returned, c.money_minor).where(
                c.cohort.in_(list(cohorts)), c.month.in_(list(months)), c.customers > 0
            )
        )
        return {
            (cohort, month): (int(customers), int(returned), int(money))
            for cohort, month, customers, returned, money in rows
        }

    async def close_months(
        self, months: Sequence[date], cells: dict[tuple[date, date], tuple[int, int, int]]
    ) -> None:
        """These months closed with their cells; each month's own (month, month) cell is written
        even when empty (it says the month is closed)."""
        if not months:
            return
        await self.session.execute(delete(CohortMonth).where(CohortMonth.month.in_(list(months))))
        rows = dict.fromkeys(((m, m) for m in months), (0, 0, 0)) | {
            key: value for key, value in cells.items() if key[1] in set(months)
        }
        await self.session.execute(
            insert(CohortMonth),
            [
                {
                    "cohort": cohort,
                    "month": month,
                    "customers": n,
                    "returned": returned,
                    "money_minor": money,
                }
                for (cohort, month), (n, returned, money) in rows.items()
            ],
        )

    async def reopen_from(self, day: date) -> None:
        """Visits imported from `day` on: the closed days from it and the months from its month
        are counted again by the planner (an earlier sale changes later ones' first and gaps,
        and a customer's cohort)."""
        await self.session.execute(delete(SalesDay).where(SalesDay.day >= day))
        await self.session.execute(
            delete(CohortMonth).where(CohortMonth.month >= day.replace(day=1))
        )

    async def lock_closing(self) -> None:
        """On PostgreSQL, the closing transaction holds off an import's reopening until it
        commits (and waits for one under way), so no day counted before the import's visits
        is kept after them. SQLite's writes are one at a time already."""
        if self._postgres:
            await self.session.execute(
                text("LOCK TABLE sales_days, cohort_months IN SHARE ROW EXCLUSIVE MODE")
            )

    async def buyers(self, periods: Sequence[tuple[datetime, datetime]]) -> list[int]:
        """Distinct customers who bought in each period."""
        if not periods:
            return []
        row = (
            await self.session.execute(
                select(
                    *(
                        select(func.count(func.distinct(Purchase.customer_id)))
                        .where(Purchase.at >= start, Purchase.at < end)
                        .scalar_subquery()
                        for start, end in periods
                    )
                )
            )
        ).one()
        return [int(n or 0) for n in row]


def _first_day(month: Month) -> date:
    return month.first_day


def cohorts_of(
    months: Sequence[date], cohorts: int, cells: dict[tuple[date, date], tuple[int, int, int]]
) -> list[Cohort]:
    """The cohorts chart from its cells: the first `cohorts` of `months`, each with the customers
    who came that month, those who bought again each month since (to the last of `months`) and
    what they spent in their first 12 months."""
    found = []
    for i in range(cohorts):
        cohort = months[i]
        row = [cells.get((cohort, months[k]), (0, 0, 0)) for k in range(i, len(months))]
        found.append(
            Cohort(
                month=cohort,
                customers=row[0][0] if row else 0,  # all bought in their first month
                returned=tuple(cell[1] for cell in row),
                revenue_12m_minor=sum(cell[2] for cell in row[:12]),
            )
        )
    return found
