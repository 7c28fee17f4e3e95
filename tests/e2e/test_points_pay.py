"""Paying with points end to end: staff tap "pay with points" under /sale's answer (or write
`/sale … points:N`), the customer confirms or declines in their chat, staff hear of it, and
/card shows the balance; a forged or second tap changes nothing."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import customer_of, onboard, reply_of
from tests.harness import InProcessBot
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process


async def _customer_with_points(
    bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> tuple[Person, int]:
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna)
    customer = await customer_of(bot.db, 5001)
    assert customer
    await olga.send(f"/points #{customer.id} +500 подарок")
    await olga.reply()
    return anna, customer.id


async def test_staff_ask_the_customer_confirms_and_card_shows_the_new_balance(
    cashback_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna, customer_id = await _customer_with_points(cashback_bot, telegram, olga)
    await olga.send(f"/sale #{customer_id} 2000 маникюр")
    sold = await olga.reply()
    assert "Баллов у клиента: 600." in sold.text
    await anna.send("/card")
    assert "Баллов: <b>600</b>" in (await anna.reply()).text

    await olga.press(sold, "Оплатить баллами")
    asked = await reply_of(olga, "points_pay_asked")
    assert "оплатить баллами 600 из 2\u00a0000" in asked.text

    request = await reply_of(anna, "points_request")
    assert "Списать <b>600</b> баллов" in request.text and "без вашего согласия" in request.text
    await anna.send("/card")  # asked, not spent: never shown as spent
    assert "Баллов: <b>600</b>" in (await anna.reply()).text

    await anna.press(request, "Списать баллы")
    done = await anna.next("editMessageText")
    assert "списано 600 баллов" in done.text and "Осталось баллов: 0" in done.text
    notice = await reply_of(olga, "points_answered_staff")
    assert f"Клиент #{customer_id} подтвердил(а)" in notice.text
    assert "к оплате 1\u00a0400" in notice.text
    await anna.send("/card")
    assert "Баллов: <b>0</b>" in (await anna.reply()).text

    await anna.press_data(request, request.button("Списать баллы")["callback_data"])  # again
    answer = await anna.next("answerCallbackQuery")
    assert answer.params.get("show_alert") and "уже ответили" in answer.params["text"]
    await olga.press(sold, "Оплатить баллами")  # the sale is paid already
    assert "уже есть запрос" in (await olga.reply()).text


async def test_the_customer_declines_and_nothing_is_spent(
    cashback_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna, customer_id = await _customer_with_points(cashback_bot, telegram, olga)
    await olga.send(f"/sale #{customer_id} 1000 points:700")
    await reply_of(olga, "staff_sale_done")
    refused = await olga.reply()
    assert refused.template == "points_pay_refused" and "не больше 300" in refused.text
    await olga.send(f"/sale #{customer_id} 1000 points:100")
    await reply_of(olga, "points_pay_asked")
    request = await reply_of(anna, "points_request")
    await anna.press(request, "Не списывать")
    declined = await anna.next("editMessageText")
    assert "баллы не списаны" in declined.text and "Баллов у вас: 600" in declined.text
    notice = await reply_of(olga, "points_answered_staff")
    assert "отказался(ась)" in notice.text
    await anna.send("/card")
    assert "Баллов: <b>600</b>" in (await anna.reply()).text


async def test_a_forged_or_someone_elses_request_changes_nothing(
    cashback_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna, customer_id = await _customer_with_points(cashback_bot, telegram, olga)
    boris = telegram.user(5002, "Борис", username="boris")
    await onboard(boris)
    await olga.send(f"/sale #{customer_id} 2000 points:100")
    await reply_of(olga, "points_pay_asked")
    request = await reply_of(anna, "points_request")
    data = request.button("Списать баллы")["callback_data"]
    await boris.send("/card")
    card = await boris.reply()
    for forged in (data, "ppa:yes:999999", "ppa:yes:-1", "ppa:maybe:1"):
        await boris.press_data(card, forged)
        answer = await boris.next("answerCallbackQuery")
        assert answer.params.get("show_alert") or "неактуальна" in str(answer.params), forged
    await anna.send("/card")
    assert "Баллов: <b>600</b>" in (await anna.reply()).text
    # staff's button for a sale that does not exist
    await olga.send(f"/sale #{customer_id} 100")
    sold = await reply_of(olga, "staff_sale_done")
    await olga.press_data(sold, "ppay:999999")
    assert "не найдена" in (await olga.reply()).text
