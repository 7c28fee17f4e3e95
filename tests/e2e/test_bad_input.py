"""Input that is out of range, forged or odd gets a clear, polite answer (or silence when there
is nobody to answer), never an error: times and dates no calendar has, messages without an
author, names with joiners, a sale of a service the master does not do."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import Booking, DayOff, Purchase
from handlers.callbacks import SaleCallback, SaleStep
from tests.conftest import ADMIN_CHAT
from tests.e2e.helpers import count, customer_of, onboard, to_birthday
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.ERROR, logger="carebot")
    return caplog


def failed(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "update failed" in r.getMessage()]


@pytest.mark.parametrize("minutes", ["99999999999999", "-99999999999999", "9999999999", "-1"])
@pytest.mark.parametrize("action", ["pick", "book", "offer"])
async def test_a_forged_slot_time_out_of_range_is_a_stale_button(
    carebot, telegram: TelegramServer, errors: pytest.LogCaptureFixture, action: str, minutes: str
) -> None:
    anna = telegram.user(5001)
    await onboard(anna)
    await anna.send("/book")
    menu = await anna.reply()
    await anna.press_data(menu, f"slot:{action}:manicure:anna:{minutes}:0")
    assert (await anna.next("answerCallbackQuery")).template == "stale_button"
    await anna.quiet()
    assert await count(carebot.db, Booking) == 0
    assert not failed(errors)


BIG = "9" * 25


@pytest.mark.parametrize(
    "data",
    [
        f"booking:cancel:{BIG}",
        "booking:confirm:3000000000",
        f"coupon:{BIG}",
        f"survey:{BIG}:5",
        f"survey:1:{BIG}",
        f"survey_skip:{BIG}",
        f"bk:times:manicure:anna:{BIG}:0",
        f"bk:days:manicure:anna:0:{BIG}",
        f"cycle:later:manicure:{BIG}",
        f"slot:book:manicure:anna:29000000:{BIG}",
    ],
)
async def test_forged_numbers_in_a_customers_buttons_are_stale(
    carebot, telegram: TelegramServer, errors: pytest.LogCaptureFixture, data: str
) -> None:
    anna = telegram.user(5001)
    await onboard(anna)
    await anna.send("/book")
    menu = await anna.reply()
    await anna.press_data(menu, data)
    assert (await anna.next("answerCallbackQuery")).template == "stale_button"
    await anna.quiet()
    assert not failed(errors)


@pytest.mark.parametrize(
    "data",
    [
        f"card:history:{BIG}",
        f"card:sale:{BIG}",
        f"rdm:ABCD2345:{BIG}",
        f"complaint:resolve:{BIG}",
        f"bc:cancel:{BIG}",
        "bc:report:3000000000",
    ],
)
async def test_forged_numbers_in_staff_buttons_are_stale(
    carebot, telegram: TelegramServer, olga: Person, errors: pytest.LogCaptureFixture, data: str
) -> None:
    await olga.send("/find 4567")
    answer = await olga.reply()
    await olga.press_data(answer, data)
    assert (await olga.next("answerCallbackQuery")).template == "stale_button"
    await olga.quiet()
    assert not failed(errors)


@pytest.mark.parametrize("typed", ["14.03.0000", "0000-03-14", "14 марта 0000", "29.02.0000"])
async def test_a_birthday_in_year_zero_is_a_typo(
    carebot, telegram: TelegramServer, errors: pytest.LogCaptureFixture, typed: str
) -> None:
    anna = telegram.user(5001)
    await to_birthday(anna)
    await anna.send(typed)
    answer = await anna.reply()
    assert answer.template == "ask_birthday", answer.text  # asked again
    assert "в годе опечатка" in answer.text, answer.text  # and told what was wrong
    assert not failed(errors)
    await anna.send("14.03.1990")  # and the step goes on
    ask_name = await anna.reply()
    assert ask_name.template == "ask_name" and "14.03.1990" in ask_name.text


async def test_a_day_off_too_far_ahead_is_explained(
    carebot, telegram: TelegramServer, olga: Person, errors: pytest.LogCaptureFixture
) -> None:
    for typed in ("31.12.9999", "9999-12-31", "01.01.0001", "31.12.2099"):
        await olga.send(f"/dayoff Анна {typed}")
        answer = await olga.reply()
        assert answer.template == "dayoff_usage", (typed, answer.text)
        assert "не дальше чем на 2 года вперёд" in answer.text, (typed, answer.text)  # why
    await olga.send("/dayoff Анна 31.12")
    dayoff = await olga.reply()
    assert dayoff.template == "dayoff_set" and "Анна" in dayoff.text
    assert await count(carebot.db, DayOff) == 1
    assert not failed(errors)


@pytest.mark.parametrize("where", ["private", "admin_chat", "other_group"])
@pytest.mark.parametrize(
    "text", ["/start", "/sale #1 500", "/dayoff 31.12", "/book", "/today", "Здравствуйте"]
)
async def test_a_message_without_an_author_is_ignored(
    carebot,
    telegram: TelegramServer,
    olga: Person,
    errors: pytest.LogCaptureFixture,
    where: str,
    text: str,
) -> None:
    chat: dict[str, Any] = {
        "private": {"id": 5001, "type": "private", "first_name": "Анна"},
        "admin_chat": telegram._chat(ADMIN_CHAT),
        "other_group": telegram._chat(-1005555),
    }[where]
    message: dict[str, Any] = {
        "message_id": telegram.new_message_id(),
        "date": 0,
        "chat": chat,
        "text": text,
        "sender_chat": {"id": -1007770001, "type": "channel", "title": "Канал"},
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    await telegram.push({"message": message})
    await olga.quiet()
    assert [c for c in telegram.calls if c.method == "sendMessage"] == []
    assert not failed(errors)


@pytest.mark.parametrize(
    "name", ["مهسا\u200cسادات", "\u200cمهسا", "Анна 👩\u200d👩\u200d👧", "Zoë ❤\ufe0f"]
)
async def test_names_with_joiners_are_names(carebot, telegram: TelegramServer, name: str) -> None:
    anna = telegram.user(5001)
    await to_birthday(anna)
    await anna.send("14.03.1990")
    await anna.reply()  # "what is your name?"
    await anna.send(name)
    welcome = await anna.reply()
    assert "Имя должно быть" not in welcome.text
    customer = await customer_of(carebot.db, 5001)
    assert customer is not None and customer.name == name.strip("\u200c")


@pytest.mark.parametrize(
    "name", ["Анна\u202eмаршал", "Анна\u2066x\u2069", "Ан\u00adна", "Анна\u200b", "\u2060Анна"]
)
async def test_names_with_spoofing_characters_are_refused(
    carebot, telegram: TelegramServer, name: str
) -> None:
    anna = telegram.user(5001)
    await to_birthday(anna)
    await anna.send("14.03.1990")
    await anna.reply()
    await anna.send(name)
    again = await anna.reply()
    assert again.template == "ask_name"  # asked again
    assert "Имя должно быть" in again.text  # and told why


async def _customer(telegram: TelegramServer) -> Person:
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna)
    return anna


async def test_a_sale_of_a_service_the_master_does_not_do_is_refused(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await _customer(telegram)
    await olga.send("/sale #1 2800 Педикюр Анна")
    answer = await olga.reply()
    assert answer.template == "staff_usage", answer.text
    assert "Анна не делает «Педикюр». Эту услугу делает: Ольга." in answer.text, answer.text
    assert "/sale" in answer.text  # how to write it right
    assert await count(carebot.db, Purchase) == 0
    await olga.send("/sale #1 2800 Педикюр Ольга")
    assert (await olga.reply()).template == "staff_sale_done"


async def test_a_forged_master_button_on_the_card_sale_is_refused(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await _customer(telegram)
    await olga.send("/find #1")
    card = await olga.reply()
    await olga.press(card, "Продажа")
    prompt = await olga.reply()
    await olga.send("2800", reply_to=prompt)
    services = await olga.reply()
    await olga.press(services, "Педикюр")
    masters = await olga.next("editMessageText")
    assert masters.button_texts[0] == "Ольга" and masters.labels[1:] == [
        "staff_skip",
        "staff_cancel",
    ]
    await olga.press_data(masters, SaleCallback(step=SaleStep.MASTER, value="anna").pack())
    refused = await olga.next("editMessageText")
    assert refused.template == "staff_usage" and "Анна не делает «Педикюр»" in refused.text
    async with carebot.db.transaction() as repos:
        assert list(await repos.session.scalars(select(Purchase))) == []
