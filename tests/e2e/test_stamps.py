"""The stamp card end to end: staff record sales in the admin chat and see the card's progress
in their answer; the customer sees it in /card; the sale that completes the card sends the
customer a receipt carrying the reward coupon (in /mycoupons too), and staff redeem it with
/redeem; /mydata holds the card; a sale of a service the card does not count changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FixedClock
from tests.e2e.helpers import bot_on, business_plus, customer_of, onboard, reply_of
from tests.harness import InProcessBot
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process

STAMPS = """
[loyalty.stamps]
enabled = true
every = 3
reward = "free"
services = ["manicure"]
expire_months = 12
valid_days = 30
"""


@pytest.fixture
async def stamps_bot(
    tmp_path: Path, telegram: TelegramServer, database_url: str, clock: FixedClock
) -> AsyncIterator[InProcessBot]:
    async with bot_on(telegram, database_url, clock, business_plus(tmp_path, STAMPS)) as running:
        yield running


async def _card(person: Person) -> str:
    await person.send("/card")
    return (await reply_of(person, "stamp_card")).text


async def test_a_customer_completes_the_stamp_card_and_staff_redeem_the_free_visit(
    stamps_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(5001, "Анна <b>", username="anna")
    await onboard(anna)
    customer = await customer_of(stamps_bot.db, 5001)
    assert customer is not None
    card = await _card(anna)
    assert "Карта штампов</b>: 0 из 3 ✧✧✧" in card
    assert (
        "Штамп за каждый визит: Маникюр с покрытием; 3 штампа — и следующий визит бесплатно" in card
    )
    assert "Бонусной программы сейчас нет" not in card  # no points here: the stamps alone

    await olga.send(f"/sale #{customer.id} 2000 маникюр")
    sold = await reply_of(olga, "staff_sale_done")
    assert "Карта штампов: 1 из 3 ✦✧✧." in sold.text
    await olga.send(f"/sale #{customer.id} 2800 педикюр")  # not a service of the card
    assert "Карта штампов: 1 из 3 ✦✧✧." in (await reply_of(olga, "staff_sale_done")).text
    await olga.send(f"/sale #{customer.id} 2000 маникюр")
    assert "Карта штампов: 2 из 3 ✦✦✧." in (await reply_of(olga, "staff_sale_done")).text
    assert "2 из 3 ✦✦✧" in await _card(anna)

    await olga.send(f"/sale #{customer.id} 2000 маникюр")
    done = (await reply_of(olga, "staff_sale_done")).text
    assert "Карта штампов заполнена: купон-награда <code>" in done
    assert "новая карта 0 из 3 ✧✧✧." in done
    code = done.split("<code>")[1].split("</code>")[0]

    receipt = await reply_of(anna, "stamp_reward")
    assert "Анна &lt;b&gt;, ваша карта штампов заполнена: 3 из 3 ✦✦✦" in receipt.text
    assert f"Следующий визит — <b>бесплатно</b>: покажите купон <code>{code}</code>" in receipt.text
    assert receipt.button_texts == ["🎁 Мои купоны"]
    assert "0 из 3 ✧✧✧" in await _card(anna)
    await anna.send("/mycoupons")
    assert f"<code>{code}</code>" in (await reply_of(anna, "my_coupons")).text

    await olga.send(f"/redeem {code}")
    redeemed = await reply_of(olga, "staff_redeem")
    assert f"Купон <code>{code}</code> погашен: скидка 100%" in redeemed.text
    await olga.send(f"/redeem {code}")  # once only
    assert "уже" in (await reply_of(olga, "staff_redeem")).text
    assert sum(1 for call in telegram.sent_to(5001) if call.template == "stamp_reward") == 1

    await olga.send(f"/sale #{customer.id} 2000 маникюр")  # the next card
    assert "Карта штампов: 1 из 3 ✦✧✧." in (await reply_of(olga, "staff_sale_done")).text
    await anna.send("/mydata")
    await reply_of(anna, "mydata")
    document = json.loads((await anna.next("sendDocument")).upload().data)
    stamps = document["stamp_card"]
    assert (stamps["progress"], stamps["stamps"], stamps["of"]) == ("1/3 ✦✧✧", 1, 3)
    assert [line["kind"] for line in stamps["history"]] == ["stamp"] * 3 + ["reward", "stamp"]
    assert stamps["history"][3]["coupon"] == code


async def test_an_english_customer_sees_the_card_in_english(
    stamps_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    john = telegram.user(5002, "John", username="john", language_code="en")
    await onboard(john, phone="+447911123456", birthday="1990-03-14")
    customer = await customer_of(stamps_bot.db, 5002)
    assert customer is not None
    for _ in range(3):
        await olga.send(f"/sale #{customer.id} 2000 маникюр")
        await reply_of(olga, "staff_sale_done")
    receipt = await reply_of(john, "stamp_reward")
    assert "John, your stamp card is complete: 3 of 3 ✦✦✦" in receipt.text
    assert "Your next visit is <b>free</b>" in receipt.text
    card = await _card(john)
    assert "Stamp card</b>: 0 of 3 ✧✧✧" in card
    assert "A stamp for every visit for Маникюр с покрытием" in card


async def test_staff_cancel_the_sale_that_completed_the_card_and_its_unused_reward_goes(
    stamps_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    vera = telegram.user(5003, "Вера", username="vera")
    await onboard(vera, phone="79161230003")
    customer = await customer_of(stamps_bot.db, 5003)
    assert customer is not None
    for _ in range(3):
        await olga.send(f"/sale #{customer.id} 2000 маникюр")
        sold = await reply_of(olga, "staff_sale_done")
    code = sold.text.split("<code>")[1].split("</code>")[0]
    await olga.press(sold, "Отменить продажу")
    asked = await reply_of(olga, "staff_unsale")
    await olga.press(asked, "Да, отменить")
    while (call := await olga.next()).method != "editMessageText":
        pass
    assert "отменена" in call.text
    assert "Карта штампов</b>: 2 из 3 ✦✦✧" in await _card(vera)  # the card as before that sale
    await olga.send(f"/redeem {code}")
    assert "аннулирован" in (await reply_of(olga, "staff_redeem")).text
    await vera.send("/mycoupons")
    assert code not in (await reply_of(vera, "my_coupons")).text

    await olga.send(f"/sale #{customer.id} 2000 маникюр")  # the third stamp again: a new reward
    again = (await reply_of(olga, "staff_sale_done")).text
    assert "Карта штампов заполнена" in again and code not in again
