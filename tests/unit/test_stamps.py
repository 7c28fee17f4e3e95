"""The stamp card: a stamp per matching sale (the services filter, or any sale), the progress,
completion with a reward coupon and its receipt, expiry, a cancelled sale's withdrawal (the
reward's coupon too while unused), erasure, and the business file's checks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.business import Business, load_business
from bot.clock import FixedClock
from bot.db.models import (
    Coupon,
    OutboxKind,
    OutboxMessage,
    OutboxState,
    Purchase,
    StampEntry,
    StampKind,
)
from bot.db.repositories import Database
from bot.events import CustomerErased, Events, PurchaseRecorded, SaleCancelled
from bot.features import Features
from bot.outbox.compose import Obsolete
from bot.outbox.planners import Planners
from bot.services.customers import CustomerService
from bot.services.staff import Sale, Staff, StaffService
from bot.services.stamps import COUPON_KIND, REWARD, StampCard, StampService
from bot.settings import ConfigError
from tests.conftest import BUSINESS_FILE

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA = Staff(1, "Ольга")


def _with_stamps(business: Business, **rules: Any) -> Business:
    stamps = business.loyalty.stamps.model_copy(
        update={
            "enabled": True,
            "every": 3,
            "reward": "free",
            "services": ["manicure"],
            "expire_months": 2,
            **rules,
        }
    )
    loyalty = business.loyalty.model_copy(update={"stamps": stamps})
    return business.model_copy(update={"loyalty": loyalty})


class Card:
    """A stamp program wired as the app wires it: the service subscribed to the events."""

    def __init__(self, db: Database, clock: FixedClock, business: Business) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.events = Events()
        self.stamps = StampService(db, clock, business, MOSCOW)
        self.features = Features(self.events, Planners(db, clock, business, MOSCOW))
        self.stamps.register(self.features)
        self.staff = StaffService(db, clock, business, MOSCOW, self.events)

    async def customer(self, tg: int = 7) -> int:
        customers = CustomerService(self.db, self.clock, self.business, MOSCOW, secret_key=b"k")
        view = await customers.consent(tg, name="Анна", username=None, language="ru", source=None)
        await customers.finish_onboarding(tg)
        return view.id

    async def sale(self, customer_id: int, service: str | None = "manicure") -> Sale:
        return await self.staff.record_sale(OLGA, customer_id, 200000, service)

    async def cancel(self, sale: Sale) -> None:
        async with self.db.transaction() as repos:
            await self.events.sale_cancelled(
                repos,
                SaleCancelled(
                    purchase_id=sale.purchase_id,
                    customer_id=sale.customer.id,
                    service_id=sale.service.id if sale.service else None,
                    master_id=None,
                    amount_minor=sale.amount_minor,
                    at=self.clock.now(),
                    by=OLGA.id,
                ),
            )

    async def progress(self, customer_id: int) -> int:
        """The stamps that count on the customer's card now."""
        shown = await self.stamps.card(customer_id)
        assert shown is not None
        return shown.stamps

    async def lines(self, customer_id: int) -> list[str]:
        async with self.db.reading() as repos:
            return [line.kind for line in await repos.stamps.lines(customer_id)]

    async def coupons(self, customer_id: int) -> list[Any]:
        """The customer's reward coupons (not the welcome one), as rows (read, not live objects)."""
        async with self.db.reading() as repos:
            found = await repos.session.execute(
                select(
                    Coupon.id,
                    Coupon.code,
                    Coupon.kind,
                    Coupon.percent,
                    Coupon.amount,
                    Coupon.expires_at,
                    Coupon.voided_at,
                    Coupon.redeemed_at,
                )
                .where(Coupon.customer_id == customer_id, Coupon.kind == COUPON_KIND)
                .order_by(Coupon.id)
            )
            return list(found)

    async def receipts(self) -> list[Any]:
        """The completed cards' messages, as rows."""
        async with self.db.reading() as repos:
            found = await repos.session.execute(
                select(
                    OutboxMessage.id,
                    OutboxMessage.kind,
                    OutboxMessage.customer_id,
                    OutboxMessage.coupon_id,
                    OutboxMessage.data,
                    OutboxMessage.state,
                )
                .where(OutboxMessage.template == REWARD)
                .order_by(OutboxMessage.id)
            )
            return list(found)


@pytest.fixture
def card(db: Database, clock: FixedClock, business: Business) -> Card:
    return Card(db, clock, _with_stamps(business))


