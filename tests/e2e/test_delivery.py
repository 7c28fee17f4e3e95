"""Nothing is lost under Telegram's real limits and faults (issue 14's seen defects, each a test).

The Bot API test server keeps Telegram's rules here: 20 new messages a minute into a group,
lengths in UTF-16 units after entity parsing, 429 with `retry_after` per chat, 5xx on demand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from bot.clock import FixedClock
from bot.db.models import CareMessage, OutboxMessage
from bot.telegram_text import utf16_len, visible
from tests.conftest import ADMIN_CHAT, BUSINESS_FILE, make_settings
from tests.e2e.helpers import ask_staff, count, onboard
from tests.telegram_server import Person, TelegramServer


def staff_chat_text(telegram: TelegramServer) -> str:
    """Everything the staff chat shows, as people read it."""
    return "\n".join(visible(c.text) for c in telegram.sent_to(ADMIN_CHAT))


async def until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


# ---- 1. a customer's flood under the group's 20 a minute ------------------------------------------


async def test_a_flood_reaches_staff_whole_coalesced_and_staff_are_still_answered(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(4001, username="anna")
    await onboard(anna)
    posts_before = len(telegram.sent_to(ADMIN_CHAT))
    started = time.monotonic()
    words = [f"слово-{n:03d}" for n in range(200)]
    for word in words[:100]:
        await anna.send(f"{word} 😊 & <b>ещё</b>")
    await olga.send("/find @anna")  # a staff command in the middle of the flood
    for word in words[100:]:
        await anna.send(f"{word} 😊 & <b>ещё</b>")
    card = await olga.next("sendMessage", timeout=60)
    while card.template != "staff_card":  # the answer to /find among the relayed messages
        card = await olga.next("sendMessage", timeout=60)
    await until(lambda: all(w in staff_chat_text(telegram) for w in words), timeout=180)
    elapsed = time.monotonic() - started
    posts = len(telegram.sent_to(ADMIN_CHAT)) - posts_before
    assert elapsed < 180
    assert posts <= 30, f"{posts} posts for 200 messages"
    assert "слово-000 😊 & <b>ещё</b>" in staff_chat_text(telegram)  # as written, inert
    assert not [c for c in telegram.refused if c.error_code != 429 or c.chat_id == ADMIN_CHAT]
    # the customer saw one "we got it" and no error
    answers = [c.text for c in telegram.sent_to(anna.id)][-3:]
    assert [c.template for c in telegram.sent_to(anna.id)].count("care_received") == 1
    assert not any("что-то пошло не так" in t.lower() for t in answers)
    assert await count(carebot.db, CareMessage, CareMessage.direction == "in") == 200


# ---- 2. a 429 on a staff reply ---------------------------------------------------------------


async def test_a_429_on_a_staff_reply_is_waited_out(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(4002)
    await onboard(anna)
    relayed = await ask_staff(anna, olga, "Вы открыты завтра?")
    telegram.throttle(anna.id, retry_after=2)
    asked = time.monotonic()
    await olga.send("Да, с 10 до 20", reply_to=relayed)
    copied = await anna.next(
        "copyMessage", timeout=15
    )  # the first try was refused: people never see those
    assert copied.ok and time.monotonic() - asked >= 2
    assert [
        c.error_code for c in telegram.calls if c.chat_id == anna.id and c.method == "copyMessage"
    ] == [429, None]
    assert copied.message.get("text") == "Да, с 10 до 20"
    assert not telegram.sent_to(olga.id), "nothing goes to a staff member's private chat"
    await olga.quiet()  # and the staff are not told of a failure that did not happen


async def test_a_staff_reply_telegram_refuses_is_reported_under_it(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(4003)
    await onboard(anna)
    relayed = await ask_staff(anna, olga, "Вопрос")
    telegram.scripted = [(400, "Bad Request: chat not found", None)]
    await olga.send("Ответ", reply_to=relayed)
    warning = await olga.reply(timeout=15)
    assert warning.template == "care_failed" and "chat not found" in warning.text  # Telegram's why
    [answer] = [
        m
        for (chat, _), m in telegram.messages.items()
        if chat == ADMIN_CHAT and m.get("text") == "Ответ"
    ]
    assert warning.params["reply_parameters"]["message_id"] == answer["message_id"]
    assert not telegram.sent_to(olga.id)


# ---- 3. 5xx on every third send ------------------------------------------------------------------


async def test_every_third_send_failing_loses_nothing(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    telegram.fail_every = 3
    anna = telegram.user(4004)
    last = await onboard(anna)  # every step answer arrives: no /start again
    assert last.template == "welcome_coupon"
    for n in range(10):
        await anna.send(f"вопрос номер {n}")
    await until(
        lambda: all(f"вопрос номер {n}" in staff_chat_text(telegram) for n in range(10)), timeout=60
    )
    relayed = [c for c in telegram.sent_to(ADMIN_CHAT) if "вопрос номер" in c.text][-1]
    for n in range(3):
        await olga.send(f"ответ {n}", reply_to=relayed)
    await until(
        lambda: (
            [c.message.get("text") for c in telegram.sent_to(anna.id) if c.method == "copyMessage"]
            == ["ответ 0", "ответ 1", "ответ 2"]
        ),
        timeout=60,
    )
    assert telegram.refused, "the server did fail every third send"
    assert not any(c.chat_id == anna.id and "пошло не так" in c.text for c in telegram.calls)


# ---- 5. lengths in UTF-16 units --------------------------------------------------------------------


async def test_long_messages_reach_staff_whole(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(4005, first_name=" ".join(["Анна-Мария-Луиза"] * 3))
    await onboard(anna)
    emoji = ("Привет 👋🏽 мир 🌍 " * 300)[:3910]
    assert utf16_len(emoji) > 4096 - 300  # with the card it is past Telegram's limit
    ampersands = ("a&b " * 400 + "x" * 4096)[:4096]
    await anna.send(emoji)
    await anna.send(ampersands)

    def squeezed(text: str) -> str:  # a long text comes in parts, cut at a space
        return "".join(text.split())

    await until(lambda: squeezed(emoji) in squeezed(staff_chat_text(telegram)), timeout=30)
    await until(lambda: squeezed(ampersands) in squeezed(staff_chat_text(telegram)), timeout=30)
    assert not [c for c in telegram.refused if c.error_code == 400]


# ---- 4, 7, 8: the outbox sender ------------------------------------------------------------------


@pytest.fixture
async def app(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> AsyncIterator[App]:
    path = tmp_path / "business.toml"
    path.write_text(BUSINESS_FILE.read_text().replace("enabled = true", "enabled = false"))
    instance = await App.create(
        make_settings(telegram, database_url, business_file=path), clock=clock
    )
    yield instance
    await instance.close()


async def queue(app: App, key: str, chat_id: int, *, customer_id: int | None = None) -> None:
    now = app.clock.now()
    async with app.db.transaction() as repos:
        await repos.outbox.queue(
            key=key,
            kind="service",
            template="forget_cancelled",
            not_before=now,
            not_after=now + timedelta(hours=1),
            customer_id=customer_id,
            chat_id=None if customer_id else chat_id,
            now=now,
        )


async def row(app: App, key: str) -> OutboxMessage:
    async with app.db.transaction() as repos:
        return (
            await repos.session.scalars(select(OutboxMessage).where(OutboxMessage.key == key))
        ).one()


async def test_a_429_from_the_staff_group_holds_back_no_customer(
    app: App, telegram: TelegramServer
) -> None:
    """Staff notices and customers' messages due together; the group answers 429 (retry after
    5 s): the customers' hundred go at the full rate (before: 25 notices held 100 customer
    messages back from 3.7 s to 40.5 s), the group's notices after its pause."""
    for n in range(3):
        await queue(app, f"staff:{n}", ADMIN_CHAT)
    for n in range(100):
        await queue(app, f"customer:{n}", 10_000 + n)
    telegram.throttle(ADMIN_CHAT, retry_after=5, times=3)
    started = time.monotonic()
    tally = await app.sender.drain()
    customers = [c.at for c in telegram.calls if c.ok and c.chat_id and c.chat_id >= 10_000]
    assert len(customers) == 100 and max(customers) - started < 4.5, (
        "customers waited behind the group's 429"
    )
    assert tally.throttled == 3 and not telegram.sent_to(ADMIN_CHAT)
    assert {(await row(app, f"staff:{n}")).state for n in range(3)} == {
        "pending"
    }  # rescheduled, not lost
    app.clock.advance(timedelta(seconds=5))  # type: ignore[attr-defined]
    assert (await app.sender.drain()).sent == 3
    assert (
        min(c.at for c in telegram.sent_to(ADMIN_CHAT)) - started >= 5
    )  # after the pause Telegram asked for
    assert not [c for c in telegram.refused if c.chat_id != ADMIN_CHAT]


