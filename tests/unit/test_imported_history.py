"""Visits imported from the owner's previous base: the planners learn cycles from them at their
first run, count imported customers who sleep, and write to nobody without Telegram."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.business import Business
from bot.clock import FixedClock
from bot.db import queries
from bot.db.models import Customer, Cycle, OutboxMessage, Purchase
from bot.db.repositories import Database
from bot.events import Events
from bot.rendering import Renderer
from bot.services.booking import BookingService
from bot.services.cycles import CycleService
from bot.services.segments import Condition, Segments
from bot.services.sleeping import SleepingService
from bot.services.staff import StaffService
from tests.unit.conftest import MOSCOW
from tests.unit.test_merge import imported


@pytest.fixture
def cycles(
    db: Database, clock: FixedClock, business: Business, staff: StaffService, events: Events
) -> CycleService:
    booking = BookingService(db, clock, business, MOSCOW, Renderer(MOSCOW), staff, -100)
    service = CycleService(db, clock, business, MOSCOW, booking)
    events.on_purchase(service.learn_after_purchase)
    return service


@pytest.fixture
def sleeping(db: Database, clock: FixedClock, business: Business) -> SleepingService:
    return SleepingService(db, clock, business, MOSCOW, Renderer(MOSCOW))


async def _cycles(db: Database) -> dict[int, Cycle]:
    async with db.reading() as repos:
        found = {c.customer_id: c for c in await repos.session.scalars(select(Cycle))}
        repos.session.expunge_all()
        return found


async def test_cycles_are_learned_from_imported_visits_as_of_now(
    db: Database, clock: FixedClock, cycles: CycleService
) -> None:
    now = clock.now()
    overdue = await imported(db, now, "+79160000001", visits_days_ago=(25, 46, 67))
    asleep = await imported(db, now, "+79160000002", visits_days_ago=(50, 71, 92))
    ahead = await imported(db, now, "+79160000003", visits_days_ago=(10,))
    erased = await imported(db, now, "+79160000004", visits_days_ago=(25,))
    async with db.transaction() as repos:
        gone = await repos.customers.get(erased)
        assert gone is not None
        gone.erased_at = now
    assert await cycles.learn_from_history() == 3
    learned = await _cycles(db)
    assert set(learned) == {overdue, asleep, ahead}
    # three visits 21 days apart, listed newest first (ids against their dates): their own rhythm
    first = learned[overdue]
    assert first.learned and first.interval_days == 21 and first.master_id == "anna"
    assert first.last_visit_at == now - timedelta(days=25)
    # past its due date: offered now, due within the offer's lead (3.5 days of a 21-day cycle)
    assert first.offer_at == now and first.due_at == now + timedelta(days=3.5)
    # past 2 × 21 days: left to the sleeping-customer campaign
    assert learned[asleep].due_at is None and learned[asleep].sleeps_at == now - timedelta(days=8)
    # one visit: the service's cycle, due as usual
    assert not learned[ahead].learned and learned[ahead].due_at == now + timedelta(days=11)
    assert await cycles.learn_from_history() == 0  # learned once
    # nobody of them is in Telegram: nothing is planned for them, however due
    assert await cycles.plan_due_offers() == 0


async def test_imported_customers_who_sleep_are_counted_but_not_written_to(
    db: Database, clock: FixedClock, cycles: CycleService, sleeping: SleepingService
) -> None:
    await imported(db, clock.now(), "+79160000002", visits_days_ago=(50, 71, 92))
    await cycles.plan_due_offers()
    assert (await sleeping.stats()).asleep == 1
    assert await sleeping.plan() == 0
    async with db.reading() as repos:
        assert list(await repos.session.scalars(select(OutboxMessage))) == []


async def test_the_latest_visit_is_the_latest_by_date_not_by_id(
    db: Database, clock: FixedClock, cycles: CycleService, sleeping: SleepingService
) -> None:
    """Imported visits come in any order: a pedicure imported after a later manicure is not
    their latest visit (by id it would be, and they would seem asleep)."""
    now = clock.now()
    customer_id = await imported(db, now, visits_days_ago=(5,))  # manicure 5 days ago
    async with db.transaction() as repos:
        await repos.purchases.add(
            Purchase(
                customer_id=customer_id,
                amount_minor=280000,
                service_id="pedicure",
                at=now - timedelta(days=200),
                staff_name="import",
                import_key=f"{customer_id}:old:pedicure",
            )
        )
    await cycles.learn_from_history()
    assert (await sleeping.stats()).asleep == 0


async def test_segments_count_only_customers_in_telegram(
    db: Database, clock: FixedClock, business: Business, cycles: CycleService
) -> None:
    await imported(db, clock.now(), visits_days_ago=(50, 71, 92))
    await cycles.learn_from_history()
    segments = Segments(business, MOSCOW)
    async with db.reading() as repos:
        for kind in ("all", "regular", "sleeping"):
            where = segments.where([Condition(kind)], clock.now())
            assert await repos.customers.count_in(where) == 0, kind
        # the same customers are there for the owner's numbers
        assert await repos.customers.count_in(queries.sleeping(clock.now())) == 1
        assert await repos.customers.count_in(Customer.imported_at.is_not(None)) == 1