async def test_matching_sales_fill_the_card_and_the_third_completes_it_with_a_coupon(
    card: Card, clock: FixedClock
) -> None:
    anna = await card.customer()
    first = await card.sale(anna)
    assert first.stamps == StampCard(1, 3, first.stamps.expires_at)
    assert first.stamps.marks == "✦✧✧"
    assert first.stamps.expires_at == clock.now().replace(month=1, year=2027)  # 2 months on
    other = await card.sale(anna, "pedicure")  # not one of the card's services
    assert other.stamps.stamps == 1 and other.stamps.reward_code is None
    none = await card.sale(anna, None)
    assert none.stamps.stamps == 1
    assert (await card.sale(anna)).stamps.stamps == 2
    assert await card.coupons(anna) == [] and await card.receipts() == []

    clock.advance(timedelta(days=1))
    done = await card.sale(anna)
    coupons = await card.coupons(anna)
    assert len(coupons) == 1
    coupon = coupons[0]
    assert coupon.kind == COUPON_KIND and coupon.percent == 100 and coupon.amount is None
    assert coupon.expires_at > clock.now() + timedelta(days=60)  # valid_days, through the day
    assert done.stamps == StampCard(0, 3, None, coupon.code)  # a new card, and the reward's code
    assert done.stamps.marks == "✧✧✧"
    [receipt] = await card.receipts()
    assert receipt.kind == OutboxKind.SERVICE and receipt.customer_id == anna
    assert receipt.coupon_id == coupon.id and receipt.data == {"every": 3, "free": True}
    assert await card.lines(anna) == ["stamp", "stamp", "stamp", "reward"]

    again = await card.sale(anna)  # the next card
    assert again.stamps.stamps == 1 and again.stamps.reward_code is None
    assert len(await card.coupons(anna)) == 1
    assert (await card.stamps.card(anna)) == again.stamps


async def test_any_sale_stamps_a_card_that_names_no_services_and_a_percent_reward(
    db: Database, clock: FixedClock, business: Business
) -> None:
    card = Card(db, clock, _with_stamps(business, services=[], reward=50, every=2))
    anna = await card.customer()
    assert (await card.sale(anna, None)).stamps.stamps == 1
    done = await card.sale(anna, "pedicure")
    [coupon] = await card.coupons(anna)
    assert coupon.percent == 50 and done.stamps.reward_code == coupon.code
    [receipt] = await card.receipts()
    assert receipt.data == {"every": 2, "free": False}


async def test_stamps_older_than_expire_months_no_longer_count(
    card: Card, clock: FixedClock
) -> None:
    anna = await card.customer()
    await card.sale(anna)
    clock.advance(timedelta(days=40))
    await card.sale(anna)
    assert (await card.stamps.card(anna)) == StampCard(2, 3, clock.now() + timedelta(days=21))
    clock.advance(timedelta(days=25))  # the first is over 2 months old now
    assert await card.progress(anna) == 1
    third = await card.sale(anna)
    assert third.stamps.stamps == 2 and third.stamps.reward_code is None  # not complete
    assert await card.coupons(anna) == []
    done = await card.sale(anna)
    assert done.stamps.reward_code is not None and done.stamps.stamps == 0


async def test_never_expiring_stamps_and_an_off_program(
    db: Database, clock: FixedClock, business: Business
) -> None:
    card = Card(db, clock, _with_stamps(business, expire_months=0))
    anna = await card.customer()
    await card.sale(anna)
    clock.advance(timedelta(days=3650))
    assert (await card.stamps.card(anna)) == StampCard(1, 3, None)

    off = Card(db, clock, _with_stamps(business, enabled=False))
    boris = await off.customer(8)
    sale = await off.sale(boris)
    assert sale.stamps is None and await off.lines(boris) == []
    assert await off.stamps.card(boris) is None


async def test_a_visit_a_prepaid_package_paid_earns_no_stamp(card: Card, clock: FixedClock) -> None:
    anna = await card.customer()
    async with card.db.transaction() as repos:  # a sale of 0, as a package's visit is recorded
        purchase = await repos.purchases.add(
            Purchase(customer_id=anna, amount_minor=0, service_id="manicure", at=clock.now())
        )
        event = PurchaseRecorded(purchase.id, anna, 0, "manicure", None, clock.now())
        await card.events.purchase_recorded(repos, event)
    assert await card.lines(anna) == [] and await card.progress(anna) == 0


async def test_a_cancelled_sale_withdraws_its_stamp_once(card: Card) -> None:
    anna = await card.customer()
    first = await card.sale(anna)
    await card.sale(anna)
    await card.cancel(first)
    assert await card.progress(anna) == 1
    await card.cancel(first)  # twice: nothing more
    assert await card.lines(anna) == ["stamp", "stamp", "withdrawn"]
    assert await card.progress(anna) == 1
    unstamped = await card.sale(anna, "pedicure")
    await card.cancel(unstamped)  # gave no stamp: nothing to withdraw
    assert await card.lines(anna) == ["stamp", "stamp", "withdrawn"]
    async with card.db.transaction() as repos:
        assert await card.stamps.withdraw_for_purchase(repos, unstamped.purchase_id) is None


