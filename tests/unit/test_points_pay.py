"""Paying with points, confirmed by the customer: the cap by max_share, confirm spends and
reduces the sale, decline and late answers change nothing, not enough points at confirm time,
someone else's request, and two confirms at once (both databases)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.engine import create_engine
from bot.db.models import LedgerKind, LoyaltyEntry, OutboxMessage, PointsRequestState, Purchase
from bot.db.repositories import Database, Repos
from bot.events import Events
from bot.rendering import Renderer
from bot.services.customers import CustomerService
from bot.services.loyalty import LoyaltyService
from bot.services.points_pay import (
    REQUEST_TTL,
    AnswerOutcome,
    PointsPayService,
    cap_of,
)
from bot.services.staff import Staff, StaffService, UsageError
from bot.services.stats import StatsService

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA = Staff(1, "Ольга")
ADMIN = -100


@pytest.fixture
def cashback(business: Business) -> Business:
    """5 % cashback; points pay at most 30 % of a check."""
    loyalty = business.loyalty.model_copy(
        update={
            "cashback": business.loyalty.cashback.model_copy(
                update={"enabled": True, "percent": 5, "max_share": 0.3, "expire_months": 12}
            )
        }
    )
    return business.model_copy(update={"loyalty": loyalty})


def _services(
    db: Database, clock: FixedClock, business: Business
) -> tuple[StaffService, LoyaltyService, PointsPayService]:
    loyalty = LoyaltyService(db, clock, business, MOSCOW)
    events = Events()
    events.on_purchase(loyalty.accrue_for_purchase)
    staff = StaffService(db, clock, business, MOSCOW, events)
    pay = PointsPayService(db, clock, business, loyalty, ADMIN, Renderer(MOSCOW))
    return staff, loyalty, pay


async def _customer(db: Database, clock: FixedClock, business: Business, tg: int = 7) -> int:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    view = await customers.consent(tg, name="Анна", username=None, language="ru", source=None)
    await customers.finish_onboarding(tg)
    return view.id


async def _with_points(
    db: Database, clock: FixedClock, business: Business, points: int, tg: int = 7
) -> int:
    customer_id = await _customer(db, clock, business, tg)
    await LoyaltyService(db, clock, business, MOSCOW).correct(OLGA, customer_id, points, "старт")
    return customer_id


async def _balance(db: Database, customer_id: int) -> int:
    async with db.reading() as repos:
        return await repos.loyalty.balance(customer_id)


async def _amount(repos: Repos, purchase_id: int) -> int:
    purchase = await repos.session.get(Purchase, purchase_id)
    assert purchase is not None
    return purchase.amount_minor


def test_the_cap_is_max_share_of_the_check_in_whole_points() -> None:
    assert cap_of(200000, 0.3) == 600  # 30 % of 2 000 ₽
    assert cap_of(99999, 0.3) == 299  # 299.997 ₽ → 299
    assert cap_of(100, 0.3) == 0


async def test_the_offer_is_the_balance_capped_by_max_share_and_nothing_is_spent_yet(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    staff, _, pay = _services(db, clock, cashback)
    customer_id = await _with_points(db, clock, cashback, 1000)
    sale = await staff.record_sale(OLGA, customer_id, 200000)  # +100 cashback
    with pytest.raises(UsageError) as too_many:
        await pay.ask(OLGA, sale.purchase_id, 601)
    assert too_many.value.reason == "pay_too_many" and too_many.value.details["cap"] == 600
    asked = await pay.ask(OLGA, sale.purchase_id)
    assert asked.points == 600 and asked.balance == 1100
    assert await _balance(db, customer_id) == 1100  # asked, not spent
    with pytest.raises(UsageError) as twice:
        await pay.ask(OLGA, sale.purchase_id, 10)
    assert twice.value.reason == "pay_open"
    async with db.reading() as repos:
        rows = (await repos.session.scalars(select(OutboxMessage))).all()
        request = next(r for r in rows if r.template == "points_request")
        assert request.customer_id == customer_id and request.kind == "service"
        assert request.data["points"] == 600 and request.data["pay_minor"] == 140000
        assert request.markup is not None


async def test_a_small_balance_is_offered_whole_and_none_is_refused(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    staff, _, pay = _services(db, clock, cashback)
    customer_id = await _with_points(db, clock, cashback, 40)
    sale = await staff.record_sale(OLGA, customer_id, 200000)
    assert (await pay.ask(OLGA, sale.purchase_id)).points == 140
    poor = await _customer(db, clock, cashback, tg=8)
    small = await staff.record_sale(OLGA, poor, 1000)  # 10 ₽: no cashback, no points
    with pytest.raises(UsageError) as nothing:
        await pay.ask(OLGA, small.purchase_id)
    assert nothing.value.reason == "pay_nothing"


async def test_confirm_spends_the_points_and_reduces_the_sale_once(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    staff, _, pay = _services(db, clock, cashback)
    customer_id = await _with_points(db, clock, cashback, 500)
    sale = await staff.record_sale(OLGA, customer_id, 200000)  # +100
    asked = await pay.ask(OLGA, sale.purchase_id, 300)
    done = await pay.answer(customer_id, asked.request_id, True)
    assert done.outcome is AnswerOutcome.CONFIRMED
    assert (done.points, done.amount_minor, done.paid_minor, done.balance) == (
        300,
        200000,
        170000,
        300,
    )
    again = await pay.answer(customer_id, asked.request_id, True)
    assert again.outcome is AnswerOutcome.ALREADY
    assert (await pay.answer(customer_id, asked.request_id, False)).outcome is AnswerOutcome.ALREADY
    async with db.reading() as repos:
        assert await _amount(repos, sale.purchase_id) == 170000
        spent = (
            await repos.session.execute(
                select(LoyaltyEntry.points, LoyaltyEntry.purchase_id).where(
                    LoyaltyEntry.kind == LedgerKind.SPENDING
                )
            )
        ).all()
        assert [tuple(r) for r in spent] == [(-300, sale.purchase_id)]
        accrual = await repos.session.scalar(
            select(LoyaltyEntry.points).where(LoyaltyEntry.kind == LedgerKind.ACCRUAL)
        )
        assert accrual == 100  # cashback of the original amount stays
        notices = (
            await repos.session.scalars(
                select(OutboxMessage).where(OutboxMessage.template == "points_answered_staff")
            )
        ).all()
        assert [(n.chat_id, n.data["outcome"]) for n in notices] == [(ADMIN, "confirmed")]
    with pytest.raises(UsageError) as paid:
        await pay.ask(OLGA, sale.purchase_id, 10)
    assert paid.value.reason == "pay_open"


async def test_decline_and_late_answers_change_nothing(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    staff, _, pay = _services(db, clock, cashback)
    customer_id = await _with_points(db, clock, cashback, 500)
    sale = await staff.record_sale(OLGA, customer_id, 200000)
    asked = await pay.ask(OLGA, sale.purchase_id, 200)
    declined = await pay.answer(customer_id, asked.request_id, False)
    assert declined.outcome is AnswerOutcome.DECLINED and declined.balance == 600
    assert (await pay.answer(customer_id, asked.request_id, True)).outcome is AnswerOutcome.ALREADY
    again = await pay.ask(OLGA, sale.purchase_id, 200)  # a declined request may be asked again
    clock.advance(REQUEST_TTL)
    late = await pay.answer(customer_id, again.request_id, True)
    assert late.outcome is AnswerOutcome.EXPIRED
    assert await _balance(db, customer_id) == 600
    async with db.reading() as repos:
        assert await _amount(repos, sale.purchase_id) == 200000
        first = await repos.points_requests.get(asked.request_id)
        second = await repos.points_requests.get(again.request_id)
        assert first and first.state == PointsRequestState.DECLINED
        assert second and second.state == PointsRequestState.EXPIRED
    unanswered = await pay.ask(OLGA, sale.purchase_id, 100)
    clock.advance(REQUEST_TTL - timedelta(seconds=1))
    with pytest.raises(UsageError) as waiting:
        await pay.ask(OLGA, sale.purchase_id, 100)
    assert waiting.value.reason == "pay_open"
    clock.advance(timedelta(seconds=1))  # left unanswered: it may be asked again
    third = await pay.ask(OLGA, sale.purchase_id, 100)
    assert third.request_id != unanswered.request_id
    assert (await pay.answer(customer_id, unanswered.request_id, True)).outcome is (
        AnswerOutcome.EXPIRED
    )
    clock.advance(timedelta(days=1))
    with pytest.raises(UsageError) as old:
        await pay.ask(OLGA, sale.purchase_id, 10)
    assert old.value.reason == "pay_late"


async def test_not_enough_points_at_confirm_time_spends_nothing(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    staff, loyalty, pay = _services(db, clock, cashback)
    customer_id = await _with_points(db, clock, cashback, 500)
    sale = await staff.record_sale(OLGA, customer_id, 200000)
    asked = await pay.ask(OLGA, sale.purchase_id, 500)
    await loyalty.correct(OLGA, customer_id, -300, "ошибка")  # 300 left
    short = await pay.answer(customer_id, asked.request_id, True)
    assert short.outcome is AnswerOutcome.SHORT and short.balance == 300
    assert await _balance(db, customer_id) == 300
    async with db.reading() as repos:
        assert await _amount(repos, sale.purchase_id) == 200000


async def test_someone_elses_or_a_forged_request_changes_nothing(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    staff, _, pay = _services(db, clock, cashback)
    anna = await _with_points(db, clock, cashback, 500)
    boris = await _with_points(db, clock, cashback, 500, tg=8)
    sale = await staff.record_sale(OLGA, anna, 200000)
    asked = await pay.ask(OLGA, sale.purchase_id, 100)
    assert (await pay.answer(boris, asked.request_id, True)).outcome is AnswerOutcome.STALE
    assert (await pay.answer(anna, 999_999, True)).outcome is AnswerOutcome.STALE
    assert await _balance(db, anna) == 600 and await _balance(db, boris) == 500
    with pytest.raises(UsageError) as missing:
        await pay.ask(OLGA, 999_999)
    assert missing.value.reason == "pay_stale"


async def test_off_in_the_business_file_cannot_ask(
    db: Database, clock: FixedClock, business: Business
) -> None:
    _, _, pay = _services(db, clock, business)
    with pytest.raises(UsageError) as off:
        await pay.ask(OLGA, 1)
    assert off.value.reason == "pay_off"


class SlowLoyalty(LoyaltyService):
    """Holds its transaction open after spending, so the other confirm comes meanwhile."""

    async def spend_in(
        self, repos: Repos, customer_id: int, points: int, purchase_id: int | None = None
    ) -> bool:
        spent = await super().spend_in(repos, customer_id, points, purchase_id)
        await asyncio.sleep(0.3)
        return spent


async def test_two_confirms_at_once_spend_once(
    database_url: str, db: Database, clock: FixedClock, cashback: Business
) -> None:
    staff, _, pay = _services(db, clock, cashback)
    customer_id = await _with_points(db, clock, cashback, 500)
    sale = await staff.record_sale(OLGA, customer_id, 200000)  # +100
    asked = await pay.ask(OLGA, sale.purchase_id, 300)
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        services = [
            PointsPayService(
                Database(e),
                clock,
                cashback,
                SlowLoyalty(Database(e), clock, cashback, MOSCOW),
                ADMIN,
                Renderer(MOSCOW),
            )
            for e in engines
        ]
        answers = await asyncio.gather(
            *(s.answer(customer_id, asked.request_id, True) for s in services)
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(a.outcome for a in answers) == [AnswerOutcome.ALREADY, AnswerOutcome.CONFIRMED]
    assert await _balance(db, customer_id) == 300
    async with db.reading() as repos:
        assert await _amount(repos, sale.purchase_id) == 170000


async def test_a_sale_in_a_day_stats_summed_already_is_counted_again(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    staff, _, pay = _services(db, clock, cashback)
    customer_id = await _with_points(db, clock, cashback, 500)
    local = clock.now().astimezone(MOSCOW)
    clock.advance(local.replace(hour=23, minute=50) - local)
    sale = await staff.record_sale(OLGA, customer_id, 200000)
    asked = await pay.ask(OLGA, sale.purchase_id, 300)
    clock.advance(timedelta(minutes=15))  # past midnight: the sale's day is over
    stats = StatsService(db, clock, MOSCOW)
    await stats.close()
    async with db.reading() as repos:
        assert await repos.stats.days_closed_through() == local.date()
    assert (await pay.answer(customer_id, asked.request_id, True)).outcome is (
        AnswerOutcome.CONFIRMED
    )
    async with db.reading() as repos:
        closed = await repos.stats.days_closed_through()
        assert closed is None or closed < local.date()
