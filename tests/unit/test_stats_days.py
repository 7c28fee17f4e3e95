"""`/stats` from closed days and months (`sales_days`, `cohort_months`) plus the open part live
gives exactly what counting everything live gives: a seeded base over 15 months with sales at
local midnights, two at one moment, across month boundaries and today; part-closed (a backlog)
and fully closed; and an import of an old visit reopens what it changes."""

from __future__ import annotations

import io
import random
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.business import Business, Sleeping
from bot.clock import FixedClock
from bot.db.models import CohortMonth, Customer, Purchase, SalesDay
from bot.db.repositories import Database
from bot.events import Events
from bot.features import Features
from bot.outbox.planners import Planners
from bot.services.importing import ImportService
from bot.services.stats import Period, StatsService, months_back

MOSCOW = ZoneInfo("Europe/Moscow")
TODAY = date(2026, 11, 23)  # the tests' clock (12:00 in Moscow)


def local(day: date, hh: int = 12, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=MOSCOW)


async def seeded(db: Database) -> None:
    """40 customers over the last 15 months, each at their own rhythm; some sales at a local
    midnight (a day's and a month's first moment), two at one moment, and some today."""
    rng = random.Random(17)
    first_day = months_back(TODAY, 15)
    async with db.transaction() as repos:
        for n in range(40):
            day = first_day + timedelta(days=rng.randrange(0, 440))
            customer = Customer(name=f"Клиент {n}", created_at=local(day))
            repos.customers.add(customer)
            await repos.customers.flush()
            while day <= TODAY:
                at = local(day, 0, 0) if rng.random() < 0.2 else local(day, rng.randrange(9, 21))
                if day == TODAY:
                    at = local(day, 0, 0) if n % 2 else local(day, 11)  # before the clock's noon
                for _ in range(2 if rng.random() < 0.1 else 1):  # two at one moment
                    await repos.purchases.add(
                        Purchase(
                            customer_id=customer.id,
                            amount_minor=rng.randrange(50_000, 300_000, 5_000),
                            at=at,
                        )
                    )
                day += timedelta(days=rng.choice((0, 1, 9, 20, 31, 45)) or 1)


PERIODS = [
    Period(months_back(TODAY, 3) + timedelta(days=1), TODAY),  # the default: today included
    Period(date(2026, 9, 15), date(2026, 10, 14)),  # across a month boundary, closed
    Period(date(2026, 10, 20), TODAY),
    Period(months_back(TODAY, 15), TODAY),  # the whole history (its previous: nothing)
    Period(TODAY, TODAY),
]


async def everything(stats: StatsService) -> list[Any]:
    found: list[Any] = []
    for period in PERIODS:
        report = await stats.report(period)
        found.append(_rounded(asdict(report)))
        found.append([asdict(m) for m in await stats.months(period)])
        found.append([asdict(c) for c in await stats.cohorts(period)])
    return found