async def test_cancelling_the_completing_sale_withdraws_the_unused_reward(card: Card) -> None:
    anna = await card.customer()
    for _ in range(2):
        await card.sale(anna)
    done = await card.sale(anna)
    [coupon] = await card.coupons(anna)
    await card.cancel(done)
    [coupon] = await card.coupons(anna)
    assert coupon.voided_at is not None and coupon.redeemed_at is None
    [receipt] = await card.receipts()
    assert receipt.state == OutboxState.SKIPPED  # not sent yet: never sent
    assert await card.progress(anna) == 2  # the card as before that sale
    assert await card.lines(anna) == ["stamp", "stamp", "stamp", "reward", "withdrawn", "reopened"]
    redeemed = await card.staff.redeem(OLGA, coupon.code)
    assert redeemed.outcome == "voided"

    again = await card.sale(anna)  # the third stamp once more: a new reward
    assert again.stamps.reward_code is not None and again.stamps.reward_code != coupon.code
    assert len(await card.coupons(anna)) == 2 and len(await card.receipts()) == 2


async def test_a_reopened_card_with_stamps_since_completes_again(card: Card) -> None:
    anna = await card.customer()
    sales = [await card.sale(anna) for _ in range(4)]  # complete, then one on the next card
    assert await card.progress(anna) == 1
    await card.cancel(sales[1])  # a stamp of the completed card: 2 back + 1 since = full
    coupons = await card.coupons(anna)
    assert [c.voided_at is not None for c in coupons] == [True, False]
    assert await card.progress(anna) == 0
    assert [r.state for r in await card.receipts()] == [OutboxState.SKIPPED, OutboxState.PENDING]


async def test_a_used_reward_stays_when_its_sale_is_cancelled(card: Card) -> None:
    anna = await card.customer()
    sales = [await card.sale(anna) for _ in range(3)]
    [coupon] = await card.coupons(anna)
    assert (await card.staff.redeem(OLGA, coupon.code)).outcome == "redeemed"
    await card.cancel(sales[2])
    [coupon] = await card.coupons(anna)
    assert coupon.voided_at is None and coupon.redeemed_at is not None
    assert await card.progress(anna) == 0  # the reward was given: the card is new
    assert await card.lines(anna) == ["stamp", "stamp", "stamp", "reward", "withdrawn"]


async def test_a_withdrawn_receipt_is_not_composed(card: Card, clock: FixedClock) -> None:
    anna = await card.customer()
    sales = [await card.sale(anna) for _ in range(3)]
    [receipt] = await card.receipts()
    compose = card.features.composers[REWARD]
    async with card.db.transaction() as repos:
        row = await repos.session.get(OutboxMessage, receipt.id)
        assert row is not None
        customer = await repos.customers.get(anna)
        assert await compose(repos, row, customer, clock.now()) == ({}, None)
        await card.stamps.withdraw_for_purchase(repos, sales[0].purchase_id)
        with pytest.raises(Obsolete):
            await compose(repos, row, customer, clock.now())


async def test_erasure_deletes_the_card(card: Card, clock: FixedClock) -> None:
    anna = await card.customer()
    boris = await card.customer(8)
    for _ in range(3):
        await card.sale(anna)
    await card.sale(boris)
    async with card.db.transaction() as repos:
        await card.events.customer_erased(repos, CustomerErased(anna, clock.now()))
    assert await card.lines(anna) == [] and await card.lines(boris) == ["stamp"]
    async with card.db.reading() as repos:
        left = await repos.session.scalars(select(StampEntry.kind))
        assert list(left) == [StampKind.STAMP]


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ('reward = "half"', 'give "free" or a percent'),
        ("reward = 150", 'loyalty.stamps.reward: give "free" or a percent from 1 to 100'),
        ("reward = true", 'loyalty.stamps.reward: give "free" or a percent'),
        ('services = ["nails"]', "unknown service 'nails'"),
        ("every = 1", "loyalty.stamps.every"),
        ("expire_months = -1", "loyalty.stamps.expire_months"),
    ],
)
def test_the_business_file_checks_the_stamp_card(tmp_path: Path, section: str, error: str) -> None:
    path = tmp_path / "business.toml"
    path.write_text(BUSINESS_FILE.read_text() + f"\n[loyalty.stamps]\nenabled = true\n{section}\n")
    with pytest.raises(ConfigError, match=error.replace("(", r"\(")):
        load_business(path)
