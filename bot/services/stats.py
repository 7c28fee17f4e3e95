"""The owner's numbers for `/stats`: the starting point of the articles (seeds 003, step 1 and 3).

Take the sales of the period (by default the last three months, as the articles do) and split
them into first sales (a customer's first purchase ever) and repeat sales (to a customer who had
bought before, also before the period, also in the imported history); the share of repeat sales,
by count and by money, is the number everything else exists to raise. The same for the period of
equal length just before, and the change in percentage points. Beside it: customers new in the
period, returning (bought in it and before it), the average check, and the average interval
between a customer's consecutive visits (the frequency).

Customers, by their own rhythm as `/sleeping` sees it: asleep now, lost (asleep longer than
`[sleeping] lost_after_days`), woken up in the period, and what sleeping costs a month (article
002); LTV, the first 12 months' spending by the month customers came (cohorts); and the repeat
share month by month (the charts' data, `bot.services.stats_figures`).

Days are the business's: a period is whole local days [first_day, last_day]. Days and months that
are over are summed from what the planner closed (`close`), the rest counted live by the same
statements: the same numbers, in a time that does not grow with the history.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.business import Sleeping
from bot.clock import Clock
from bot.db.repositories import Database, Repos
from bot.db.stats import Month, PeriodSales, cohorts_of
from bot.features import Features
from bot.services.stats_figures import Cohort, MonthShare

DEFAULT_MONTHS = 3
CHART_MONTHS = 13  # months and cohorts: the end's month and 12 before (a cohort whose year is over)
LTV_MONTHS = 12
DEFAULT_WAKE_SHARE = 0.30  # article 002's "coefficient of return", until there is a measure
MEASURED_FROM = 30  # sleepers at the period's start needed to trust the measured share
DAYS_A_MONTH = 365.25 / 12
MAX_DAYS = 3660  # ten years: longer is a typo
CLOSE_DAYS = 186  # days closed a planner run (about half a year: a second or two of work)
DAYS_PER_STATEMENT = 31  # days counted in one statement (one CASE branch a day)
CLOSE_MONTHS = 12  # months of cohort cells closed a run (one pass over their sales)
_LENGTH = re.compile(r"(\d{1,4})\s*([dwmднм]?)", re.IGNORECASE)
_DATE_FORMATS = ("%d.%m.%Y", "%Y-%m-%d")


def months_back(day: date, months: int) -> date:
    """The same day `months` calendar months earlier (the month's last day when it is shorter).
    By hand: the standard library has no month arithmetic and one function is not worth a
    dependency."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Period:
    """Whole local days, both ends included."""

    first_day: date
    last_day: date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def previous(self) -> Period:
        """The period of equal length just before this one."""
        last = self.first_day - timedelta(days=1)
        return Period(last - timedelta(days=self.days - 1), last)

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) as aware datetimes: local midnight of the first day and of the day after
        the last."""
        return (
            datetime.combine(self.first_day, time(), tzinfo=tz),
            datetime.combine(self.last_day + timedelta(days=1), time(), tzinfo=tz),
        )


def parse_period(text: str | None, today: date) -> Period | None:
    """`/stats` (the last 3 months up to today), `/stats 30` or `30d` (days), `2w` (weeks),
    `6m` (calendar months), `/stats 01.09.2026 30.11.2026` (or `2026-09-01 2026-11-30`, both days
    included). None when it does not parse, or the period is empty or longer than ten years."""
    words = (text or "").split()
    if not words:
        return Period(months_back(today, DEFAULT_MONTHS) + timedelta(days=1), today)
    if len(words) == 1:
        match = _LENGTH.fullmatch(words[0])
        if not match:
            return None
        number, unit = int(match[1]), match[2].lower()
        if number < 1:
            return None
        if unit in ("m", "м"):
            if number > MAX_DAYS // 30:
                return None
            period = Period(months_back(today, number) + timedelta(days=1), today)
        else:
            days = number * (7 if unit in ("w", "н") else 1)
            period = Period(today - timedelta(days=days - 1), today)
    elif len(words) == 2:
        first, last = (_date(word) for word in words)
        if first is None or last is None:
            return None
        period = Period(first, last)
    else:
        return None
    return period if 1 <= period.days <= MAX_DAYS else None


def _date(word: str) -> date | None:
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(word, pattern).date()
        except ValueError:
            continue
    return None


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _change(now: float | None, before: float | None) -> float | None:
    """In percentage points."""
    return None if now is None or before is None else round(100 * (now - before), 1)


@dataclass(frozen=True)
class Split:
    """One period's sales, with shares as fractions (0.3 is 30 %; None with no sales)."""

    period: Period
    sales: PeriodSales

    @property
    def first_share(self) -> float | None:
        return _share(self.sales.first, self.sales.sales)

    @property
    def repeat_share(self) -> float | None:
        return _share(self.sales.repeat, self.sales.sales)

    @property
    def first_money_share(self) -> float | None:
        return _share(self.sales.first_minor, self.sales.money_minor)

    @property
    def repeat_money_share(self) -> float | None:
        return _share(self.sales.repeat_minor, self.sales.money_minor)

    @property
    def average_check_minor(self) -> int | None:
        s = self.sales
        return round(s.money_minor / s.sales) if s.sales else None

    @property
    def average_interval_days(self) -> float | None:
        s = self.sales
        return round(s.gap_days / s.gaps, 1) if s.gaps else None


