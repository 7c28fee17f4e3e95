"""`/stats`: every number of the summary against a fixture computed by hand (issue 17): sales
first and repeat, customers new, returning, sleeping, lost, woken up, fallen asleep, the interval
and its trend, the average check, what sleeping costs, LTV, each cohort's cells and each month's
repeat share. The arithmetic is in the comments.

Today is 23.11.2026 (the tests' clock: 12:00 in Moscow). The period is October 2026
(01.10–31.10, 31 days); the previous one 31.08–30.09 (31 days). Sales at 12:00 Moscow unless said.
Each customer's rhythm is their cycle: they fall asleep `span` days after their last visit.

    A  10.11.2025 1 000 ₽, 20.11.2025 1 000 ₽, 15.01.2026 2 000 ₽, 05.10.2026 3 000 ₽; span 60
    B  25.11.2025 1 500 ₽, 10.02.2026 1 500 ₽; span 30 (asleep since 12.03.2026: lost)
    H  05.12.2025 1 000 ₽, 15.09.2026 1 000 ₽; span 90
    C  10.09.2026 1 000 ₽, 10.10.2026 1 200 ₽; span 40 (asleep since 19.11.2026)
    D  02.10.2026 800 ₽; span 14 (asleep since 16.10.2026: fell asleep in the period)
    E  20.10.2026 1 000 ₽ and 20.10.2026 18:00 500 ₽ (the same visit); span 60
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.business import Sleeping
from bot.clock import FixedClock
from bot.db.models import Customer, Cycle, Purchase
from bot.db.repositories import Database
from bot.rendering import Renderer
from bot.services.stats import Period, StatsService

MOSCOW = ZoneInfo("Europe/Moscow")
OCTOBER = Period(date(2026, 10, 1), date(2026, 10, 31))
RUB = 100  # minor units in a rouble


def local(y: int, m: int, d: int, hh: int = 12) -> datetime:
    return datetime(y, m, d, hh, tzinfo=MOSCOW)


async def customer(db: Database, sales: list[tuple[datetime, int]], span_days: int) -> int:
    """A customer, their purchases (roubles), and their cycle as the cycle service keeps it:
    asleep `span_days` after the last visit."""
    async with db.transaction() as repos:
        person = Customer(name="Клиент", created_at=sales[0][0])
        repos.customers.add(person)
        await repos.customers.flush()
        last = None
        for at, roubles in sales:
            last = await repos.purchases.add(
                Purchase(
                    customer_id=person.id, amount_minor=roubles * RUB, at=at, service_id="manicure"
                )
            )
        assert last is not None
        repos.cycles.add(
            Cycle(
                customer_id=person.id,
                service_id="manicure",
                last_purchase_id=last.id,
                last_visit_at=last.at,
                interval_days=span_days / 2,
                learned=True,
                sleeps_at=last.at + timedelta(days=span_days),
                round=0,
                ignored=0,
            )
        )
        return person.id


async def fixture(db: Database) -> None:
    await customer(
        db,
        [
            (local(2025, 11, 10), 1000),
            (local(2025, 11, 20), 1000),
            (local(2026, 1, 15), 2000),
            (local(2026, 10, 5), 3000),
        ],
        60,
    )
    await customer(db, [(local(2025, 11, 25), 1500), (local(2026, 2, 10), 1500)], 30)
    await customer(db, [(local(2025, 12, 5), 1000), (local(2026, 9, 15), 1000)], 90)
    await customer(db, [(local(2026, 9, 10), 1000), (local(2026, 10, 10), 1200)], 40)
    await customer(db, [(local(2026, 10, 2), 800)], 14)
    await customer(db, [(local(2026, 10, 20), 1000), (local(2026, 10, 20, 18), 500)], 60)


@pytest.fixture
def stats(db: Database, clock: FixedClock) -> StatsService:
    return StatsService(db, clock, MOSCOW, Sleeping(lost_after_days=180))


async def test_every_number_of_the_summary(db: Database, stats: StatsService) -> None:
    await fixture(db)
    report = await stats.report(OCTOBER)
    now, before, c = report.current, report.previous, report.customers
    assert c is not None
    assert before.period == Period(date(2026, 8, 31), date(2026, 9, 30))

    # October: A 3 000 (repeat), C 1 200 (repeat), D 800 (first), E 1 000 (first) and 500
    # (repeat): 5 sales, 2 first, 3 repeat = 60 %; 6 500 ₽, of it 1 800 first, 4 700 repeat
    s = now.sales
    assert (s.sales, s.first, s.repeat) == (5, 2, 3)
    assert (s.money_minor, s.first_minor, s.repeat_minor) == (6500 * RUB, 1800 * RUB, 4700 * RUB)
    assert now.repeat_share == pytest.approx(0.6)
    assert now.repeat_money_share == pytest.approx(4700 / 6500)
    # September: C 1 000 (first), H 1 000 (repeat): 50 %; change +10 pp
    assert (before.sales.sales, before.sales.first) == (2, 1)
    assert report.repeat_change == pytest.approx(10.0)
    assert report.repeat_money_change == pytest.approx(round(100 * (4700 / 6500 - 0.5), 1))

    # customers who bought in October: A, C, D, E; new: D, E; returning: A, C
    assert (s.customers, c.new, c.returning) == (4, 2, 2)
    # average check: 6 500 ₽ / 5 = 1 300 ₽
    assert c.average_check_minor == 1300 * RUB
    # intervals ending in October: A 15.01 → 05.10 = 263 days, C 10.09 → 10.10 = 30 days (E's
    # second sale is the same visit): 146.5; September: H 05.12.2025 → 15.09 = 284 days
    assert c.interval_days == pytest.approx(146.5)
    assert c.previous_interval_days == pytest.approx(284.0)
    assert c.interval_trend_days == pytest.approx(-137.5)

    # asleep now (23.11): B since 12.03, C since 19.11, D since 16.10 (A wakes up on 04.12,
    # H on 14.12, E on 19.12); lost, asleep since before 27.05 (180 days ago): B
    assert (c.sleeping, c.lost) == (3, 1)
    # asleep on 01.10: A (last 15.01, 259 days ≥ 60), B (10.02, ≥ 30); not C (10.09: 21 days
    # < 40), H (15.09: 16 < 90), D and E (no purchase before). Woke up: A bought on 05.10
    assert (c.asleep_at_start, c.woke) == (2, 1)
    # fell asleep in October and still asleep: D (16.10); C only on 19.11
    assert c.fell_asleep == 1
    # 2 asleep at the start is too few to measure: the article's 30 %
    assert not c.wake_share_measured and c.wake_share == pytest.approx(0.30)
    # cost: 1 a period × 30.4375 / 31 days = 0.98 a month × 0.30 × 1 300 ₽ = 382.92 ₽ → 383 ₽
    assert c.fell_asleep_a_month == pytest.approx(30.4375 / 31)
    assert c.sleeping_cost_minor == 383 * RUB

    # LTV: only November 2025's cohort (A, B) has a whole year: A 7 000 ₽ + B 3 000 ₽ in their
    # first 12 months = 5 000 ₽ each
    assert (c.ltv_minor, c.ltv_customers) == (5000 * RUB, 2)

    # cohorts: October 2025 … October 2026 (12 before October), returns up to November 2026
    cohorts = await stats.cohorts(OCTOBER)
    assert cohorts == list(report.cohorts)
    assert cohorts[0].month == date(2025, 10, 1) and cohorts[0].customers == 0
    assert cohorts[0].returned == (0,) * 14  # October 2025 … November 2026
    cohorts = cohorts[1:]
    assert [x.month for x in cohorts] == [
        date(2025 + (10 + i) // 12, (10 + i) % 12 + 1, 1) for i in range(12)
    ]
    by_month = {x.month: x for x in cohorts}
    november = by_month[date(2025, 11, 1)]
    # A again in November itself (20.11), in January (k=2), in October (k=11); B in February (k=3)
    assert november.customers == 2
    assert november.returned == (1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0)
    assert november.revenue_12m_minor == 10000 * RUB and november.ltv_minor == 5000 * RUB
    assert november.retention(0) == pytest.approx(0.5)
    december = by_month[date(2025, 12, 1)]  # H, again in September 2026 (k=9)
    assert (december.customers, december.returned) == (1, (0,) * 9 + (1, 0, 0))
    assert december.revenue_12m_minor == 2000 * RUB
    september = by_month[date(2026, 9, 1)]  # C, again in October
    assert (september.customers, september.returned, september.revenue_12m_minor) == (
        1,
        (0, 1, 0),
        2200 * RUB,
    )
    october = by_month[date(2026, 10, 1)]  # D and E; E twice in October
    assert (october.customers, october.returned, october.revenue_12m_minor) == (
        2,
        (1, 0),
        2300 * RUB,
    )
    for empty in (date(2026, m, 1) for m in range(1, 9)):  # January … August: nobody new
        assert by_month[empty].customers == 0 and not any(by_month[empty].returned)
    assert len(by_month[date(2026, 1, 1)].returned) == 11  # January … November

    # months: the repeat share of each month, October 2025 … October 2026
    months = {m.month: m for m in await stats.months(OCTOBER)}
    assert list(months) == [date(2025, 10, 1)] + [x.month for x in cohorts]
    shares = {
        date(2025, 11, 1): (3, 1, 3500, 1000),  # A, A again, B
        date(2025, 12, 1): (1, 0, 1000, 0),  # H
        date(2026, 1, 1): (1, 1, 2000, 2000),  # A
        date(2026, 2, 1): (1, 1, 1500, 1500),  # B
        date(2026, 9, 1): (2, 1, 2000, 1000),  # C first, H again
        date(2026, 10, 1): (5, 3, 6500, 4700),
    }
    for month, m in months.items():
        sales, repeat, money, repeat_money = shares.get(month, (0, 0, 0, 0))
        assert (m.sales, m.repeat, m.money_minor, m.repeat_minor) == (
            sales,
            repeat,
            money * RUB,
            repeat_money * RUB,
        ), month
    assert months[date(2026, 10, 1)].repeat_share == pytest.approx(0.6)


async def test_the_summary_says_it(db: Database, stats: StatsService) -> None:
    await fixture(db)
    report = await stats.report(OCTOBER)
    render = Renderer(MOSCOW)
    text = render.text("ru", "stats", usage=False, report=report, currency="₽")
    assert "Купили: 4 · новых: 2 · вернувшихся: 2" in text
    assert "Спят сейчас: 3 · из них потеряны (спят дольше 180 дн.): 1" in text
    assert "Проснулись: 1 из 2, спавших к началу периода" in text
    assert "Средний чек: 1\u00a0300\u00a0₽" in text
    assert "146,5 дн. (прошлый период: 284 дн., -137,5 дн.)" in text
    assert "Сон клиентов стоит 383\u00a0₽ в месяц: засыпают 1 в месяц × 30\u00a0%" in text
    assert "по статье, пока мало данных" in text
    assert "LTV, первые 12 месяцев: 5\u00a0000\u00a0₽ на клиента (2 клиента)" in text
    english = render.text("en", "stats", usage=False, report=report, currency="₽")
    assert "Sleeping now: 3 · of them lost (asleep over 180 days): 1" in english
    assert "Woke up: 1 of 2 asleep at the period's start" in english
    assert "Sleeping costs 383\u00a0₽ a month" in english
    assert "5,000\u00a0₽ per customer (2 customers)" in english


async def test_a_measured_wake_up_share(db: Database, clock: FixedClock) -> None:
    """30 customers asleep on 01.10 (last visit 01.06, asleep 30 days after), 9 of them back in
    October: 30 % measured. None fell asleep in October, so sleeping costs nothing a month there,
    whatever the share."""
    for i in range(30):
        sales = [(local(2026, 6, 1), 1000)]
        if i < 9:
            sales.append((local(2026, 10, 10), 2000))
        await customer(db, sales, 30)
    stats = StatsService(db, clock, MOSCOW)
    c = (await stats.report(OCTOBER)).customers
    assert c is not None
    assert (c.asleep_at_start, c.woke) == (30, 9)
    assert c.wake_share_measured and c.wake_share == pytest.approx(0.3)
    # the 9 fell asleep again on 09.11, after October; the 21 are asleep since 01.07
    assert (c.fell_asleep, c.sleeping, c.lost) == (0, 30, 0)
    assert c.sleeping_cost_minor == 0
