"""Deposits' rules without Telegram: who pays under each policy, amounts in minor units, the
business file's [deposits] and the provider token's checks, and over the database (both
backends): the policy's counts, a race for one held time, a hold released."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Booking, BookingCell, BookingState, Deposit, DepositState, Purchase
from bot.db.repositories import Database
from bot.events import Events, SlotFreed
from bot.rendering import Renderer
from bot.services.booking import Actor, BookingService, BookOutcome
from bot.services.deposits import (
    EVERYONE,
    FIRST_VISIT,
    MARKED,
    NO_SHOWS,
    DepositService,
    minor_units,
    who_pays,
)
from bot.services.staff import StaffService
from bot.settings import ConfigError, load_settings
from tests.conftest import BUSINESS_FILE
from tests.unit.test_booking import MONDAY, MOSCOW, _customer, _outbox, moscow

TOKEN = "381764678:TEST:unit-provider"


# ---- who pays ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "marked", "visited", "misses", "expected"),
    [
        ("none", True, False, 9, None),  # deposits off: nobody, marked or not
        ("everyone", False, True, 0, EVERYONE),
        ("first_visit", False, False, 0, FIRST_VISIT),
        ("first_visit", False, True, 0, None),
        ("no_shows", False, True, 1, None),  # below the threshold (2)
        ("no_shows", False, True, 2, NO_SHOWS),
        ("no_shows", False, True, 5, NO_SHOWS),
        ("first_visit", True, True, 0, MARKED),  # the staff's mark, under any policy but none
        ("no_shows", True, True, 0, MARKED),
    ],
)
def test_who_pays(policy: str, marked: bool, visited: bool, misses: int, expected: str) -> None:
    assert who_pays(policy, marked=marked, visited=visited, misses=misses, threshold=2) == expected


def test_amounts_go_in_the_currencys_smallest_units() -> None:
    assert minor_units(500, "RUB") == 50000
    assert minor_units(12.5, "USD") == 1250
    assert minor_units(500, "JPY") == 500  # no minor unit


# ---- the business file and the setting ---------------------------------------------------------


def _business(deposits: dict[str, Any], **top: Any) -> Business:
    raw = tomllib.loads(BUSINESS_FILE.read_text())
    raw.update(top)
    raw["deposits"] = deposits
    return Business.model_validate(raw)


def test_the_business_files_deposits_are_checked() -> None:
    assert _business({"policy": "everyone", "amount": 500}).deposit_currency == "RUB"  # from ₽
    assert _business({"policy": "everyone", "percent": 30}, currency="$").deposit_currency == "USD"
    explicit = _business({"policy": "everyone", "amount": 5, "currency": "EUR"}, currency="у.е.")
    assert explicit.deposit_currency == "EUR"
    assert _business({}).deposits.on is False  # none by default: nothing asked of the file
    cases: list[tuple[dict[str, Any], str]] = [
        ({"policy": "everyone"}, "give amount or percent"),
        ({"policy": "everyone", "amount": 5, "percent": 10}, "not both"),
        ({"policy": "sometimes", "amount": 5}, "policy"),
        ({"policy": "everyone", "amount": 5, "hold_minutes": 0}, "hold_minutes"),
        ({"policy": "everyone", "amount": 5, "services": ["haircut"]}, "unknown service"),
        ({"policy": "everyone", "amount": 5, "currency": "rub"}, "currency"),
    ]
    for bad, words in cases:
        with pytest.raises(ValueError, match=words):
            _business(bad)
    with pytest.raises(ValueError, match="ISO 4217"):
        _business({"policy": "everyone", "amount": 5}, currency="у.е.")


def test_the_provider_token_is_checked(tmp_path: Path) -> None:
    base: dict[str, object] = {"bot_token": "123456:" + "a" * 30, "business_file": BUSINESS_FILE}
    assert load_settings(**base).payment_provider_token is None
    token = load_settings(**base, payment_provider_token=TOKEN).payment_provider_token
    assert token is not None and token.get_secret_value() == TOKEN
    with pytest.raises(ConfigError, match="PAYMENT_PROVIDER_TOKEN is malformed"):
        load_settings(**base, payment_provider_token="sk_live_123")


# ---- over the database -------------------------------------------------------------------------


def _service(
    db: Database,
    clock: FixedClock,
    staff: StaffService,
    events: Events,
    deposits: dict[str, Any],
    token: str | None = TOKEN,
) -> tuple[BookingService, DepositService]:
    business = _business(deposits)
    render = Renderer(MOSCOW)
    booking = BookingService(db, clock, business, MOSCOW, render, staff, admin_chat_id=-100)
    booking.events = events
    return booking, DepositService(
        db, clock, business, MOSCOW, render, events, booking, -100, token
    )


async def test_without_a_provider_token_nobody_pays_and_the_log_says_so(
    db: Database, clock: FixedClock, staff: StaffService, events: Events
) -> None:
    booking, deposits = _service(
        db, clock, staff, events, {"policy": "everyone", "amount": 5}, None
    )
    note = deposits.startup_note()
    assert note is not None and "deposits are OFF" in note and "PAYMENT_PROVIDER_TOKEN" in note
    clock.set(moscow(MONDAY, "09:00"))
    await _customer(db, clock, booking.business, 7001)
    result = await booking.book(7001, "manicure", "anna", moscow(MONDAY, "15:00"), source="menu")
    assert result.outcome is BookOutcome.BOOKED  # as before: the master is asked
    _, on = _service(db, clock, staff, events, {"policy": "everyone", "amount": 5})
    assert on.startup_note() is None


async def test_first_visit_and_no_shows_count_from_the_database(
    db: Database, clock: FixedClock, staff: StaffService, events: Events
) -> None:
    clock.set(moscow(MONDAY, "09:00"))
    first, first_deposits = _service(
        db, clock, staff, events, {"policy": "first_visit", "percent": 25, "services": ["manicure"]}
    )
    customer_id = await _customer(db, clock, first.business, 7001)
    async with db.transaction() as repos:
        customer = await repos.customers.get(customer_id)
        assert customer is not None
        manicure, pedicure = first.business.service("manicure"), first.business.service("pedicure")
        assert manicure and pedicure
        assert await first_deposits.required(repos, customer, manicure) == (50000, FIRST_VISIT)
        assert await first_deposits.required(repos, customer, pedicure) is None  # not listed
        repos.session.add(
            Purchase(
                customer_id=customer_id, amount_minor=100, service_id="manicure", at=clock.now()
            )
        )
        await repos.session.flush()
        assert await first_deposits.required(repos, customer, manicure) is None  # been here

    late, late_deposits = _service(
        db,
        clock,
        staff,
        events,
        {"policy": "no_shows", "amount": 300, "no_show_threshold": 2},
    )
    for hhmm, close in (("10:00", "no_show"), ("15:00", "late")):
        result = await late.book(7001, "manicure", "anna", moscow(MONDAY, hhmm), source="menu")
        assert result.outcome is BookOutcome.BOOKED, hhmm
        assert result.booking is not None
        if close == "no_show":
            clock.set(moscow(MONDAY, "12:00"))
            await late.close(result.booking.id, Actor(1, "Ольга", staff=True), done=False)
        else:
            await late.staff_cancel(result.booking.id, Actor(1, "Ольга", staff=True))
    async with db.transaction() as repos:
        assert await repos.deposits.misses(customer_id) == 2
        reasons = [
            b.reason for b in await repos.session.scalars(select(Booking).order_by(Booking.id))
        ]
        assert reasons == [None, "late"]  # inside the 24-hour window: a late cancellation
        customer = await repos.customers.get(customer_id)
        assert customer is not None
        assert await late_deposits.required(repos, customer, manicure) == (30000, NO_SHOWS)
    told = await _outbox(db, "deposit_policy_on:")
    assert [r.customer_id for r in told] == [customer_id]  # at the threshold, once


async def test_two_customers_race_for_one_time_one_holds_it_and_a_hold_runs_out(
    db: Database, clock: FixedClock, staff: StaffService, events: Events
) -> None:
    freed: list[SlotFreed] = []

    async def collect(_: object, event: SlotFreed) -> None:
        freed.append(event)

    events.on_slot_freed(collect)
    clock.set(moscow(MONDAY, "09:00"))
    booking, deposits = _service(db, clock, staff, events, {"policy": "everyone", "amount": 500})
    for tg in (7001, 7002):
        await _customer(db, clock, booking.business, tg)
    at = moscow(MONDAY, "15:00")
    results = await asyncio.gather(
        *(booking.book(tg, "manicure", "anna", at, source="menu") for tg in (7001, 7002))
    )
    assert sorted(r.outcome.value for r in results) == ["held", "taken"]
    async with db.transaction() as repos:
        (held,) = list(await repos.session.scalars(select(Booking)))
        assert held.state == BookingState.HELD
        assert len(list(await repos.session.scalars(select(BookingCell)))) == 3
    # the same customer picking another time of the service lets the first hold go
    winner = 7001 if results[0].outcome is BookOutcome.HELD else 7002
    moved = await booking.book(winner, "manicure", "anna", moscow(MONDAY, "17:00"), source="menu")
    assert moved.outcome is BookOutcome.HELD
    assert [(e.starts_at, e.reason) for e in freed] == [(at, "hold_expired")]
    clock.advance(timedelta(minutes=16))
    assert await deposits.release_expired() == 1
    assert await deposits.release_expired() == 0  # once
    async with db.transaction() as repos:
        assert not list(await repos.session.scalars(select(BookingCell)))
        states = [
            d.state for d in await repos.session.scalars(select(Deposit).order_by(Deposit.id))
        ]
    assert states == [DepositState.EXPIRED, DepositState.EXPIRED]
    assert len(freed) == 2