@dataclass(frozen=True)
class Customers:
    """The period's customers. New: their first purchase ever was in it; returning: bought in it
    and before it. Sleeping and lost are as of now, exactly as `/sleeping` counts: past their
    latest cycle's sleep moment with nothing booked; lost: asleep `lost_after_days` or more on
    end (they are among the sleeping too). Asleep at the start: by the rhythm they have now, the
    time since their last purchase before the period was past their sleep span; woke up: of
    them, those who bought in the period. Fell asleep: their current sleep began in the period
    and goes on."""

    new: int
    returning: int
    sleeping: int
    lost: int
    asleep_at_start: int
    woke: int
    fell_asleep: int
    period_days: int
    lost_after_days: int
    average_check_minor: int | None
    interval_days: float | None  # the average interval between visits ending in the period
    previous_interval_days: float | None  # the same in the previous period
    ltv_minor: int | None  # spent in their first 12 months, per customer (cohorts with 12 over)
    ltv_customers: int  # the customers behind it

    @property
    def interval_trend_days(self) -> float | None:
        """The change of the average interval since the previous period, in days (less: they
        come more often)."""
        if self.interval_days is None or self.previous_interval_days is None:
            return None
        return round(self.interval_days - self.previous_interval_days, 1)

    @property
    def wake_share_measured(self) -> bool:
        return self.asleep_at_start >= MEASURED_FROM

    @property
    def wake_share(self) -> float:
        """The measured wake-up share: of the customers asleep at the period's start, the share
        who bought in it (whatever woke them: a message or not). Measured once at least
        MEASURED_FROM were asleep (fewer say little); article 002's 30 % until then. Over a
        longer period more of them come back: it is the share over this period."""
        if not self.wake_share_measured:
            return DEFAULT_WAKE_SHARE
        return self.woke / self.asleep_at_start

    @property
    def fell_asleep_a_month(self) -> float:
        return self.fell_asleep * DAYS_A_MONTH / self.period_days

    @property
    def sleeping_cost_minor(self) -> int | None:
        """What sleeping costs a month, article 002's estimate: customers falling asleep a month
        (those whose sleep began in the period and goes on, per month of it; the article's 40 a
        week) × the wake-up share × the average check: what waking them would bring back. In
        whole units of money (an estimate has no kopecks)."""
        if self.average_check_minor is None:
            return None
        cost = self.fell_asleep_a_month * self.wake_share * self.average_check_minor
        return round(cost / 100) * 100  # an estimate: in whole roubles (units)


@dataclass(frozen=True)
class StatsReport:
    current: Split
    previous: Split
    customers: Customers | None = None
    cohorts: tuple[Cohort, ...] = ()  # those `StatsService.cohorts` gives for the period

    @property
    def repeat_change(self) -> float | None:
        """The repeat share's change since the previous period, percentage points, by count."""
        return _change(self.current.repeat_share, self.previous.repeat_share)

    @property
    def repeat_money_change(self) -> float | None:
        return _change(self.current.repeat_money_share, self.previous.repeat_money_share)


