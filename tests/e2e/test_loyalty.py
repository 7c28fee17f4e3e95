"""Cashback points end to end: a sale shows staff the customer's balance, the customer sees it
with its expiry in /card, staff correct it with a reason (and only in the admin chat)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.clock import FixedClock
from tests.e2e.helpers import customer_of, onboard, reply_of
from tests.harness import InProcessBot
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process


async def test_a_sale_shows_the_balance_and_the_customer_sees_it(
    cashback_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna)
    customer = await customer_of(cashback_bot.db, 5001)
    assert customer
    await anna.send("/card")
    assert "Баллов: <b>0</b>" in (await anna.reply()).text

    await olga.send(f"/sale #{customer.id} 2000 маникюр")
    sold = await olga.reply()
    assert "Продажа записана" in sold.text and "Баллов у клиента: 100." in sold.text
    await olga.send(f"/sale #{customer.id} 1000")
    assert "Баллов у клиента: 150." in (await olga.reply()).text

    await anna.send("/card")
    card = (await anna.reply()).text
    assert "Баллов: <b>150</b>" in card
    assert "150 баллов сгорят 23.11.2027" in card and "5\u00a0%" in card


async def test_staff_correct_points_with_a_reason_only(
    cashback_bot: InProcessBot, telegram: TelegramServer, olga: Person, clock: FixedClock
) -> None:
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna)
    customer = await customer_of(cashback_bot.db, 5001)
    assert customer
    await olga.send(f"/points #{customer.id} +40")
    assert "Нужна причина" in (await olga.reply()).text
    await olga.send(f"/points #{customer.id} сорок")
    assert "Как поправить баллы" in (await olga.reply()).text
    await olga.send(f"/points #{customer.id} -10 <b>ошибка</b>")
    assert "Нельзя списать 10: у клиента 0 баллов." in (await olga.reply()).text
    await olga.send(f"/points #{customer.id} +40 подарок <b>за</b> отзыв")
    done = (await olga.reply()).text
    assert "Баллы начислены: Анна" in done and "+40" in done
    assert "подарок &lt;b&gt;за&lt;/b&gt; отзыв" in done and "Баллов теперь: 40." in done
    await olga.send("/points #999 +5 кто это")
    assert "не найден" in (await olga.reply()).text
    await olga.send(f"/find #{customer.id}")
    staff_card = await olga.reply()
    await olga.press(staff_card, "История")
    history = (await olga.reply()).text
    assert "· баллы +40: подарок &lt;b&gt;за&lt;/b&gt; отзыв" in history

    await anna.send(f"/points #{customer.id} +1000 сама себе")
    assert "для сотрудников" in (await anna.reply()).text
    clock.advance(timedelta(days=1))
    await anna.send("/card")
    card = (await anna.reply()).text
    assert "Баллов: <b>40</b>" in card and "сгор" not in card  # a correction never expires


async def test_points_expire_with_the_planners_tick(
    cashback_bot: InProcessBot, telegram: TelegramServer, olga: Person, clock: FixedClock
) -> None:
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna)
    customer = await customer_of(cashback_bot.db, 5001)
    assert customer
    await olga.send(f"/sale #{customer.id} 2000")
    assert "Баллов у клиента: 100." in (await olga.reply()).text
    clock.advance(timedelta(days=366))
    assert cashback_bot.app is not None
    assert (await cashback_bot.app.tick())["loyalty_expiry"] == 1
    assert (await cashback_bot.app.tick())["loyalty_expiry"] == 0
    await anna.send("/card")
    assert "Баллов: <b>0</b>" in (await anna.reply()).text
    await olga.send(f"/sale #{customer.id} 1000")
    assert "Баллов у клиента: 50." in (await olga.reply()).text


async def test_a_reminder_before_points_expire_says_what_is_left(
    cashback_bot: InProcessBot, telegram: TelegramServer, olga: Person, clock: FixedClock
) -> None:
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna)  # agrees to offers
    customer = await customer_of(cashback_bot.db, 5001)
    assert customer and cashback_bot.app is not None
    await olga.send(f"/sale #{customer.id} 2000")
    await olga.reply()
    await olga.send(f"/points #{customer.id} -30 потрачено на кофе")
    await olga.reply()
    clock.advance(timedelta(days=365 - 7))  # a week before the 100 points expire
    planned = await cashback_bot.app.tick()
    assert planned["loyalty_reminders"] == 1
    assert (await cashback_bot.app.tick())["loyalty_reminders"] == 0  # once per accrual
    message = await reply_of(anna, "points_expiring", tries=5)
    assert "Анна, у вас 70 баллов, и 23.11.2027 они сгорят" in message.text