def _rounded(value: Any) -> Any:
    """Interval sums are floats added in another order: equal to 9 places."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


@pytest.fixture
def stats(db: Database, clock: FixedClock) -> StatsService:
    return StatsService(db, clock, MOSCOW, Sleeping(lost_after_days=180))


async def closed(db: Database) -> tuple[date | None, date | None]:
    async with db.reading() as repos:
        return (
            await repos.stats.days_closed_through(),
            await repos.stats.months_closed_through(),
        )


async def test_closed_days_and_months_plus_live_are_live_alone(
    db: Database, stats: StatsService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seeded(db)
    live = await everything(stats)
    assert live[0]["current"]["sales"]["sales"] > 50  # the base is what the test needs

    monkeypatch.setattr("bot.services.stats.CLOSE_DAYS", 100)
    monkeypatch.setattr("bot.services.stats.CLOSE_MONTHS", 5)
    assert await stats.close() == 105  # the oldest first, a run bounded
    days, months = await closed(db)
    assert days is not None and months is not None
    assert days < TODAY - timedelta(days=200) and months < date(2026, 1, 1)  # a backlog left
    assert await everything(stats) == live

    runs = 0
    while await stats.close():
        runs += 1
    assert runs >= 3
    assert await closed(db) == (TODAY - timedelta(days=1), date(2026, 10, 1))
    assert await stats.close() == 0  # nothing more: idempotent
    assert await everything(stats) == live

    async with db.reading() as repos:  # every day from the first sale's has its row
        count = await repos.session.scalar(select(func.count()).select_from(SalesDay))
        first = await repos.session.scalar(select(func.min(SalesDay.day)))
    assert first is not None and count == (TODAY - first).days


async def test_the_closed_sums_are_used(db: Database, stats: StatsService) -> None:
    """Changed behind the planner's back, a closed day shows: the report reads it, not the
    sales (which is why only an import, which reopens, may add sales in the past)."""
    await seeded(db)
    while await stats.close():
        pass
    before = (await stats.report(PERIODS[1])).current.sales.sales
    async with db.transaction() as repos:
        row = await repos.session.get(SalesDay, date(2026, 9, 30))
        assert row is not None
        row.sales += 1000
    assert (await stats.report(PERIODS[1])).current.sales.sales == before + 1000


async def test_an_imported_old_visit_reopens_and_the_next_report_is_right(
    db: Database, stats: StatsService, clock: FixedClock, business: Business
) -> None:
    await seeded(db)
    while await stats.close():
        pass
    importer = ImportService(db, clock, business, MOSCOW)
    before = await everything(stats)
    # a new customer's visit long ago: later days' sums are counted again
    csv = "date,phone,customer,service,master,amount\n2026-02-03,79161234567,Анна,manicure,,1500\n"
    report = await importer.run(io.BytesIO(csv.encode()), None, apply=True)
    assert report.visits_new == 1
    assert await closed(db) == (date(2026, 2, 2), date(2026, 1, 1))  # reopened from 03.02
    async with db.reading() as repos:
        cells = await repos.session.scalar(
            select(func.count()).where(CohortMonth.month >= date(2026, 2, 1))
        )
    assert cells == 0

    reopened = await everything(stats)  # the reopened days counted live
    while await stats.close():
        pass
    fully_closed = await everything(stats)
    async with db.transaction() as repos:  # what live alone says, with nothing closed
        await repos.stats.reopen_from(date(2000, 1, 1))
    assert await closed(db) == (None, None)
    assert reopened == fully_closed == await everything(stats)
    whole = reopened[9]["current"]["sales"]  # the whole history's report: one more, new
    assert (whole["sales"], whole["first"]) == (
        before[9]["current"]["sales"]["sales"] + 1,
        before[9]["current"]["sales"]["first"] + 1,
    )


async def test_the_planners_close_with_the_outbox_ones(
    db: Database, stats: StatsService, clock: FixedClock, business: Business
) -> None:
    await seeded(db)
    planners = Planners(db, clock, business, MOSCOW)
    stats.register(Features(Events(), planners))
    planned = await planners.run_all()
    assert planned["stats_days"] > 0
    assert (await closed(db))[0] is not None


async def test_a_sale_written_into_a_closed_day_shows_at_once_and_is_closed_again(
    db: Database, stats: StatsService
) -> None:
    """Not by an import (as tests and a hand-fixed base do): the ids after the last counted one
    find it, the report counts from its day on live, and the next closing reopens them."""
    await seeded(db)
    while await stats.close():
        pass
    async with db.transaction() as repos:
        anyone = await repos.session.scalar(select(func.min(Customer.id)))
        assert anyone is not None
        await repos.purchases.add(
            Purchase(customer_id=anyone, amount_minor=100_000, at=local(date(2026, 3, 9)))
        )
    before = await closed(db)
    reported = await everything(stats)
    async with db.transaction() as repos:
        await repos.stats.reopen_from(date(2000, 1, 1))
    live = await everything(stats)
    assert reported == live
    assert before == (TODAY - timedelta(days=1), date(2026, 10, 1))  # not deleted by a report
    while await stats.close():
        pass
    assert await closed(db) == (TODAY - timedelta(days=1), date(2026, 10, 1))
    assert await everything(stats) == live
