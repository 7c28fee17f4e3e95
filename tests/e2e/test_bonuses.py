"""The welcome and birthday bonuses end to end: a newcomer's phone brings the welcome points
with a receipt of their own, /card shows them, and joining again after /forget brings none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FixedClock
from tests.e2e.helpers import answer_offers, bot_on, business_plus, consent, onboard, reply_of, tap
from tests.harness import InProcessBot
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process

BONUSES = """
[loyalty.cashback]
enabled = true
percent = 5
expire_months = 12
welcome_bonus = 150
"""


@pytest.fixture
async def bonus_bot(
    tmp_path: Path, telegram: TelegramServer, database_url: str, clock: FixedClock
) -> AsyncIterator[InProcessBot]:
    async with bot_on(telegram, database_url, clock, business_plus(tmp_path, BONUSES)) as running:
        yield running


async def _card(person: Person) -> str:
    await person.send("/card")
    return (await reply_of(person, "loyalty_card")).text


async def test_the_welcome_bonus_comes_with_the_phone_once(
    bonus_bot: InProcessBot, telegram: TelegramServer
) -> None:
    anna = telegram.user(5101, "Анна", username="anna")
    await consent(anna)
    await anna.send_contact("79161230011")
    # the answer and the next question, and the receipt through the outbox, in either order
    got = {message.template: message for message in [await anna.reply() for _ in range(3)]}
    assert set(got) == {"phone_saved", "ask_birthday", "welcome_bonus"}
    assert "начислено 150 приветственных баллов" in got["welcome_bonus"].text
    await anna.send("14.03.1990")
    await tap(anna, await anna.reply(), "Анна")
    await answer_offers(anna, await anna.reply(), False)  # a receipt needs no offers consent
    assert "Баллов: <b>150</b>" in await _card(anna)

    await anna.send("/forget")
    await tap(anna, await anna.reply(), "Да, удалить", "editMessageText")
    await onboard(anna, phone="79161230011")  # joining again: no second bonus, no receipt
    assert "Баллов: <b>0</b>" in await _card(anna)
    await anna.quiet()