async def test_a_customer_who_unblocked_the_bot_gets_messages_again(
    app: App, telegram: TelegramServer
) -> None:
    view = await app.customers.consent(7, name="Анна", username=None, language="ru", source=None)
    telegram.blocked.add(7)
    await queue(app, "first", 7, customer_id=view.id)
    assert (await app.sender.drain()).blocked == 1
    telegram.blocked.discard(7)
    await app.customers.mark_reachable(7)  # they wrote to the bot again
    await queue(app, "second", 7, customer_id=view.id)
    assert (await app.sender.drain()).sent == 1
    assert (await row(app, "second")).state == "sent"


@pytest.mark.parametrize(
    ("code", "description"),
    [
        (401, "Unauthorized"),
        (409, "Conflict: terminated by other getUpdates request"),
        (400, "Bad Request: chat not found"),
    ],
)
async def test_errors_that_never_pass_are_not_retried(
    app: App, telegram: TelegramServer, code: int, description: str
) -> None:
    await queue(app, "notice", 10_001)
    telegram.scripted = [(code, description, None)]
    tally = await app.sender.drain()
    notice = await row(app, "notice")
    assert (tally.failed, tally.retried, notice.state, notice.attempts) == (1, 0, "failed", 1)
    assert notice.last_error and notice.last_error.startswith(str(code))
    assert len([c for c in telegram.calls if c.chat_id == 10_001]) == 1


async def test_a_staff_command_that_fails_is_answered_in_the_group(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    """Before: the "something went wrong" went to the staff member's private chat (a 403 when
    they never started the bot). Now it is answered where it was asked, and logged with context."""

    async def broken(query: str) -> list:  # type: ignore[type-arg]
        raise RuntimeError("the database went away")

    carebot.app.staff.find = broken  # type: ignore[method-assign]
    await olga.send("/find 4567")
    answer = await olga.reply(timeout=15)
    assert answer.template == "error"
    assert not telegram.sent_to(olga.id)


async def test_what_telegram_will_not_copy_still_reaches_staff(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(4006)
    await onboard(anna)
    from tests.telegram_server import MEDIA

    # A photo the customer deletes before the bot copies it: Telegram answers 400.
    message = anna._message(photo=MEDIA["photo"], caption="вот такой цвет хочу")
    del telegram.messages[(anna.id, message["message_id"])]
    await telegram.push({"message": message})
    note = await olga.reply(timeout=15)
    assert note.template == "care_not_copied"
    assert "вот такой цвет хочу" in note.text and "Анна" in note.text
