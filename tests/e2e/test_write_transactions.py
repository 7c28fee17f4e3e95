"""Write transactions per customer message and while idle, pinned (counts, not timings): on SQLite
each one waits for the one writer, so a read that took the write lock, or a handler that writes
three times, is what made 200 customers at once wait seconds (issue 15; bench/transactions.py
prints them all, bench/updates.py the speed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.conftest import ADMIN_CHAT, RunningBot
from tests.e2e.helpers import onboard
from tests.telegram_server import Person, TelegramServer
from tests.transactions import UPDATE, TransactionCounter


@pytest.fixture
async def counter(carebot: RunningBot) -> AsyncIterator[TransactionCounter]:
    counter = TransactionCounter(carebot.db.engine)
    yield counter
    counter.close()


async def handled(carebot: RunningBot, telegram: TelegramServer, update_id: int) -> None:
    """The bot took this update and every update it took is handled (its handler returned)."""
    assert carebot.app is not None
    deadline = time.monotonic() + 10

    def taken() -> bool:  # the bot asked for the updates after it: its handling has begun
        return telegram.delivered >= update_id and all(
            u["update_id"] > update_id for u in telegram._updates
        )

    while not taken() or carebot.app.dp._handle_update_tasks:
        assert time.monotonic() < deadline, "the update was not handled in 10 s"
        await asyncio.sleep(0.01)


async def writes_of(
    carebot: RunningBot,
    telegram: TelegramServer,
    counter: TransactionCounter,
    person: Person,
    text: str,
) -> int:
    """The write transactions made while handling this one message."""
    await handled(carebot, telegram, 0)  # the ones before are over
    counter.reset()
    await handled(carebot, telegram, await person.send(text))
    return counter.writes[UPDATE]


async def test_write_transactions_per_customer_message(
    carebot: RunningBot, telegram: TelegramServer, counter: TransactionCounter
) -> None:
    anna = telegram.user(6001)
    counter.reset()
    # A newcomer's /start: the start counted (onboarding_starts) and the conversation state
    # (state and data together) in one transaction, the state riding along with the count's;
    # the reads of the state and of the customer take no write lock.
    assert await writes_of(carebot, telegram, counter, anna, "/start") == 1
    await anna.reply()
    # Again before consenting: the same start (not counted again), the same state: no write.
    assert await writes_of(carebot, telegram, counter, anna, "/start") == 0
    consent = await anna.reply()
    assert consent.button_texts[0].startswith("✅")
    # The consent tap: the consent and the next step of the conversation, in one transaction.
    await handled(carebot, telegram, 0)
    counter.reset()
    await handled(carebot, telegram, await anna.press(consent, "✅"))
    assert counter.writes[UPDATE] == 1
    await anna.next("editMessageReplyMarkup")
    assert (await anna.next("sendMessage")).template == "ask_phone"
    await onboard(telegram.user(6002))
    olga = telegram.staff(9001, "Ольга", ADMIN_CHAT, username="olga_admin")
    anna = telegram.user(6002)
    assert await writes_of(carebot, telegram, counter, anna, "/profile") == 0
    await anna.reply()
    assert await writes_of(carebot, telegram, counter, anna, "/mycoupons") == 0
    await anna.reply()
    assert (
        await writes_of(carebot, telegram, counter, anna, "/start") == 0
    )  # returning: nothing changes
    await anna.reply()
    # A care-chat message: stored with its relay queued, in one transaction.
    assert await writes_of(carebot, telegram, counter, anna, "а можно перенести на пятницу?") == 1
    await anna.reply()
    await olga.reply()
    # A survey tap: the answer, and the next step of the conversation (a comment is asked
    # for), in one transaction; the question for it is sent once both are stored.
    await olga.send("/sale 4567 2000 маникюр анна")
    await olga.reply()
    carebot.clock.advance(timedelta(hours=3))
    survey = await anna.reply(timeout=15)
    await anna.reply(timeout=15)  # the thank-you offer
    await handled(carebot, telegram, 0)
    counter.reset()
    await handled(carebot, telegram, await anna.press(survey, "5"))
    assert counter.writes[UPDATE] == 1
    await anna.next("editMessageText")
    ask = await anna.reply()
    assert ask.template == "survey_ask_comment"
    # Skipping the comment: the empty comment and the end of the conversation, together.
    await handled(carebot, telegram, 0)
    counter.reset()
    await handled(carebot, telegram, await anna.press(ask, "Пропустить"))
    assert counter.writes[UPDATE] == 1
    await anna.next("editMessageReplyMarkup")
    assert (await anna.reply()).template == "survey_thanks"


async def test_an_idle_bot_writes_nothing(
    carebot: RunningBot, telegram: TelegramServer, counter: TransactionCounter
) -> None:
    """The outbox sender (every second) and the broadcast watcher (every two) only read when
    nothing is due."""
    await telegram.wait_for(lambda: any(c.method == "setMyCommands" for c in telegram.calls))
    assert carebot.app is not None
    # The planners' first run at start-up is over (a busy machine took longer than the half
    # second once waited here).
    await asyncio.wait([carebot.app._first_plan])
    counter.reset()
    await asyncio.sleep(2.5)
    assert sum(counter.writes.values()) == 0, counter.writes
    assert counter.reads["OutboxSender.run"] >= 2  # it did look
