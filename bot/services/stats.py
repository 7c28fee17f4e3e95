"""The owner's numbers for `/stats`: the starting point of the articles (seeds 003, step 1 and 3).

Take the sales of the period (by default the last three months, as the articles do) and split
them into first sales (a customer's first purchase ever) and repeat sales (to a customer who had
bought before, also before the period, also in the imported history); the share of repeat sales,
by count and by money, is the number everything else exists to raise. The same for the period of
equal length just before, and the change in percentage points. Beside it: customers new in the
period, returning (bought in it and before it), the average check, and the average interval
between a customer's consecutive visits (the frequency).

Days are the business's: a period is whole local days [first_day, last_day].
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.db.repositories import Database
from bot.db.stats import PeriodSales

DEFAULT_MONTHS = 3
MAX_DAYS = 3660  # ten years: longer is a typo
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
class StatsReport:
    current: Split
    previous: Split

    @property
    def repeat_change(self) -> float | None:
        """The repeat share's change since the previous period, percentage points, by count."""
        return _change(self.current.repeat_share, self.previous.repeat_share)

    @property
    def repeat_money_change(self) -> float | None:
        return _change(self.current.repeat_money_share, self.previous.repeat_money_share)


class StatsService:
    def __init__(self, db: Database, clock: Clock, tz: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz

    def today(self) -> date:
        return self.clock.now().astimezone(self.tz).date()

    def period(self, text: str | None) -> Period | None:
        """The period a staff member asked for (see `parse_period`), None when it is not one."""
        return parse_period(text, self.today())

    async def report(self, period: Period) -> StatsReport:
        """The period and the one before it, in one statement."""
        previous = period.previous()
        async with self.db.reading() as repos:
            current_sales, previous_sales = await repos.stats.sales(
                [period.bounds(self.tz), previous.bounds(self.tz)]
            )
        return StatsReport(Split(period, current_sales), Split(previous, previous_sales))