class StatsService:
    def __init__(
        self, db: Database, clock: Clock, tz: ZoneInfo, sleeping: Sleeping | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz
        self.sleeping = sleeping or Sleeping()

    def today(self) -> date:
        return self.clock.now().astimezone(self.tz).date()

    def period(self, text: str | None) -> Period | None:
        """The period a staff member asked for (see `parse_period`), None when it is not one."""
        return parse_period(text, self.today())

    async def report(self, period: Period) -> StatsReport:
        """The period and the one before it (one statement), its customers and cohorts."""
        previous = period.previous()
        start, end = period.bounds(self.tz)
        now = self.clock.now()
        lost_since = now - timedelta(days=self.sleeping.lost_after_days)
        async with self.db.reading() as repos:
            await repos.stats.prepare()
            days_through, months_through = await self._closed(repos)
            current_sales, previous_sales = await self._sales(
                repos, [period, previous], days_through
            )
            stats = repos.stats
            sleep = await stats.sleepers(now=now, start=start, end=end, lost_since=lost_since)
            months = self._months(period)
            count = self._cohort_count(period, months)
            cohorts = await self._cohorts(repos, months, count, months_through)
        current, before = Split(period, current_sales), Split(previous, previous_sales)
        ripe = [c for c in cohorts if len(c.returned) > LTV_MONTHS]  # their 12 months are over
        ltv_customers = sum(c.customers for c in ripe)
        customers = Customers(
            new=current_sales.new,
            returning=current_sales.returning,
            sleeping=sleep.sleeping,
            lost=sleep.lost,
            asleep_at_start=sleep.asleep_at_start,
            woke=sleep.woke,
            fell_asleep=sleep.fell_asleep,
            period_days=period.days,
            lost_after_days=self.sleeping.lost_after_days,
            average_check_minor=current.average_check_minor,
            interval_days=current.average_interval_days,
            previous_interval_days=before.average_interval_days,
            ltv_minor=(
                round(sum(c.revenue_12m_minor for c in ripe) / ltv_customers)
                if ltv_customers
                else None
            ),
            ltv_customers=ltv_customers,
        )
        return StatsReport(current, before, customers, tuple(cohorts))

    def _month_starts(self, period: Period) -> list[date]:
        """The first days of the months from 12 months before the period's last month (or from
        its first month, when it is longer) to the current month: the oldest cohort's first
        year is over when the period ends this month."""
        last = period.last_day.replace(day=1)
        first = min(period.first_day.replace(day=1), months_back(last, CHART_MONTHS - 1))
        through = max(last, self.today().replace(day=1))
        found = []
        while first <= through:
            found.append(first)
            first = months_back(first, -1)
        return found

    def _months(self, period: Period) -> list[Month]:
        starts = self._month_starts(period)
        return self._month_list(starts[0], starts[-1])

    @staticmethod
    def _cohort_count(period: Period, months: list[Month]) -> int:
        """Cohorts are the months up to the period's last."""
        last = period.last_day.replace(day=1)
        return sum(1 for m in months if m.first_day <= last)

    async def months(self, period: Period) -> list[MonthShare]:
        """The repeat share by calendar month (the chart): from 12 months before the period's
        last month (or its first month, when it is longer) to its last month."""
        months = self._months(period)
        months = months[: self._cohort_count(period, months)]
        async with self.db.reading() as repos:
            await repos.stats.prepare()
            through, _ = await self._closed(repos)
            if through is None or through < months[0].first_day:
                return await repos.stats.months(months)
            closed: dict[date, list[PeriodSales]] = {}
            for day, sales in await repos.stats.closed_days(months[0].first_day, through):
                closed.setdefault(day.replace(day=1), []).append(sales)
            open_from = self._start_of(through + timedelta(days=1))
            parts = [m for m in months if m.end > open_from]
            live = await repos.stats.sales([(max(m.start, open_from), m.end) for m in parts])
            for m, sales in zip(parts, live, strict=True):
                closed.setdefault(m.first_day, []).append(sales)
        shares = []
        for m in months:
            s = _summed(closed.get(m.first_day, []))
            shares.append(
                MonthShare(
                    month=m.first_day,
                    sales=s.sales,
                    repeat=s.repeat,
                    money_minor=s.money_minor,
                    repeat_minor=s.repeat_minor,
                )
            )
        return shares

    async def cohorts(self, period: Period) -> list[Cohort]:
        """Customers by the month of their first purchase, for the months of `months(period)`;
        how many bought again each month since, up to the current month (a cohort's returns go
        on after the period ends), and what they spent in their first 12 months (LTV)."""
        months = self._months(period)
        async with self.db.reading() as repos:
            await repos.stats.prepare()
            _, through = await self._closed(repos)
            return await self._cohorts(repos, months, self._cohort_count(period, months), through)

    def _start_of(self, day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=self.tz)

    async def _closed(self, repos: Repos) -> tuple[date | None, date | None]:
        """The last closed day and the first day of the last closed month that still hold: a
        purchase written into a closed day after it was counted (not by an import, which
        reopens them itself) makes the days from its own and the months from its month count
        live until the planner closes them again."""
        return await self._closed_given(repos, await repos.stats.stale_since())

    async def _closed_given(
        self, repos: Repos, stale: datetime | None
    ) -> tuple[date | None, date | None]:
        """`_closed`, with `stale_since()` already read."""
        stats = repos.stats
        days, months = await stats.days_closed_through(), await stats.months_closed_through()
        if stale is not None:
            day = stale.astimezone(self.tz).date()
            if days is not None and day <= days:
                days = day - timedelta(days=1)
            if months is not None and day.replace(day=1) <= months:
                months = months_back(day.replace(day=1), 1)
        return days, months

    async def _sales(
        self, repos: Repos, periods: list[Period], through: date | None
    ) -> list[PeriodSales]:
        """Each period's sales: the closed days' sums (`sales_days`) and the days after them
        counted live, by the same `StatsRepo.sales`; its distinct customers counted over the
        whole period (the returning are those of them not new). `through`: the last closed
        day that holds (`_closed`)."""
        stats = repos.stats
        if through is None or through < min(p.first_day for p in periods):
            return await stats.sales([p.bounds(self.tz) for p in periods])
        open_from = through + timedelta(days=1)
        live_parts = [
            (self._start_of(max(p.first_day, open_from)), p.bounds(self.tz)[1])
            for p in periods
            if p.last_day >= open_from
        ]
        live = iter(await stats.sales(live_parts))
        closed = [p for p in periods if p.first_day <= through]
        buyers = dict(
            zip(
                (id(p) for p in closed),
                await stats.buyers([p.bounds(self.tz) for p in closed]),
                strict=True,
            )
        )
        found = []
        for p in periods:
            parts = [s for _, s in await stats.closed_days(p.first_day, min(p.last_day, through))]
            if p.last_day >= open_from:
                parts.append(next(live))
            total = _summed(parts)
            customers = buyers.get(id(p), total.customers)
            found.append(replace(total, customers=customers, returning=customers - total.first))
        return found

    async def _cohorts(
        self, repos: Repos, months: list[Month], count: int, through: date | None
    ) -> list[Cohort]:
        """The cohorts of `months`: the closed months' cells (`cohort_months`) and the months
        after them counted live, by the same `StatsRepo.cohort_cells`. `through`: the first day
        of the last closed month that holds (`_closed`)."""
        if not months or count < 1:
            return []
        stats = repos.stats
        if through is None or through < months[0].first_day:
            return await stats.cohorts(months, count)
        days = [m.first_day for m in months]
        cells = await stats.closed_cells(days[:count], [d for d in days if d <= through])
        cells |= await stats.cohort_cells(
            months[:count], [m for m in months if m.first_day > through]
        )
        return cohorts_of(days, count, cells)

    async def close(self) -> int:
        """The planner's step: the oldest days and months that are over and not closed yet (at
        most CLOSE_DAYS and CLOSE_MONTHS a run, so a run stays short and a backlog goes oldest
        first) counted by the live path's own statements and kept in `sales_days` and
        `cohort_months`; closing again replaces. How many days and months were closed.

        On SQLite they are counted in a read transaction and written in a short one after (a
        write transaction holds off every other writer, staff sales too, for as long as it
        lasts); a purchase written in between has an id after `counted_to` and is found by the
        next report and closing. On PostgreSQL one transaction, which holds off an import's
        reopening until it commits (ids there may commit out of order)."""
        if self.db.engine.dialect.name == "postgresql":
            async with self.db.transaction() as repos:
                await repos.stats.lock_closing()
                closing = await self._counted(repos)
                return await self._kept(repos, closing)
        async with self.db.reading() as repos:
            closing = await self._counted(repos)
        if closing is None:
            return 0
        async with self.db.transaction() as repos:
            return await self._kept(repos, closing)

    async def _counted(self, repos: Repos) -> _Closing | None:
        """The next days and months to close, counted (nothing written)."""
        today = self.today()
        stats = repos.stats
        await stats.prepare()  # PostgreSQL: months of sales grouped by customer, in memory
        first_at = await stats.first_purchase_at()
        if first_at is None:
            return None
        first_day = first_at.astimezone(self.tz).date()
        stale = await stats.stale_since()
        counted_to = await stats.last_purchase_id()
        through, month = await self._closed_given(repos, stale)  # less what `stale` reopens
        start = through + timedelta(days=1) if through is not None else first_day
        days = [
            start + timedelta(days=n) for n in range(min(CLOSE_DAYS, max(0, (today - start).days)))
        ]
        counted: list[tuple[date, PeriodSales]] = []
        for chunk in range(0, len(days), DAYS_PER_STATEMENT):
            some = days[chunk : chunk + DAYS_PER_STATEMENT]
            ranges = [(self._start_of(d), self._start_of(d + timedelta(days=1))) for d in some]
            counted += zip(some, await stats.sales(ranges), strict=True)
        first_month = months_back(month, -1) if month else first_day.replace(day=1)
        months: list[date] = []
        while first_month < today.replace(day=1) and len(months) < CLOSE_MONTHS:
            months.append(first_month)
            first_month = months_back(first_month, -1)
        cells: dict[tuple[date, date], tuple[int, int, int]] = {}
        if months:
            cohorts = self._month_list(first_day.replace(day=1), months[-1])
            chosen = [m for m in cohorts if m.first_day in set(months)]
            cells = await stats.cohort_cells(cohorts, chosen)
        reopen = stale.astimezone(self.tz).date() if stale is not None else None
        if reopen is None and not counted and not months:
            return None  # all closed already: no write transaction to open
        return _Closing(reopen, counted_to, counted, months, cells)

    @staticmethod
    async def _kept(repos: Repos, closing: _Closing | None) -> int:
        if closing is None:
            return 0
        if closing.reopen_from is not None:
            await repos.stats.reopen_from(closing.reopen_from)
        await repos.stats.close_days(closing.days, closing.counted_to)
        await repos.stats.close_months(closing.months, closing.cells)
        return len(closing.days) + len(closing.months)

    def _month_list(self, first: date, last: date) -> list[Month]:
        """The months from `first` to `last` (first days) as local ranges."""
        found = []
        while first <= last:
            following = months_back(first, -1)
            found.append(Month(first, self._start_of(first), self._start_of(following)))
            first = following
        return found

    def register(self, features: Features) -> None:
        """Closed days and months are counted with the outbox's planners (now, then every few
        minutes; `carebot tick`)."""
        features.plan("stats_days", self.close)


@dataclass(frozen=True)
class _Closing:
    """What one closing run counted, to be written."""

    reopen_from: date | None  # a purchase written into a closed day: from its day on
    counted_to: int  # the last purchase id when counting began
    days: list[tuple[date, PeriodSales]]
    months: list[date]
    cells: dict[tuple[date, date], tuple[int, int, int]]


def _summed(parts: list[PeriodSales]) -> PeriodSales:
    """Days' or parts' sales added up (their distinct customers are not: see `_sales`)."""
    return PeriodSales(
        sales=sum(p.sales for p in parts),
        first=sum(p.first for p in parts),
        money_minor=sum(p.money_minor for p in parts),
        first_minor=sum(p.first_minor for p in parts),
        customers=sum(p.customers for p in parts),
        returning=sum(p.returning for p in parts),
        gaps=sum(p.gaps for p in parts),
        gap_days=sum(p.gap_days for p in parts),
    )
