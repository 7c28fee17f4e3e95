"""A request to pay with points that nobody answered: when it expires the planner closes it, the
sale stays at its full amount, and the admin chat is told once who asked; a tap after that is
told the time is over, and an answered request is never touched (both databases)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import OutboxMessage, PointsRequestState
from bot.db.repositories import Database
from bot.events import Events
from bot.rendering import Renderer
from bot.services.points_pay import REQUEST_TTL, AnswerOutcome
from bot.services.sale_cancel import SaleCancelService
from tests.unit.conftest import MOSCOW
from tests.unit.test_points_pay import (
    ADMIN,
    OLGA,
    _amount,
    _balance,
    _services,
    _with_points,
    cashback,  # noqa: F401  (the fixture)
)


async def _notices(db: Database) -> list[tuple[str, int | None, dict[str, Any]]]:
    """(key, chat, data) of the admin chat's notices about points requests."""
    async with db.reading() as repos:
        rows = await repos.session.execute(
            select(OutboxMessage.key, OutboxMessage.chat_id, OutboxMessage.data)
            .where(OutboxMessage.template == "points_answered_staff")
            .order_by(OutboxMessage.id)
        )
        return [(k, c, d) for k, c, d in rows]


async def test_an_unanswered_request_is_closed_when_it_expires_and_the_staff_told_once(
    db: Database,
    clock: FixedClock,
    cashback: Business,  # noqa: F811
) -> None:
    staff, _, pay = _services(db, clock, cashback)
    customer_id = await _with_points(db, clock, cashback, 500)
    sale = await staff.record_sale(OLGA, customer_id, 200000)  # +100 cashback
    asked = await pay.ask(OLGA, sale.purchase_id, 300)
    clock.advance(REQUEST_TTL - timedelta(seconds=1))
    assert await pay.close_unanswered() == 0  # still the customer's time
    clock.advance(timedelta(seconds=1))
    assert await pay.close_unanswered() == 1
    assert await pay.close_unanswered() == 0  # once
    async with db.reading() as repos:
        request = await repos.points_requests.get(asked.request_id)
        assert request and request.state == PointsRequestState.EXPIRED
        assert request.decided_at == clock.now()
        assert await _amount(repos, sale.purchase_id) == 200000  # the sale at its full amount
    assert await _balance(db, customer_id) == 600  # nothing spent
    [(key, chat, data)] = await _notices(db)
    assert key == f"points_answered:{asked.request_id}" and chat == ADMIN
    assert data["outcome"] == "unanswered" and data["staff_name"] == OLGA.name
    assert data["points"] == 300 and data["amount_minor"] == 200000
    text = Renderer(MOSCOW).text("ru", "points_answered_staff", data=data, business=cashback)
    assert f"Клиент #{customer_id} не ответил(а)" in text and "Ольга" in text
    assert "к оплате 2\xa0000\xa0₽.\nЗапрос отправил(а): Ольга." in text  # to pay in full

    late = await pay.answer(customer_id, asked.request_id, True)  # the customer taps now
    assert late.outcome is AnswerOutcome.EXPIRED
    assert await _balance(db, customer_id) == 600
    assert len(await _notices(db)) == 1  # no second notice


async def test_answered_requests_and_a_late_tap_first_are_left_alone(
    db: Database,
    clock: FixedClock,
    cashback: Business,  # noqa: F811
) -> None:
    staff, _, pay = _services(db, clock, cashback)
    customer_id = await _with_points(db, clock, cashback, 1000)
    confirmed = await pay.ask(
        OLGA, (await staff.record_sale(OLGA, customer_id, 100000)).purchase_id
    )
    declined = await pay.ask(OLGA, (await staff.record_sale(OLGA, customer_id, 100000)).purchase_id)
    tapped_late = await pay.ask(
        OLGA, (await staff.record_sale(OLGA, customer_id, 100000)).purchase_id
    )
    assert (await pay.answer(customer_id, confirmed.request_id, True)).outcome is (
        AnswerOutcome.CONFIRMED
    )
    assert (await pay.answer(customer_id, declined.request_id, False)).outcome is (
        AnswerOutcome.DECLINED
    )
    clock.advance(REQUEST_TTL)
    assert (await pay.answer(customer_id, tapped_late.request_id, True)).outcome is (
        AnswerOutcome.EXPIRED
    )
    assert await pay.close_unanswered() == 0
    assert [d["outcome"] for _, _, d in await _notices(db)] == ["confirmed", "declined", "expired"]


async def test_a_request_of_a_sale_cancelled_meanwhile_is_closed_without_a_notice(
    db: Database,
    clock: FixedClock,
    cashback: Business,  # noqa: F811
) -> None:
    staff, loyalty, pay = _services(db, clock, cashback)
    customer_id = await _with_points(db, clock, cashback, 500)
    sale = await staff.record_sale(OLGA, customer_id, 200000)
    asked = await pay.ask(OLGA, sale.purchase_id, 300)
    await SaleCancelService(db, clock, cashback, loyalty, Events()).cancel(OLGA, sale.purchase_id)
    clock.advance(REQUEST_TTL)
    assert await pay.close_unanswered() == 1
    async with db.reading() as repos:
        request = await repos.points_requests.get(asked.request_id)
        assert request and request.state == PointsRequestState.EXPIRED
    assert await _notices(db) == []  # nothing to pay: the staff need no word
