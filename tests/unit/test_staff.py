"""Staff rules without Telegram: parsing, sales and their event, redemption races."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Purchase
from bot.db.repositories import Database, Repos
from bot.events import Events, PurchaseRecorded
from bot.services.customers import CustomerService
from bot.services.staff import (
    RedeemOutcome,
    SaleCommand,
    Staff,
    StaffService,
    UsageError,
    parse_amount,
    parse_sale,
    split_customer,
)

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA, MISHA = Staff(1, "Ольга"), Staff(2, "Миша")


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("1500", 150000),
        ("1 500", 150000),
        ("1500,5", 150050),
        ("1500.50", 150050),
        ("0.01", 1),
        ("99₽", 9900),
    ],
)
def test_amounts(text: str, minor: int) -> None:
    assert parse_amount(text) == minor


@pytest.mark.parametrize(
    "text", ["", "abc", "-5", "0", "0.001", "1e5", "NaN", "1,2,3", "99999999999999"]
)
def test_not_amounts(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_amount(text)
    assert caught.value.reason == "amount"


def test_customer_part_of_arguments() -> None:
    assert split_customer("+7 916 123 45 67 1500 маникюр".split()) == (
        "+7 916 123 45 67",
        ["1500", "маникюр"],
    )
    assert split_customer("#12 800".split()) == ("#12", ["800"])
    assert split_customer("Анна 800".split()) == ("Анна", ["800"])
    assert split_customer("89161234567 800".split()) == ("89161234567", ["800"])


def test_sale_commands(business: Business) -> None:
    assert parse_sale("#1 1500", business) == SaleCommand("#1", 150000, None, None)
    assert parse_sale("#1 1500 педикюр", business) == SaleCommand("#1", 150000, "pedicure", None)
    assert parse_sale("#1 1500 Маникюр с покрытием Ольга", business) == SaleCommand(
        "#1", 150000, "manicure", "olga"
    )
    assert parse_sale("#1 1500 маник", business) == SaleCommand("#1", 150000, "manicure", None)
    assert parse_sale("#1 1500 анна", business) == SaleCommand("#1", 150000, None, "anna")
    for bad, reason in [
        ("", "sale_usage"),
        ("#1", "sale_usage"),
        ("#1 x", "amount"),
        ("#1 5 стрижка", "service"),
    ]:
        with pytest.raises(UsageError) as caught:
            parse_sale(bad, business)
        assert caught.value.reason == reason


async def _customer(
    db: Database, clock: FixedClock, business: Business, tg: int = 7, phone: str = "+79161234567"
) -> int:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    view = await customers.consent(tg, name="Анна", username="anna", language="ru", source=None)
    await customers.set_phone(tg, phone)
    await customers.finish_onboarding(tg)
    return view.id


async def test_a_sale_emits_one_event_inside_its_transaction(
    staff: StaffService, events: Events, db: Database, clock: FixedClock, business: Business
) -> None:
    customer_id = await _customer(db, clock, business)
    seen: list[PurchaseRecorded] = []

    @events.on_purchase
    async def remember(repos: Repos, event: PurchaseRecorded) -> None:
        count = await repos.session.scalar(select(func.count()).select_from(Purchase))
        assert count == 1  # the purchase is visible to subscribers in the same transaction
        seen.append(event)

    sale = await staff.record_sale(OLGA, customer_id, 150000, "manicure", "anna")
    assert [
        (e.purchase_id, e.customer_id, e.amount_minor, e.service_id, e.master_id) for e in seen
    ] == [(sale.purchase_id, customer_id, 150000, "manicure", "anna")]
    assert sale.customer.visits == 1 and sale.master_name == "Анна"


async def test_a_failing_subscriber_rolls_the_sale_back(
    staff: StaffService, events: Events, db: Database, clock: FixedClock, business: Business
) -> None:
    customer_id = await _customer(db, clock, business)

    @events.on_purchase
    async def broken(repos: Repos, event: PurchaseRecorded) -> None:
        raise RuntimeError("subscriber failed")

    with pytest.raises(RuntimeError):
        await staff.record_sale(OLGA, customer_id, 1000)
    card = await staff.card(customer_id)
    assert card and card.visits == 0


async def test_sale_checks(
    staff: StaffService, db: Database, clock: FixedClock, business: Business
) -> None:
    customer_id = await _customer(db, clock, business)
    for kwargs, reason in [
        ({"amount_minor": 0}, "amount"),
        ({"amount_minor": 5, "service_id": "x"}, "service"),
        ({"amount_minor": 5, "master_id": "x"}, "master"),
    ]:
        with pytest.raises(UsageError) as caught:
            await staff.record_sale(OLGA, customer_id, **kwargs)  # type: ignore[arg-type]
        assert caught.value.reason == reason
    with pytest.raises(UsageError):
        await staff.record_sale(OLGA, 999, 100)


async def test_concurrent_redeems_one_wins(
    staff: StaffService, db: Database, clock: FixedClock, business: Business, events: Events
) -> None:
    """Five staff at five counters redeem one code at the same instant."""
    await _customer(db, clock, business)
    card = (await staff.find("#1"))[0]
    code = card.coupons[0].code
    counters = [StaffService(db, clock, business, MOSCOW, events) for _ in range(5)]
    results = await asyncio.gather(
        *(s.redeem(Staff(i, f"staff {i}"), code) for i, s in enumerate(counters))
    )
    outcomes = sorted(r.outcome for r in results)
    assert outcomes.count(RedeemOutcome.REDEEMED) == 1
    assert outcomes.count(RedeemOutcome.ALREADY_USED) == 4
    winner = next(r for r in results if r.outcome is RedeemOutcome.REDEEMED)
    assert all(r.redeemed_by == winner.redeemed_by for r in results)


async def test_search_rules(
    staff: StaffService, db: Database, clock: FixedClock, business: Business
) -> None:
    await _customer(db, clock, business, 7, "+79161234567")
    await _customer(db, clock, business, 8, "+79031234567")
    assert len(await staff.find("4567")) == 2
    assert len(await staff.find("+7 903 123-45-67")) == 1
    assert (
        await staff.find("%%") == []
        and await staff.find("__") == []
        and await staff.find("а%") == []
    )
    assert await staff.find("#999") == [] and await staff.find("@nobody") == []
    with pytest.raises(UsageError) as caught:
        await staff.resolve("анна")
    assert caught.value.reason == "ambiguous" and len(caught.value.details["matches"]) == 2
