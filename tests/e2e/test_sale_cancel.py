"""Cancelling a mistaken sale end to end: staff tap "Cancel sale" under /sale's answer (or write
`/unsale <number>`) and confirm; the cashback goes, points paid for the sale come back, the
customer gets a receipt and /card shows it; a second, stale or forged tap, someone else's, or a
bad command changes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN_CHAT
from tests.e2e.helpers import customer_of, onboard, reply_of
from tests.harness import InProcessBot
from tests.telegram_server import Call, Person, TelegramServer

pytestmark = pytest.mark.in_process


@pytest.fixture
def ira(telegram: TelegramServer) -> Person:
    return telegram.staff(9002, "Ира", ADMIN_CHAT, username="ira_admin")


async def _anna(bot: InProcessBot, telegram: TelegramServer) -> tuple[Person, int]:
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna)
    customer = await customer_of(bot.db, 5001)
    assert customer
    return anna, customer.id


async def _card(person: Person) -> str:
    await person.send("/card")
    return (await person.reply()).text


async def _answer(person: Person) -> Call:
    """The answer to this person's press (in the admin chat, the chat's earlier messages are in
    their view too: skipped)."""
    while (call := await person.next()).method != "answerCallbackQuery":
        pass
    return call


def _number(sold: Call) -> int:
    """The sale's number, as its answer shows it."""
    return int(sold.text.split("Номер продажи: ")[1].split(".")[0])


async def test_staff_cancel_with_the_button_the_cashback_goes_and_the_customer_is_told(
    cashback_bot: InProcessBot, telegram: TelegramServer, olga: Person, ira: Person
) -> None:
    anna, customer_id = await _anna(cashback_bot, telegram)
    await olga.send(f"/sale #{customer_id} 2000 маникюр")
    sold = await olga.reply()
    number = _number(sold)
    assert "Баллов у клиента: 100." in sold.text
    assert "Баллов: <b>100</b>" in await _card(anna)

    await olga.press(sold, "Отменить продажу")
    asked = await reply_of(olga, "staff_unsale")
    assert f"Отменить продажу №{number}: Анна (#{customer_id})" in asked.text
    assert "2\u00a0000" in asked.text and "Маникюр с покрытием" in asked.text
    await olga.press(asked, "Да, отменить")
    done = await olga.next("editMessageText")
    assert f"Продажа №{number}" in done.text and "отменена. Отменил(а): Ольга" in done.text
    assert "Списан кешбэк: 100 баллов." in done.text and "Баллов у клиента теперь: 0." in done.text

    receipt = await reply_of(anna, "sale_cancelled")
    assert "Анна, покупка на 2\u00a0000" in receipt.text and "отменена" in receipt.text
    assert "Кешбэк за неё списан: 100 баллов." in receipt.text
    assert "Баллов у вас: 0" in receipt.text
    card = await _card(anna)
    assert "Баллов: <b>0</b>" in card

    # a second tap on the same confirmation (forged: its buttons are gone), then another staff
    # member's tap on "Cancel sale": answered, nothing changes
    await ira.press_data(asked, asked.button("Да, отменить")["callback_data"])
    again = await _answer(ira)
    assert again.params.get("show_alert") and "уже отменена (Ольга" in again.params["text"]
    await ira.press(sold, "Отменить продажу")
    again = await _answer(ira)
    assert again.params.get("show_alert") and "уже отменена" in again.params["text"]
    await olga.send(f"/unsale {number}")
    assert "уже отменена: Ольга" in (await olga.reply()).text
    await olga.send(f"/find #{customer_id}")
    assert "Визитов: 0 ·" in (await olga.reply()).text  # the sale no longer counts
    await anna.quiet()
    assert "Баллов: <b>0</b>" in await _card(anna)


async def test_a_sale_paid_partly_with_points_then_cancelled_gives_the_points_back(
    cashback_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna, customer_id = await _anna(cashback_bot, telegram)
    await olga.send(f"/points #{customer_id} +500 подарок")
    await olga.reply()
    await olga.send(f"/sale #{customer_id} 2000 points:600")  # +100 cashback first
    sold = await reply_of(olga, "staff_sale_done")
    request = await reply_of(anna, "points_request")
    await anna.press(request, "Списать баллы")
    await anna.next("editMessageText")
    await reply_of(olga, "points_answered_staff")
    assert "Баллов: <b>0</b>" in await _card(anna)

    await olga.send(f"/unsale #{_number(sold)}")
    asked = await reply_of(olga, "staff_unsale")
    await olga.press(asked, "Да, отменить")
    done = await olga.next("editMessageText")
    assert "Клиенту вернули 600 баллов" in done.text and "Списан кешбэк: 100" in done.text
    assert "Баллов у клиента теперь: 500." in done.text

    receipt = await reply_of(anna, "sale_cancelled")
    assert "Мы вернули вам 600 баллов" in receipt.text and "Баллов у вас: 500" in receipt.text
    assert "Баллов: <b>500</b>" in await _card(anna)


async def test_keep_forged_stale_and_bad_commands_change_nothing(
    cashback_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna, customer_id = await _anna(cashback_bot, telegram)
    await olga.send(f"/sale #{customer_id} 2000")
    sold = await olga.reply()
    number = _number(sold)

    await olga.press(sold, "Отменить продажу")
    asked = await reply_of(olga, "staff_unsale")
    await olga.press(asked, "Нет, оставить")
    kept = await olga.next("editMessageText")
    assert f"Продажа №{number} остаётся как есть." in kept.text

    for forged in ("unsale:yes:999999", "unsale:ask:999999"):
        await olga.press_data(sold, forged)
        answer = await olga.next("answerCallbackQuery")
        assert answer.params.get("show_alert") and "Такой продажи нет" in answer.params["text"]
    for forged in ("unsale:maybe:1", "unsale:yes:-1", "unsale:yes:abc"):
        await olga.press_data(sold, forged)
        answer = await olga.next("answerCallbackQuery")
        assert "неактуальна" in str(answer.params), forged

    await olga.send("/unsale")
    assert "Как отменить продажу" in (await olga.reply()).text
    await olga.send("/unsale abc")
    assert "Как отменить продажу" in (await olga.reply()).text
    await olga.send("/unsale 999999")
    assert "Продажа №999999 не найдена" in (await olga.reply()).text

    # the customer: the command is for staff, a forged button from their chat does nothing
    await anna.send(f"/unsale {number}")
    assert (await anna.reply()).template == "staff_only"
    await anna.send("/card")
    shown = await anna.reply()
    await anna.press_data(shown, f"unsale:yes:{number}")
    await anna.next("answerCallbackQuery")

    assert "Баллов: <b>100</b>" in await _card(anna)
    await olga.send(f"/unsale {number}")
    assert "Отменить продажу" in (await olga.reply()).text  # still there to cancel
