"""Club tiers: by spend or by visits over the last 12 months, up at once and congratulated once,
down warned a month ahead and cancelled by qualifying again, the tier's percent as cashback,
validation of the business file, erasure."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.business import Business, Loyalty, Tier
from bot.clock import FixedClock
from bot.db.models import LedgerKind, LoyaltyEntry, LoyaltyTier, OutboxMessage
from bot.db.repositories import Database
from bot.events import Events
from bot.outbox.compose import Obsolete
from bot.services.customers import CustomerService
from bot.services.loyalty import LoyaltyService
from bot.services.staff import Staff, StaffService
from bot.services.tiers import TierService

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA = Staff(1, "Ольга")
SILVER = Tier(name="Silver", min_spend=10_000, min_visits=5, percent=5)
GOLD = Tier(name="Gold", min_spend=30_000, min_visits=12, percent=10)


@pytest.fixture
def club(business: Business) -> Business:
    """Cashback 3 % flat; Silver (10 000 ₽ or 5 visits) 5 %, Gold (30 000 ₽ or 12 visits) 10 %."""
    loyalty = business.loyalty.model_copy(
        update={
            "cashback": business.loyalty.cashback.model_copy(
                update={"enabled": True, "percent": 3, "expire_months": 12}
            ),
            "tiers": [SILVER, GOLD],
        }
    )
    return business.model_copy(update={"loyalty": loyalty})


@pytest.fixture
def tiers(db: Database, clock: FixedClock, club: Business) -> TierService:
    return TierService(db, clock, club, MOSCOW)


@pytest.fixture
def loyalty(db: Database, clock: FixedClock, club: Business) -> LoyaltyService:
    return LoyaltyService(db, clock, club, MOSCOW)


@pytest.fixture
def selling(
    db: Database, clock: FixedClock, club: Business, loyalty: LoyaltyService
) -> StaffService:
    events = Events()
    events.on_purchase(loyalty.accrue_for_purchase)
    return StaffService(db, clock, club, MOSCOW, events)


async def _customer(db: Database, clock: FixedClock, business: Business, tg: int = 7) -> int:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    view = await customers.consent(tg, name="Анна", username="anna", language="ru", source=None)
    await customers.finish_onboarding(tg)
    await customers.set_marketing(tg, True)
    return view.id


async def _tier(db: Database, customer_id: int) -> LoyaltyTier | None:
    async with db.reading() as repos:
        row = await repos.tiers.get(customer_id)
        if row is None:
            return None
        return LoyaltyTier(tier=row.tier, since=row.since, drops_at=row.drops_at)


async def _messages(db: Database, template: str) -> list[str]:
    async with db.reading() as repos:
        return list(
            await repos.session.scalars(
                select(OutboxMessage.key).where(OutboxMessage.template == template)
            )
        )


async def test_spend_over_the_window_reaches_silver_and_gold(
    selling: StaffService, tiers: TierService, db: Database, clock: FixedClock, club: Business
) -> None:
    customer_id = await _customer(db, clock, club)
    await selling.record_sale(OLGA, customer_id, 999_900)  # 9 999 ₽: not yet
    assert await tiers.evaluate() == 0
    assert await _tier(db, customer_id) is None
    await selling.record_sale(OLGA, customer_id, 100)  # 10 000 ₽
    assert await tiers.evaluate() == 1
    held = await _tier(db, customer_id)
    assert held is not None and held.tier == "Silver" and held.since == clock.now()
    await selling.record_sale(OLGA, customer_id, 2_000_000)  # 30 000 ₽
    assert await tiers.evaluate() == 1
    assert (await _tier(db, customer_id)).tier == "Gold"  # type: ignore[union-attr]
    assert await tiers.evaluate() == 0  # nothing changes twice


async def test_visits_alone_reach_a_tier(
    selling: StaffService, tiers: TierService, db: Database, clock: FixedClock, club: Business
) -> None:
    customer_id = await _customer(db, clock, club)
    for _ in range(4):
        await selling.record_sale(OLGA, customer_id, 50_000)  # 500 ₽ each
    await tiers.evaluate()
    assert await _tier(db, customer_id) is None
    await selling.record_sale(OLGA, customer_id, 50_000)  # the fifth visit, 2 500 ₽ in all
    await tiers.evaluate()
    assert (await _tier(db, customer_id)).tier == "Silver"  # type: ignore[union-attr]


async def test_purchases_older_than_12_months_do_not_count(
    selling: StaffService, tiers: TierService, db: Database, clock: FixedClock, club: Business
) -> None:
    customer_id = await _customer(db, clock, club)
    await selling.record_sale(OLGA, customer_id, 600_000)
    clock.advance(timedelta(days=370))  # the first sale left the window
    await selling.record_sale(OLGA, customer_id, 600_000)
    await tiers.evaluate()
    assert await _tier(db, customer_id) is None  # 6 000 ₽ in the window
    clock.advance(timedelta(days=300))
    await selling.record_sale(OLGA, customer_id, 400_000)  # 10 000 ₽ within 12 months
    await tiers.evaluate()
    assert (await _tier(db, customer_id)).tier == "Silver"  # type: ignore[union-attr]


async def test_going_up_is_congratulated_once(
    selling: StaffService, tiers: TierService, db: Database, clock: FixedClock, club: Business
) -> None:
    customer_id = await _customer(db, clock, club)
    await selling.record_sale(OLGA, customer_id, 1_000_000)
    await tiers.evaluate()
    await tiers.evaluate()
    clock.advance(timedelta(days=1))
    await tiers.evaluate()
    assert await _messages(db, "tier_up") == [
        f"tier_up:{customer_id}:Silver:{(clock.now() - timedelta(days=1)):%Y-%m-%d}"
    ]
    assert await _messages(db, "tier_down") == []


async def test_going_down_is_warned_a_month_ahead_then_applied(
    selling: StaffService, tiers: TierService, db: Database, clock: FixedClock, club: Business
) -> None:
    customer_id = await _customer(db, clock, club)
    await selling.record_sale(OLGA, customer_id, 3_000_000)  # Gold
    await tiers.evaluate()
    clock.advance(timedelta(days=366))  # the sale left the window: qualifies for nothing
    assert await tiers.evaluate() == 1
    held = await _tier(db, customer_id)
    assert held is not None and held.tier == "Gold"  # still Gold for a month
    warned_at = clock.now()
    assert held.drops_at is not None and timedelta(days=28) <= held.drops_at - warned_at
    assert held.drops_at - warned_at <= timedelta(days=31)
    assert len(await _messages(db, "tier_down")) == 1
    clock.advance(timedelta(days=20))
    assert await tiers.evaluate() == 0  # warned, not due: nothing again
    assert (await _tier(db, customer_id)).tier == "Gold"  # type: ignore[union-attr]
    clock.set(held.drops_at)
    assert await tiers.evaluate() == 1
    assert await _tier(db, customer_id) is None  # dropped out of the club
    assert len(await _messages(db, "tier_down")) == 1


async def test_a_drop_goes_to_the_tier_still_reached(
    selling: StaffService, tiers: TierService, db: Database, clock: FixedClock, club: Business
) -> None:
    customer_id = await _customer(db, clock, club)
    await selling.record_sale(OLGA, customer_id, 2_000_000)
    clock.advance(timedelta(days=200))
    await selling.record_sale(OLGA, customer_id, 1_200_000)  # 32 000 ₽: Gold
    await tiers.evaluate()
    clock.advance(timedelta(days=170))  # the first left: 12 000 ₽, Silver
    await tiers.evaluate()
    held = await _tier(db, customer_id)
    assert held is not None and held.tier == "Gold" and held.drops_at is not None
    clock.set(held.drops_at)
    await tiers.evaluate()
    held = await _tier(db, customer_id)
    assert held is not None and held.tier == "Silver" and held.drops_at is None
    assert len(await _messages(db, "tier_up")) == 1  # a drop is no congratulation


async def test_qualifying_again_cancels_the_drop(
    selling: StaffService, tiers: TierService, db: Database, clock: FixedClock, club: Business
) -> None:
    customer_id = await _customer(db, clock, club)
    await selling.record_sale(OLGA, customer_id, 1_000_000)
    await tiers.evaluate()
    clock.advance(timedelta(days=366))
    await tiers.evaluate()
    warned = await _tier(db, customer_id)
    assert warned is not None and warned.drops_at is not None
    async with db.reading() as repos:
        row = await repos.session.scalar(
            select(OutboxMessage).where(OutboxMessage.template == "tier_down")
        )
        assert row is not None
        customer = await repos.customers.get(customer_id)
        context, _ = await tiers.compose(repos, row, customer, clock.now())
        assert context == {"tier": SILVER, "drops_at": warned.drops_at}
    clock.advance(timedelta(days=10))
    await selling.record_sale(OLGA, customer_id, 1_000_000)  # Silver again
    assert await tiers.evaluate() == 1
    held = await _tier(db, customer_id)
    assert held is not None and held.tier == "Silver" and held.drops_at is None
    async with db.reading() as repos:  # the warning, if not sent yet, is not sent now
        row = await repos.session.scalar(
            select(OutboxMessage).where(OutboxMessage.template == "tier_down")
        )
        assert row is not None
        customer = await repos.customers.get(customer_id)
        with pytest.raises(Obsolete):
            await tiers.compose(repos, row, customer, clock.now())
    clock.advance(timedelta(days=40))
    assert await tiers.evaluate() == 0
    assert (await _tier(db, customer_id)).tier == "Silver"  # type: ignore[union-attr]


async def test_cashback_is_the_tiers_percent(
    selling: StaffService,
    tiers: TierService,
    loyalty: LoyaltyService,
    db: Database,
    clock: FixedClock,
    club: Business,
) -> None:
    customer_id = await _customer(db, clock, club)
    await selling.record_sale(OLGA, customer_id, 1_000_000)  # flat 3 %: 300
    await tiers.evaluate()  # Silver
    sale = await selling.record_sale(OLGA, customer_id, 1_000_000)  # Silver's 5 %: 500
    assert sale.tier == "Silver" and sale.points == 800
    async with db.reading() as repos:
        accruals = list(
            await repos.session.scalars(
                select(LoyaltyEntry.points)
                .where(LoyaltyEntry.kind == LedgerKind.ACCRUAL)
                .order_by(LoyaltyEntry.id)
            )
        )
    assert accruals == [300, 500]
    wallet = await loyalty.wallet(customer_id)
    assert wallet.tier == SILVER and wallet.points == 800


async def test_no_offers_no_congratulation_but_the_tier_still_counts(
    selling: StaffService, tiers: TierService, db: Database, clock: FixedClock, club: Business
) -> None:
    customers = CustomerService(db, clock, club, MOSCOW, secret_key=b"test-secret-key")
    view = await customers.consent(8, name="Борис", username=None, language="ru", source=None)
    await customers.finish_onboarding(8)  # never agreed to offers
    await selling.record_sale(OLGA, view.id, 1_000_000)
    await tiers.evaluate()
    assert (await _tier(db, view.id)).tier == "Silver"  # type: ignore[union-attr]
    assert await _messages(db, "tier_up") == []


async def test_erasure_removes_the_tier_and_it_is_not_given_back(
    selling: StaffService, tiers: TierService, db: Database, clock: FixedClock, club: Business
) -> None:
    customer_id = await _customer(db, clock, club)
    await selling.record_sale(OLGA, customer_id, 1_000_000)
    await tiers.evaluate()
    customers = CustomerService(db, clock, club, MOSCOW, secret_key=b"test-secret-key")
    assert await customers.forget(7)
    assert await _tier(db, customer_id) is None
    assert await tiers.evaluate() == 0  # their purchases stay, anonymous: no tier again
    assert await _tier(db, customer_id) is None


def test_tiers_in_the_business_file_are_checked() -> None:
    assert Loyalty(tiers=[SILVER, GOLD]).tier("Gold") == GOLD
    with pytest.raises(ValidationError, match="lowest tier first"):
        Loyalty(tiers=[GOLD, SILVER])
    with pytest.raises(ValidationError, match="more percent"):
        Loyalty(tiers=[SILVER, GOLD.model_copy(update={"percent": 5})])
    with pytest.raises(ValidationError, match="min_spend, min_visits or both"):
        Tier(name="Bronze", percent=2)
    with pytest.raises(ValidationError, match="one name"):
        Loyalty(tiers=[SILVER, GOLD.model_copy(update={"name": "silver"})])
