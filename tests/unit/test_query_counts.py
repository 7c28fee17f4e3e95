"""A view costs a fixed number of statements, whatever the number of rows or the length of the
history behind it (no query per row): /find, the master's day, a customer's visits, complaints."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Purchase, Survey
from bot.db.repositories import Database
from bot.rendering import Renderer
from bot.services.booking import BookingService
from bot.services.customers import CustomerService
from bot.services.staff import Staff, StaffService
from bot.services.surveys import SurveyService
from tests.unit.test_booking import MONDAY, moscow

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA = Staff(1, "Ольга")
FIND_BOUND = 6


class Statements:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1


@contextmanager
def counting(db: Database) -> Iterator[Statements]:
    """Every statement sent to the database meanwhile (BEGIN included)."""
    statements = Statements()
    event.listen(db.engine.sync_engine, "before_cursor_execute", statements)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", statements)


async def cost(db: Database, view: Callable[[], Awaitable[Any]]) -> tuple[int, Any]:
    with counting(db) as statements:
        result = await view()
    return statements.count, result


async def _customer(db: Database, clock: FixedClock, business: Business, tg: int, name: str) -> int:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    view = await customers.consent(tg, name=name, username=f"user{tg}", language="ru", source=None)
    await customers.set_phone(tg, f"+7916{tg:07d}")
    await customers.finish_onboarding(tg)
    return view.id


async def test_find_costs_the_same_for_one_visit_or_fifty_and_for_one_match_or_ten(
    db: Database, clock: FixedClock, business: Business, staff: StaffService
) -> None:
    short = await _customer(db, clock, business, 11, "Короткая")
    long = await _customer(db, clock, business, 12, "Длинная")
    await staff.record_sale(OLGA, short, 150000, "manicure", "anna")
    for _ in range(50):
        await staff.record_sale(OLGA, long, 150000, "manicure", "anna")
        await staff.add_note(OLGA, long, "постоянная")
        clock.advance(timedelta(days=1))
    one, (card,) = await cost(db, lambda: staff.find(f"#{short}"))
    fifty, (long_card,) = await cost(db, lambda: staff.find("@user12"))
    assert card.visits == 1 and long_card.visits == 50 and long_card.last_note == "постоянная"
    assert one == fifty <= FIND_BOUND
    for tg in range(13, 21):
        await _customer(db, clock, business, tg, f"Анна {tg}")
    ten, cards = await cost(db, lambda: staff.find("анна"))
    assert len(cards) == 8 and ten <= FIND_BOUND


@pytest.fixture
def booking(
    db: Database, clock: FixedClock, business: Business, staff: StaffService
) -> BookingService:
    return BookingService(db, clock, business, MOSCOW, Renderer(MOSCOW), staff, admin_chat_id=-100)


async def test_the_masters_day_and_the_customers_visits_cost_the_same_for_one_visit_or_many(
    db: Database, clock: FixedClock, business: Business, booking: BookingService
) -> None:
    clock.set(moscow(MONDAY, "08:00"))
    wednesday = MONDAY + timedelta(days=2)
    await _customer(db, clock, business, 11, "Первая")
    assert (
        await booking.book(11, "manicure", "anna", moscow(MONDAY, "10:00"), source="menu")
    ).booking
    costs = {}
    costs[1], day = await cost(db, lambda: booking.schedule(["anna", "olga"], MONDAY))
    assert len(day) == 1
    for n, at in enumerate(["12:00", "15:00", "17:00"], start=12):
        await _customer(db, clock, business, n, f"Клиент {n}")
        assert (
            await booking.book(n, "manicure", "anna", moscow(MONDAY, at), source="menu")
        ).booking
    assert (
        await booking.book(11, "pedicure", "olga", moscow(wednesday, "12:00"), source="menu")
    ).booking
    costs[4], day = await cost(db, lambda: booking.schedule(["anna", "olga"], MONDAY))
    assert [v.customer_name for v in day] == ["Первая", "Клиент 12", "Клиент 13", "Клиент 14"]
    assert costs[4] == costs[1]
    one, visits = await cost(db, lambda: booking.upcoming(12))
    two, more = await cost(db, lambda: booking.upcoming(11))
    assert len(visits) == 1 and len(more) == 2 and one == two
    off, (_, booked) = await cost(db, lambda: booking.day_off("anna", MONDAY, "Анна"))
    assert len(booked) == 4 and off <= costs[1] + 2


async def test_complaints_and_csat_cost_the_same_for_one_survey_or_many(
    db: Database, clock: FixedClock, business: Business
) -> None:
    surveys = SurveyService(db, clock, business, MOSCOW, Renderer(MOSCOW))
    now = clock.now()

    async def unhappy(tg: int) -> None:
        customer_id = await _customer(db, clock, business, tg, f"Клиент {tg}")
        async with db.transaction() as repos:
            purchase = await repos.purchases.add(
                Purchase(
                    customer_id=customer_id,
                    amount_minor=100,
                    at=now,
                    service_id="manicure",
                    master_id="anna",
                )
            )
            repos.session.add(
                Survey(
                    purchase_id=purchase.id,
                    customer_id=customer_id,
                    service_id="manicure",
                    master_id="anna",
                    planned_at=now,
                    closes_at=now + timedelta(days=1),
                    score=2,
                    answered_at=now,
                    comment="плохо",
                )
            )

    await unhappy(11)
    one, complaints = await cost(db, surveys.open_complaints)
    csat_one, report = await cost(db, lambda: surveys.csat(30))
    assert len(complaints) == 1 and len(report.comments) == 1
    for tg in range(12, 18):
        await unhappy(tg)
    many, complaints = await cost(db, surveys.open_complaints)
    csat_many, report = await cost(db, lambda: surveys.csat(30))
    assert len(complaints) == 7 and len(report.comments) == 5
    assert {c.name for c in complaints} == {f"Клиент {tg}" for tg in range(11, 18)}
    assert (many, csat_many) == (one, csat_one)
