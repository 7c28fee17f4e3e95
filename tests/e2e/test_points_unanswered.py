"""A request to pay with points nobody answered, end to end: staff ask under /sale's answer, the
customer lets it expire, the planner's tick tells the admin chat once who asked and that the
sale stays at its full amount; the customer's late tap is told the time is over."""

from __future__ import annotations

import pytest

from bot.clock import FixedClock
from bot.services.points_pay import REQUEST_TTL
from tests.e2e.helpers import reply_of
from tests.e2e.test_points_pay import _customer_with_points
from tests.harness import InProcessBot
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process


async def test_an_unanswered_request_is_reported_to_the_staff_once(
    cashback_bot: InProcessBot,
    telegram: TelegramServer,
    olga: Person,
    clock: FixedClock,
) -> None:
    anna, customer_id = await _customer_with_points(cashback_bot, telegram, olga)
    await olga.send(f"/sale #{customer_id} 2000 маникюр")
    sold = await olga.reply()
    await olga.press(sold, "Оплатить баллами")
    await reply_of(olga, "points_pay_asked")
    request = await reply_of(anna, "points_request")

    clock.advance(REQUEST_TTL)
    assert cashback_bot.app is not None
    assert (await cashback_bot.app.tick())["points_unanswered"] == 1
    notice = await reply_of(olga, "points_answered_staff")
    assert f"Клиент #{customer_id} не ответил(а)" in notice.text
    assert "к оплате 2\u00a0000" in notice.text and "Ольга" in notice.text
    assert (await cashback_bot.app.tick())["points_unanswered"] == 0

    await anna.press(request, "Списать баллы")  # too late now
    late = await anna.next("editMessageText")
    assert "Время на ответ вышло: баллы не списаны." in late.text
    await anna.send("/card")
    assert "Баллов: <b>600</b>" in (await reply_of(anna, "loyalty_card")).text  # nothing spent
    await olga.quiet()  # no second notice
