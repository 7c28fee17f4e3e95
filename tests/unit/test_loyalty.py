"""Cashback points: accrual with the sale, soonest-expiring first, expiry, never negative,
corrections with a reason, two spends at once, erasure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.engine import create_engine
from bot.db.models import LedgerKind, LoyaltyEntry, OutboxMessage, StaffAction
from bot.db.repositories import Database
from bot.events import Events
from bot.outbox.compose import Obsolete
from bot.rendering import Renderer
from bot.services.customers import CustomerService
from bot.services.loyalty import HistoryLine, LoyaltyService
from bot.services.staff import Staff, StaffService, UsageError

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA = Staff(1, "Ольга")


@pytest.fixture
def cashback(business: Business) -> Business:
    """The test business with 5 % cashback expiring after 12 months."""
    loyalty = business.loyalty.model_copy(
        update={
            "cashback": business.loyalty.cashback.model_copy(
                update={"enabled": True, "percent": 5, "expire_months": 12}
            )
        }
    )
    return business.model_copy(update={"loyalty": loyalty})


@pytest.fixture
def loyalty(db: Database, clock: FixedClock, cashback: Business) -> LoyaltyService:
    return LoyaltyService(db, clock, cashback, MOSCOW)


@pytest.fixture
def selling(
    db: Database, clock: FixedClock, cashback: Business, loyalty: LoyaltyService
) -> StaffService:
    events = Events()
    events.on_purchase(loyalty.accrue_for_purchase)
    return StaffService(db, clock, cashback, MOSCOW, events)


async def _customer(db: Database, clock: FixedClock, business: Business, tg: int = 7) -> int:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    view = await customers.consent(tg, name="Анна", username="anna", language="ru", source=None)
    await customers.finish_onboarding(tg)
    await customers.set_marketing(tg, True)  # agreed to offers
    return view.id


async def _entries(db: Database, customer_id: int) -> list[tuple[str, int]]:
    async with db.reading() as repos:
        rows = await repos.session.execute(
            select(LoyaltyEntry.kind, LoyaltyEntry.points)
            .where(LoyaltyEntry.customer_id == customer_id)
            .order_by(LoyaltyEntry.id)
        )
        return [(k, p) for k, p in rows]


def test_points_are_whole_rubles_rounded_down(loyalty: LoyaltyService) -> None:
    assert loyalty.points_for(150000) == 75  # 5 % of 1 500 ₽
    assert loyalty.points_for(1999) == 0  # 5 % of 19.99 ₽ is under a ruble
    assert loyalty.points_for(3999) == 1


async def test_a_sale_accrues_in_its_transaction_and_expires_after_months(
    selling: StaffService,
    loyalty: LoyaltyService,
    db: Database,
    clock: FixedClock,
    cashback: Business,
) -> None:
    customer_id = await _customer(db, clock, cashback)
    sale = await selling.record_sale(OLGA, customer_id, 200000)
    wallet = await loyalty.wallet(customer_id)
    assert wallet.points == 100 and wallet.expiring == 100
    assert wallet.next_expiry == clock.now() + timedelta(days=365)
    async with db.reading() as repos:
        rows = await repos.session.execute(select(LoyaltyEntry.kind, LoyaltyEntry.purchase_id))
        assert list(rows) == [(LedgerKind.ACCRUAL, sale.purchase_id)]


async def test_off_in_the_business_file_accrues_nothing(
    db: Database, clock: FixedClock, business: Business
) -> None:
    assert not business.loyalty.cashback.enabled  # off unless the file turns it on
    off = LoyaltyService(db, clock, business, MOSCOW)
    events = Events()
    events.on_purchase(off.accrue_for_purchase)
    customer_id = await _customer(db, clock, business)
    await StaffService(db, clock, business, MOSCOW, events).record_sale(OLGA, customer_id, 200000)
    assert await _entries(db, customer_id) == []


async def test_spending_takes_the_oldest_points_and_expiry_takes_what_is_left(
    selling: StaffService,
    loyalty: LoyaltyService,
    db: Database,
    clock: FixedClock,
    cashback: Business,
) -> None:
    customer_id = await _customer(db, clock, cashback)
    await selling.record_sale(OLGA, customer_id, 200000)  # +100, expires in 12 months
    clock.advance(timedelta(days=60))
    await selling.record_sale(OLGA, customer_id, 100000)  # +50, two months later
    assert await loyalty.spend(customer_id, 120)  # all 100 of the first, 20 of the second
    clock.advance(timedelta(days=306))  # one day past the first accrual's expiry
    assert (await loyalty.wallet(customer_id)).points == 30
    assert await loyalty.expire() == 1  # the first was all spent: settled with 0
    assert await loyalty.expire() == 0  # and not found again
    assert (await loyalty.wallet(customer_id)).points == 30
    clock.advance(timedelta(days=60))  # past the second's expiry
    assert (await loyalty.wallet(customer_id)).points == 0  # shown as gone before the planner
    assert await loyalty.expire() == 1
    assert await _entries(db, customer_id) == [
        ("accrual", 100),
        ("accrual", 50),
        ("spending", -120),
        ("expiry", 0),
        ("expiry", -30),
    ]
    assert await loyalty.expire() == 0


async def test_a_spend_after_expiry_cannot_use_expired_points(
    selling: StaffService,
    loyalty: LoyaltyService,
    db: Database,
    clock: FixedClock,
    cashback: Business,
) -> None:
    customer_id = await _customer(db, clock, cashback)
    await selling.record_sale(OLGA, customer_id, 200000)  # +100
    clock.advance(timedelta(days=400))  # expired, the planner has not run
    assert not await loyalty.spend(customer_id, 50)
    assert await _entries(db, customer_id) == [("accrual", 100), ("expiry", -100)]


async def test_never_negative_and_corrections_need_a_reason(
    selling: StaffService,
    loyalty: LoyaltyService,
    db: Database,
    clock: FixedClock,
    cashback: Business,
) -> None:
    customer_id = await _customer(db, clock, cashback)
    await selling.record_sale(OLGA, customer_id, 100000)  # +50
    assert not await loyalty.spend(customer_id, 51)
    for reason in ("", "   "):
        with pytest.raises(UsageError) as caught:
            await loyalty.correct(OLGA, customer_id, 10, reason)
        assert caught.value.reason == "points_reason"
    with pytest.raises(UsageError) as caught:
        await loyalty.correct(OLGA, customer_id, 0, "ноль")
    assert caught.value.reason == "points_usage"
    with pytest.raises(UsageError) as caught:
        await loyalty.correct(OLGA, customer_id, -60, "списать лишнее")
    assert caught.value.reason == "points_short" and caught.value.details["balance"] == 50
    done = await loyalty.correct(OLGA, customer_id, 25, "подарок  за отзыв")
    assert (done.points, done.balance, done.reason) == (25, 75, "подарок за отзыв")
    done = await loyalty.correct(OLGA, customer_id, -75, "ошибка кассира")
    assert done.balance == 0
    assert await _entries(db, customer_id) == [
        ("accrual", 50),
        ("correction", 25),
        ("correction", -75),
    ]
    async with db.reading() as repos:
        audit = list(
            await repos.session.execute(
                select(StaffAction.staff_name, StaffAction.details)
                .where(StaffAction.action == "points")
                .order_by(StaffAction.id)  # in the order made (PostgreSQL keeps no other)
            )
        )
    assert [(name, details) for name, details in audit] == [
        ("Ольга", {"points": 25, "reason": "подарок за отзыв"}),
        ("Ольга", {"points": -75, "reason": "ошибка кассира"}),
    ]


async def test_a_correction_upward_never_expires_and_is_used_last(
    selling: StaffService,
    loyalty: LoyaltyService,
    db: Database,
    clock: FixedClock,
    cashback: Business,
) -> None:
    customer_id = await _customer(db, clock, cashback)
    await loyalty.correct(OLGA, customer_id, 100, "перенос с бумажной карты")
    await selling.record_sale(OLGA, customer_id, 100000)  # +50, expiring
    assert await loyalty.spend(customer_id, 50)  # takes the expiring ones first
    clock.advance(timedelta(days=400))
    await loyalty.expire()
    wallet = await loyalty.wallet(customer_id)
    assert (wallet.points, wallet.next_expiry) == (100, None)


@pytest.mark.parametrize("how", ["spend", "correct"])
async def test_two_staff_spending_the_same_points_at_once_spend_them_once(
    database_url: str, db: Database, clock: FixedClock, cashback: Business, how: str
) -> None:
    """Two connections (two processes' worth): each holds its transaction open after its
    debit, so without the row lock both would see the whole balance and both would spend it."""
    customer_id = await _customer(db, clock, cashback)
    await LoyaltyService(db, clock, cashback, MOSCOW).correct(OLGA, customer_id, 100, "старт")
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        services = [LoyaltyService(Database(e), clock, cashback, MOSCOW) for e in engines]

        async def spend(service: LoyaltyService, staff: Staff) -> bool:
            if how == "correct":
                try:
                    await service.correct(staff, customer_id, -80, "списание")
                except UsageError:
                    return False
                return True
            async with service.db.transaction() as repos:
                spent = await service.spend_in(repos, customer_id, 80)
                await asyncio.sleep(0.3)  # the other one's debit comes meanwhile
                return spent

        results = await asyncio.gather(
            spend(services[0], OLGA), spend(services[1], Staff(2, "Миша"))
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(results) == [False, True]
    async with db.reading() as repos:
        assert await repos.loyalty.balance(customer_id) == 20


async def test_forget_deletes_the_ledger(
    selling: StaffService,
    loyalty: LoyaltyService,
    db: Database,
    clock: FixedClock,
    cashback: Business,
) -> None:
    customer_id = await _customer(db, clock, cashback, tg=7)
    other = await _customer(db, clock, cashback, tg=8)
    await selling.record_sale(OLGA, customer_id, 200000)
    await selling.record_sale(OLGA, other, 200000)
    await loyalty.correct(OLGA, customer_id, 5, "секрет клиента")
    clock.advance(timedelta(days=400))
    await loyalty.expire()  # an expiry entry pointing at an accrual
    customers = CustomerService(db, clock, cashback, MOSCOW, secret_key=b"test-secret-key")
    assert await customers.forget(7)
    assert await _entries(db, customer_id) == []
    assert await _entries(db, other) == [("accrual", 100), ("expiry", -100)]
    async with db.reading() as repos:
        [record] = await repos.erasure.records(10)
        erased = record.categories["loyalty_entries"]
        total = await repos.session.scalar(select(func.count()).select_from(LoyaltyEntry))
    assert erased == 3 and total == 2  # the accrual, its expiry, the correction


async def test_the_reminder_is_planned_once_and_dropped_when_nothing_is_left(
    selling: StaffService,
    loyalty: LoyaltyService,
    db: Database,
    clock: FixedClock,
    cashback: Business,
) -> None:
    customer_id = await _customer(db, clock, cashback)
    await selling.record_sale(OLGA, customer_id, 200000)  # +100
    assert await loyalty.remind() == 0  # not within a week of the expiry yet
    clock.advance(timedelta(days=360))
    assert await loyalty.remind() == 1
    assert await loyalty.remind() == 0
    async with db.transaction() as repos:
        [row] = await repos.session.scalars(
            select(OutboxMessage).where(OutboxMessage.template == "points_expiring")
        )
        customer = await repos.customers.get(customer_id)
        extra, _ = await loyalty.compose_reminder(repos, row, customer, clock.now())
        assert extra["points"] == 100 and extra["balance"] == 100
    await loyalty.correct(OLGA, customer_id, -100, "потрачено")
    async with db.transaction() as repos:
        [row] = await repos.session.scalars(select(OutboxMessage))
        customer = await repos.customers.get(customer_id)
        with pytest.raises(Obsolete):
            await loyalty.compose_reminder(repos, row, customer, clock.now())


async def test_the_expiry_planner_is_bounded_per_run(
    selling: StaffService,
    loyalty: LoyaltyService,
    db: Database,
    clock: FixedClock,
    cashback: Business,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bot.services.loyalty.EXPIRE_PER_RUN", 2)
    monkeypatch.setattr("bot.services.loyalty.SETTLE_PER_TRANSACTION", 1)
    for tg in (7, 8, 9):
        await selling.record_sale(OLGA, await _customer(db, clock, cashback, tg), 100000)
    clock.advance(timedelta(days=400))
    assert [await loyalty.expire() for _ in range(3)] == [2, 1, 0]
    async with db.reading() as repos:
        assert await repos.loyalty.balances([1, 2, 3]) == {1: 0, 2: 0, 3: 0}


async def test_the_history_lists_the_last_movements_newest_first_by_what_they_were(
    selling: StaffService,
    loyalty: LoyaltyService,
    db: Database,
    clock: FixedClock,
    cashback: Business,
) -> None:
    customer_id = await _customer(db, clock, cashback)
    assert await loyalty.history(customer_id) == []
    async with db.transaction() as repos:
        await repos.loyalty.add(
            LoyaltyEntry(
                customer_id=customer_id,
                kind=LedgerKind.ACCRUAL,
                points=150,
                reason="welcome_bonus",
                created_at=clock.now(),
            )
        )
    await selling.record_sale(OLGA, customer_id, 200000)  # +100
    assert await loyalty.spend(customer_id, 250)  # all of it: the sale's accrual settles at 0
    clock.advance(timedelta(days=400))
    assert await loyalty.expire() == 1  # an expiry of 0 moves nothing: not in the history
    await loyalty.correct(OLGA, customer_id, 40, "подарок за отзыв")
    await selling.record_sale(OLGA, customer_id, 100000)  # +50
    lines = await loyalty.history(customer_id)
    assert [(line.what, line.points) for line in lines] == [
        ("purchase", 50),
        ("correction", 40),  # the staff's typed reason stays in the audit
        ("spending", -250),
        ("purchase", 100),
        ("welcome_bonus", 150),
    ]
    assert lines[0].at == clock.now()
    assert [line.what for line in await loyalty.history(customer_id, limit=2)] == [
        "purchase",
        "correction",
    ]


def test_the_history_reads_in_both_languages() -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    history = [HistoryLine(at, -1300, "spending"), HistoryLine(at, 300, "referral_bonus")]
    render = Renderer(MOSCOW)
    assert render.text("ru", "points_history", history=history) == (
        "📜 <b>История баллов</b>\n"
        "23.11.2026 · −1\u00a0300 · оплата покупки баллами\n"
        "23.11.2026 · +300 · бонус за приход по ссылке друга"
    )
    assert render.text("en", "points_history", history=history) == (
        "📜 <b>Points history</b>\n"
        "23 Nov 2026 · −1,300 · paid for a purchase\n"
        "23 Nov 2026 · +300 · bonus for joining by a friend’s link"
    )
