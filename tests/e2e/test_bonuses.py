"""The welcome and birthday bonuses end to end: a newcomer's phone brings the welcome points
with a receipt of their own, /card shows them, and joining again after /forget brings none; the
birthday greeting brings its points once a year and says so, and no greeting brings none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from bot.clock import FixedClock
from bot.db.models import LoyaltyEntry
from bot.services.birthdays import Birthday
from tests.e2e.helpers import (
    answer_offers,
    app_of,
    bot_on,
    business_plus,
    consent,
    forget,
    msk,
    onboard,
    reply_of,
    tap,
)
from tests.harness import InProcessBot
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process

BONUSES = """
[loyalty.cashback]
enabled = true
percent = 5
expire_months = 12
welcome_bonus = 150
birthday_bonus = 500
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

    await forget(anna)
    await onboard(anna, phone="79161230011")  # joining again: no second bonus, no receipt
    assert "Баллов: <b>0</b>" in await _card(anna)
    await anna.quiet()


async def _ledger(app: App, customer_id: int) -> list[tuple[int, str | None]]:
    async with app.db.reading() as repos:
        rows = await repos.session.execute(
            select(LoyaltyEntry.points, LoyaltyEntry.reason)
            .where(LoyaltyEntry.customer_id == customer_id)
            .order_by(LoyaltyEntry.id)
        )
        return [(p, r) for p, r in rows]


async def test_the_birthday_bonus_comes_with_the_greeting_once_a_year(
    tmp_path: Path, telegram: TelegramServer, database_url: str, clock: FixedClock
) -> None:
    async with app_of(telegram, database_url, clock, business_plus(tmp_path, BONUSES)) as app:
        clock.set(msk("2027-03-01T12:00"))
        ids = {}
        for tg, offers in ((7, True), (8, False)):  # Boris said no to offers: no greeting
            view = await app.customers.consent(
                tg, name=f"#{tg}", username=None, language="ru", source=None, offers=offers
            )
            await app.customers.set_phone(tg, f"+7916123456{tg}")
            await app.customers.set_birthday(tg, Birthday(14, 3, 1990))
            await app.customers.finish_onboarding(tg)
            ids[tg] = view.id
        assert await _ledger(app, ids[7]) == [(150, "welcome_bonus")]
        await app.tick()  # the welcome receipts go

        clock.set(msk("2027-03-14T10:30"))
        assert (await app.tick())["birthdays"] == 1
        [greeting] = [
            c
            for c in telegram.calls
            if c.method == "sendMessage" and c.chat_id == 7 and c.template == "birthday_greeting"
        ]
        assert "начислили вам 500 баллов в подарок: на карте теперь 650" in greeting.text
        assert await _ledger(app, ids[7]) == [(150, "welcome_bonus"), (500, "birthday_bonus")]
        assert await _ledger(app, ids[8]) == [(150, "welcome_bonus")]  # no greeting, no bonus
        await app.tick()
        clock.set(msk("2027-03-15T11:00"))  # the catch-up day: nothing twice
        await app.tick()
        assert len(await _ledger(app, ids[7])) == 2

        clock.set(msk("2028-03-14T10:30"))  # a year later: again
        assert (await app.tick())["birthdays"] == 1
        assert [r for _, r in await _ledger(app, ids[7])].count("birthday_bonus") == 2
        assert "birthday_bonus" not in [r for _, r in await _ledger(app, ids[8])]
