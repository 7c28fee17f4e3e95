"""`/stats`: the articles' starting point (seeds 003, step 1) built by hand. 60 sales in the last
three months, 42 first and 18 repeat, say 30 % repeat (70 % first), by count and by money; the
previous period and the change; history before the period, imported visits and erased customers
all count."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FixedClock
from bot.db.models import Customer, Purchase
from bot.db.repositories import Database
from bot.rendering import Renderer
from bot.services.stats import Period, StatsService, months_back, parse_period
from tests.unit.test_query_counts import cost

MOSCOW = ZoneInfo("Europe/Moscow")
TODAY = date(2026, 11, 23)  # the tests' clock, in Moscow
FIRST_MINOR, REPEAT_MINOR = 100000, 140000  # 1 000 ₽ a first sale, 1 400 ₽ a repeat one


def local(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=MOSCOW)


async def buyer(
    db: Database,
    sales: list[tuple[datetime, int]],
    *,
    imported: int = 0,
    erased: bool = False,
) -> int:
    """A customer and their purchases; the first `imported` are visits from the previous base."""
    async with db.transaction() as repos:
        customer = Customer(
            name=None if erased else "Клиент",
            created_at=sales[0][0],
            erased_at=local(2026, 11, 1) if erased else None,
            source="import" if imported else None,
        )
        repos.customers.add(customer)
        await repos.customers.flush()
        for i, (at, amount) in enumerate(sales):
            key = f"{customer.id}:{at.date()}:x" if i < imported else None
            await repos.purchases.add(
                Purchase(customer_id=customer.id, amount_minor=amount, at=at, import_key=key)
            )
        return customer.id


async def articles_example(db: Database) -> None:
    """The period is 24.08.2026–23.11.2026 (3 months up to today), the previous one
    24.05.2026–23.08.2026 (92 days each).

    In the period: 42 new customers (one first sale each: 42 first sales, 42 000 ₽) and 18 repeat
    sales of 1 400 ₽ (25 200 ₽): 6 customers who bought before the period buy twice (12, one of
    them since erased), 3 customers from the imported base buy once (3), and 3 of the new ones
    come back (3). Previous period: the 6 bought once (6 first), the imported ones' visits
    (3 first, and 1 repeat: one had two visits), all at 1 000 ₽: 10 sales, 10 % repeat."""
    for i in range(42):
        if i == 0:
            first = local(2026, 8, 24, 0, 0)  # the period's first moment
        elif i == 1:
            first = local(2026, 11, 23, 23, 59)  # its last day, late
        else:
            first = local(2026, 8, 25) + (local(2026, 8, 26) - local(2026, 8, 25)) * (i * 2)
        sales = [(first, FIRST_MINOR)]
        if 2 <= i < 5:  # 3 of the new come back after 10 days
            sales = [(local(2026, 9, 10), FIRST_MINOR), (local(2026, 9, 20), REPEAT_MINOR)]
        await buyer(db, sales)
    for i in range(6):  # bought on 01.07 (previous period), again on 01.09 and 01.10
        await buyer(
            db,
            [
                (local(2026, 7, 1), FIRST_MINOR),
                (local(2026, 9, 1), REPEAT_MINOR),
                (local(2026, 10, 1), REPEAT_MINOR),
            ],
            erased=i == 0,
        )
    await buyer(  # imported visits on 01.06 and 11.06, back on 01.09
        db,
        [
            (local(2026, 6, 1), FIRST_MINOR),
            (local(2026, 6, 11), FIRST_MINOR),
            (local(2026, 9, 1), REPEAT_MINOR),
        ],
        imported=2,
    )
    for _ in range(2):  # an imported visit on 01.06, back on 01.09
        await buyer(
            db, [(local(2026, 6, 1), FIRST_MINOR), (local(2026, 9, 1), REPEAT_MINOR)], imported=1
        )
    await buyer(db, [(local(2026, 11, 24, 0, 0), FIRST_MINOR)])  # tomorrow: in neither period


@pytest.fixture
def stats(db: Database, clock: FixedClock) -> StatsService:
    return StatsService(db, clock, MOSCOW)


async def test_the_articles_example_says_30_percent_repeat(
    db: Database, stats: StatsService
) -> None:
    await articles_example(db)
    period = stats.period(None)
    assert period == Period(date(2026, 8, 24), date(2026, 11, 23))
    report = await stats.report(period)
    now, before = report.current, report.previous
    assert before.period == Period(date(2026, 5, 24), date(2026, 8, 23))
    s = now.sales
    assert (s.sales, s.first, s.repeat) == (60, 42, 18)
    assert now.repeat_share == pytest.approx(0.30) and now.first_share == pytest.approx(0.70)
    assert (s.first_minor, s.repeat_minor, s.money_minor) == (4200000, 2520000, 6720000)
    assert now.repeat_money_share == pytest.approx(0.375)
    assert now.first_money_share == pytest.approx(0.625)
    assert (s.customers, s.new, s.returning) == (51, 42, 9)
    assert now.average_check_minor == 112000
    # 6 × (62 + 30) days, 82, 2 × 92, 3 × 10: 848 days over 18 intervals
    assert s.gaps == 18 and now.average_interval_days == pytest.approx(47.1)
    b = before.sales
    assert (b.sales, b.first, b.repeat, b.money_minor) == (10, 9, 1, 1000000)
    assert (b.customers, b.new, b.returning) == (9, 9, 0)
    assert before.repeat_share == pytest.approx(0.10)
    assert report.repeat_change == pytest.approx(20.0)
    assert report.repeat_money_change == pytest.approx(27.5)


async def test_the_text_says_it_the_russian_way(db: Database, stats: StatsService) -> None:
    await articles_example(db)
    period = stats.period(None)
    assert period is not None
    report = await stats.report(period)
    render = Renderer(MOSCOW)
    text = render.text("ru", "stats", usage=False, report=report, currency="₽")
    assert "24.08.2026 — 23.11.2026" in text
    assert "60 продаж на 67\u00a0200\u00a0₽" in text
    assert "первые: 42 (70\u00a0%) · 42\u00a0000\u00a0₽ (62,5\u00a0%)" in text
    assert "повторные: 18 (30\u00a0%) · 25\u00a0200\u00a0₽ (37,5\u00a0%)" in text
    assert "Доля повторных: 30\u00a0%</b> по числу, 37,5\u00a0% по деньгам" in text
    assert "+20 п.п. по числу, +27,5 п.п. по деньгам" in text
    assert "Купили: 51 · новых: 42 · вернувшихся: 9" in text
    assert "Средний чек: 1\u00a0120\u00a0₽" in text and "47,1 дн." in text
    english = render.text("en", "stats", usage=False, report=report, currency="₽")
    assert "repeat: 18 (30%) · 25,200\u00a0₽ (37.5%)" in english and "+20 pp by count" in english


async def test_an_earlier_purchase_makes_the_sale_repeat(db: Database, stats: StatsService) -> None:
    """A purchase long before the period (and before the previous one) still makes a sale in
    the period a repeat one; a second sale the same day is a repeat sale, not an interval."""
    await buyer(db, [(local(2025, 1, 10), FIRST_MINOR), (local(2026, 10, 1), FIRST_MINOR)])
    await buyer(db, [(local(2026, 10, 5, 10), 5000), (local(2026, 10, 5, 11), 7000)])
    report = await stats.report(Period(date(2026, 9, 1), date(2026, 10, 31)))
    s = report.current.sales
    assert (s.sales, s.first, s.repeat, s.customers, s.new, s.returning) == (3, 1, 2, 2, 1, 1)
    assert s.gaps == 1 and report.current.average_interval_days == pytest.approx(629.0)
    assert report.previous.sales.sales == 0 and report.repeat_change is None


async def test_nothing_sold(db: Database, stats: StatsService) -> None:
    report = await stats.report(Period(date(2026, 9, 1), date(2026, 9, 30)))
    assert report.current.sales.sales == 0 and report.current.repeat_share is None
    assert report.current.average_check_minor is None
    text = Renderer(MOSCOW).text("ru", "stats", usage=False, report=report, currency="₽")
    assert "Продаж за период не было." in text and "продаж не было." in text


async def test_one_statement_whatever_the_history(db: Database, stats: StatsService) -> None:
    period = Period(date(2026, 8, 24), date(2026, 11, 23))
    await buyer(db, [(local(2026, 9, 1), FIRST_MINOR)])
    few, _ = await cost(db, lambda: stats.report(period))
    await articles_example(db)
    many, report = await cost(db, lambda: stats.report(period))
    assert few == many and report.current.sales.sales == 61


@pytest.mark.parametrize(
    ("text", "period"),
    [
        (None, Period(date(2026, 8, 24), date(2026, 11, 23))),
        ("", Period(date(2026, 8, 24), date(2026, 11, 23))),
        ("30", Period(date(2026, 10, 25), date(2026, 11, 23))),
        ("30d", Period(date(2026, 10, 25), date(2026, 11, 23))),
        ("2w", Period(date(2026, 11, 10), date(2026, 11, 23))),
        ("1M", Period(date(2026, 10, 24), date(2026, 11, 23))),
        ("6м", Period(date(2026, 5, 24), date(2026, 11, 23))),
        ("01.09.2026 30.11.2026", Period(date(2026, 9, 1), date(2026, 11, 30))),
        ("2026-01-01 2026-03-31", Period(date(2026, 1, 1), date(2026, 3, 31))),
        ("1", Period(TODAY, TODAY)),
    ],
)
def test_periods(text: str | None, period: Period) -> None:
    assert parse_period(text, TODAY) == period


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "abc",
        "-5",
        "3y",
        "99999",
        "31.02.2026 01.03.2026",
        "01.03.2026 01.02.2026",
        "01.01.2000 01.01.2026",
        "01.09.2026",
        "1 2 3",
        "121m",
    ],
)
def test_not_periods(text: str) -> None:
    assert parse_period(text, TODAY) is None


def test_months_back_keeps_the_day_or_the_months_last() -> None:
    assert months_back(date(2026, 5, 31), 3) == date(2026, 2, 28)
    assert months_back(date(2026, 1, 15), 1) == date(2025, 12, 15)
    assert Period(date(2026, 8, 24), date(2026, 11, 23)).previous() == Period(
        date(2026, 5, 24), date(2026, 8, 23)
    )


async def test_the_same_numbers_whichever_way_the_sales_are_read(
    db: Database, stats: StatsService
) -> None:
    """Periods that are most of the history are read in one pass over it, a short part of it
    (on SQLite) with a seek per sale: a customer who bought once in 2015 (in neither period)
    makes the default periods a short part, and changes no number."""
    await articles_example(db)
    period = Period(date(2026, 8, 24), date(2026, 11, 23))
    one_pass = await stats.report(period)
    await buyer(db, [(local(2015, 3, 1), FIRST_MINOR)])
    seeks = await stats.report(period)
    assert seeks.current.sales == one_pass.current.sales
    assert seeks.previous.sales == one_pass.previous.sales
    assert seeks.current.sales.sales == 60 and seeks.previous.sales.gaps == 1
