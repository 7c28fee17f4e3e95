"""The welcome and birthday bonuses of `[loyalty.cashback]`: credited once per person (the
welcome one at the phone, in its transaction; the birthday one with the greeting, once a year),
told, shown in the balance, and never twice through /forget or a second account."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Customer, LoyaltyEntry, OutboxKind, OutboxMessage
from bot.db.repositories import Database
from bot.events import Events
from bot.features import Features
from bot.outbox.planners import Planners
from bot.services.birthdays import Birthday
from bot.services.bonuses import BonusService
from bot.services.customers import CustomerService
from bot.services.loyalty import LoyaltyService
from tests.unit.conftest import points_ledger
from tests.unit.test_merge import imported

MOSCOW = ZoneInfo("Europe/Moscow")
KEY = b"test-secret-key"
ANNA, BORIS = 101, 102
PHONE, OTHER = "+79990000001", "+79990000002"


def _with(
    business: Business, *, known: bool = True, cashback: dict[str, object] | None = None
) -> Business:
    loyalty = business.loyalty.model_copy(
        update={
            "cashback": business.loyalty.cashback.model_copy(
                update={"enabled": True, "welcome_bonus": 200, "birthday_bonus": 500}
                | (cashback or {})
            )
        }
    )
    coupons = business.coupons.model_copy(
        update={
            "welcome": business.coupons.welcome.model_copy(update={"for_known_customers": known})
        }
    )
    return business.model_copy(update={"loyalty": loyalty, "coupons": coupons})


@pytest.fixture
def generous(business: Business) -> Business:
    return _with(business)


def _customers(db: Database, clock: FixedClock, business: Business) -> CustomerService:
    events = Events()
    features = Features(events, Planners(db, clock, business, MOSCOW))
    BonusService(db, clock, business, MOSCOW, secret_key=KEY).register(features)
    return CustomerService(db, clock, business, MOSCOW, events, secret_key=KEY)


@pytest.fixture
def customers(db: Database, clock: FixedClock, generous: Business) -> CustomerService:
    return _customers(db, clock, generous)


async def _join(customers: CustomerService, tg: int, phone: str) -> tuple[int, int]:
    """A newcomer consents and gives their phone: (their id, the points it earned)."""
    await customers.consent(tg, name=f"#{tg}", username=None, language="ru", source=None)
    saved = await customers.set_phone(tg, phone)
    view = await customers.find(tg)
    assert view is not None
    return view.id, sum(c.points for c in saved.credited)


async def _receipts(db: Database, prefix: str) -> list[tuple[Any, ...]]:
    """(key, customer, kind, template, data) of the outbox rows under `prefix`."""
    async with db.reading() as repos:
        rows = await repos.session.execute(
            select(
                OutboxMessage.key,
                OutboxMessage.customer_id,
                OutboxMessage.kind,
                OutboxMessage.template,
                OutboxMessage.data,
            ).where(OutboxMessage.key.startswith(prefix))
        )
        return [tuple(row) for row in rows]


# ---- welcome ------------------------------------------------------------------------------------


async def test_the_phone_credits_the_welcome_bonus_once_with_a_receipt(
    customers: CustomerService, db: Database, clock: FixedClock, generous: Business
) -> None:
    anna, earned = await _join(customers, ANNA, PHONE)
    assert earned == 200
    assert await points_ledger(db, anna) == [(200, "welcome_bonus")]
    again = await customers.set_phone(ANNA, PHONE)  # the contact shared a second time
    assert again.credited == ()
    assert await points_ledger(db, anna) == [(200, "welcome_bonus")]
    # a receipt: a service message, no consent to offers needed
    assert await _receipts(db, "welcome_bonus:") == [
        (f"welcome_bonus:{anna}", anna, OutboxKind.SERVICE, "welcome_bonus", {"points": 200})
    ]
    wallet = await LoyaltyService(db, clock, generous, MOSCOW).wallet(anna)
    assert wallet.points == 200 and wallet.next_expiry is not None  # expires as cashback


async def test_no_second_bonus_after_forget_or_on_another_account(
    customers: CustomerService, db: Database
) -> None:
    anna, earned = await _join(customers, ANNA, PHONE)
    assert earned == 200
    assert await customers.forget(ANNA)
    again, earned = await _join(customers, ANNA, PHONE)  # the same person, joining again
    assert again != anna and earned == 0 and await points_ledger(db, again) == []
    assert await customers.forget(ANNA)
    _, earned = await _join(customers, ANNA, OTHER)  # their account, with another phone
    assert earned == 0
    _, earned = await _join(customers, BORIS, PHONE)  # their phone, on another account
    assert earned == 0
    assert len(await _receipts(db, "welcome_bonus:")) == 1


async def test_a_phone_another_customer_has_or_a_welcome_coupon_had_earns_nothing(
    db: Database, clock: FixedClock, generous: Business, business: Business
) -> None:
    before = _customers(db, clock, business)  # no bonus yet: a welcome coupon only
    await before.consent(ANNA, name="Анна", username=None, language="ru", source=None)
    await before.set_phone(ANNA, PHONE)
    assert (await before.finish_onboarding(ANNA)).coupon is not None
    customers = _customers(db, clock, generous)
    assert await customers.forget(ANNA)
    _, earned = await _join(customers, ANNA, PHONE)  # joined before, now again
    assert earned == 0
    _, earned = await _join(customers, BORIS, PHONE)  # the phone another customer has now
    assert earned == 0


@pytest.mark.parametrize("known", [True, False])
async def test_an_imported_customer_recognised_by_phone_as_the_welcome_coupon_rule_says(
    db: Database, clock: FixedClock, business: Business, known: bool
) -> None:
    customers = _customers(db, clock, _with(business, known=known))
    old = await imported(db, clock.now(), phone=PHONE)
    await customers.consent(ANNA, name="Анна", username=None, language="ru", source=None)
    saved = await customers.set_phone(ANNA, PHONE)
    assert saved.recognised
    assert sum(c.points for c in saved.credited) == (200 if known else 0)
    assert await points_ledger(db, old) == ([(200, "welcome_bonus")] if known else [])


@pytest.mark.parametrize("cashback", [{"enabled": False}, {"welcome_bonus": 0}])
async def test_no_bonus_when_it_is_off(
    db: Database, clock: FixedClock, business: Business, cashback: dict[str, object]
) -> None:
    customers = _customers(db, clock, _with(business, cashback=cashback))
    anna, earned = await _join(customers, ANNA, PHONE)
    assert earned == 0 and await points_ledger(db, anna) == []
    assert await _receipts(db, "welcome_bonus:") == []


# ---- birthday -----------------------------------------------------------------------------------


async def _greet(
    db: Database, bonuses: BonusService, customer_id: int, year: int
) -> dict[str, Any]:
    """The greeting of that year made (its composer run) in a transaction of its own."""
    async with db.transaction() as repos:
        customer = await repos.session.get(Customer, customer_id)
        row = OutboxMessage(key=f"birthday:{customer_id}:{year}", template="birthday_greeting")
        return (await bonuses.birthday(repos, row, customer, datetime_of(year)))[0]


def datetime_of(year: int) -> datetime:
    return datetime(year, 3, 14, 10, tzinfo=MOSCOW)


async def test_the_birthday_bonus_once_a_year_whatever_makes_the_greeting_again(
    customers: CustomerService, db: Database, clock: FixedClock, generous: Business
) -> None:
    bonuses = BonusService(db, clock, generous, MOSCOW, secret_key=KEY)
    anna, _ = await _join(customers, ANNA, PHONE)  # 200 welcome points
    await customers.set_birthday(ANNA, Birthday(14, 3))
    assert await _greet(db, bonuses, anna, 2027) == {"bonus": 500, "balance": 700}
    # the same greeting made again (a restart, a second sender): nothing twice, the text the same
    assert await _greet(db, bonuses, anna, 2027) == {"bonus": 500, "balance": 700}
    assert await points_ledger(db, anna) == [(200, "welcome_bonus"), (500, "birthday_bonus")]
    async with db.reading() as repos:
        keys = await repos.session.scalars(
            select(LoyaltyEntry.bonus_key).where(LoyaltyEntry.customer_id == anna)
        )
        assert list(keys) == [None, f"birthday:{anna}:2027"]
    assert (await _greet(db, bonuses, anna, 2028))["bonus"] == 500
    assert [p for p, _ in await points_ledger(db, anna)] == [200, 500, 500]


async def test_the_same_key_twice_is_refused_by_the_database(
    customers: CustomerService, db: Database, clock: FixedClock
) -> None:
    anna, _ = await _join(customers, ANNA, PHONE)
    entry = {
        "customer_id": anna,
        "kind": "accrual",
        "points": 500,
        "reason": "birthday_bonus",
        "created_at": clock.now(),
        "bonus_key": f"birthday:{anna}:2027",
    }
    async with db.transaction() as repos:
        await repos.loyalty.add(LoyaltyEntry(**entry))
    with pytest.raises(IntegrityError):
        async with db.transaction() as repos:
            await repos.loyalty.add(LoyaltyEntry(**entry))


@pytest.mark.parametrize("cashback", [{"enabled": False}, {"birthday_bonus": 0}])
async def test_no_birthday_bonus_when_it_is_off(
    db: Database, clock: FixedClock, business: Business, cashback: dict[str, object]
) -> None:
    off = _with(business, cashback=cashback)
    customers = _customers(db, clock, off)
    anna, _ = await _join(customers, ANNA, PHONE)
    before = await points_ledger(db, anna)
    bonuses = BonusService(db, clock, off, MOSCOW, secret_key=KEY)
    assert await _greet(db, bonuses, anna, 2027) == {}
    assert await points_ledger(db, anna) == before
