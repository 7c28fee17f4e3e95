"""Who is staff when writing (not pressing): a current member of the admin chat, or one of its
anonymous admins; never a non-member, a linked channel's post or a message "as a channel"."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import Coupon, DayOff, MasterInvite, Purchase, StaffAction, StaffNote
from tests.conftest import ADMIN_CHAT
from tests.e2e.helpers import ask_staff, count, coupons_of, customer_of, onboard
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process

ANONYMOUS_ADMIN = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
TELEGRAM_SERVICE = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
CHANNEL = {"id": -1007770001, "type": "channel", "title": "Студия «Ноготки»"}


def outsider(telegram: TelegramServer, user_id: int = 9100, name: str = "Прохожий") -> Person:
    """Someone writing in the admin chat who is not its member (a linked discussion group lets
    non-members comment; someone restricted; a member who just left)."""
    person = telegram.staff(user_id, name, ADMIN_CHAT)
    telegram.members[ADMIN_CHAT].discard(user_id)
    return person


async def push_in_admin_chat(telegram: TelegramServer, text: str, **fields: Any) -> None:
    """A message in the admin chat with any author fields (sender_chat, from, automatic forward)."""
    message: dict[str, Any] = {
        "message_id": telegram.new_message_id(),
        "date": 0,
        "text": text,
        "chat": telegram._chat(ADMIN_CHAT),
        **fields,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    telegram.messages[(ADMIN_CHAT, message["message_id"])] = message
    await telegram.push({"message": message})


async def _anna(telegram: TelegramServer, carebot) -> str:
    await onboard(telegram.user(5001, "Анна", username="anna"))
    customer = await customer_of(carebot.db, 5001)
    assert customer
    return (await coupons_of(carebot.db, customer.id))[0].code


async def _nothing_recorded(carebot) -> None:
    assert await count(carebot.db, Purchase) == 0
    assert await count(carebot.db, StaffNote) == 0
    assert await count(carebot.db, Coupon, Coupon.redeemed_at.is_not(None)) == 0
    assert await count(carebot.db, DayOff) == 0
    assert await count(carebot.db, MasterInvite) == 0
    assert await count(carebot.db, StaffAction) == 0


async def test_a_non_member_in_the_admin_chat_is_told_it_is_for_staff_and_nothing_changes(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    code = await _anna(telegram, carebot)
    stranger = outsider(telegram)
    for command in (
        "/sale #1 500",
        "/note #1 ворует",
        f"/redeem {code}",
        "/find 4567",
        "/dayoff Анна 25.11",
        "/invite_master Анна",
        "/today",
        "/complaints",
        "/csat",
        "/broadcast",
        "/sleeping",
    ):
        await stranger.send(command)
        answer = await stranger.reply()
        assert answer.template == "staff_only", (command, answer.text)
        assert "администраторов" not in answer.text  # in the admin chat: not "use the admin chat"
        assert answer.params.get("reply_parameters"), (
            command
        )  # a reply, so the group sees whom it answers
    await stranger.quiet()  # no card, no wizard, no schedule reached the chat
    await _nothing_recorded(carebot)


async def test_a_non_member_cannot_answer_a_customer_or_a_staff_question(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await _anna(telegram, carebot)
    anna = telegram.user(5001)
    relayed = await ask_staff(anna, olga, "Можно перенести запись?")
    stranger = outsider(telegram)
    await stranger.send("Нельзя, ха-ха", reply_to=relayed)
    await anna.quiet()  # the customer gets nothing from a non-member
    await (
        olga.quiet()
    )  # and the non-member gets no answer either: chatter in a group is not answered

    await olga.send("/find 4567")
    card = await olga.reply()
    await olga.press(card, "Заметка")
    prompt = await olga.reply()
    telegram.members[ADMIN_CHAT].discard(9001)  # Olga leaves mid-step
    carebot.clock.advance(timedelta(minutes=2))  # past the membership cache
    await olga.send("аллергия на лак", reply_to=prompt)
    await olga.quiet()
    await _nothing_recorded(carebot)


@pytest.mark.parametrize("author", ["linked_channel", "as_channel", "service_account", "no_from"])
async def test_a_channel_post_is_not_staff(
    carebot, telegram: TelegramServer, olga: Person, caplog: pytest.LogCaptureFixture, author: str
) -> None:
    caplog.set_level(logging.ERROR, logger="carebot")
    code = await _anna(telegram, carebot)
    fields: dict[str, Any] = {  # type: ignore[assignment]  # one of the dicts below
        "linked_channel": {
            "from": TELEGRAM_SERVICE,
            "sender_chat": CHANNEL,
            "is_automatic_forward": True,
        },
        "as_channel": {"from": CHANNEL_BOT, "sender_chat": CHANNEL},
        "service_account": {"from": TELEGRAM_SERVICE},
        "no_from": {"sender_chat": CHANNEL},
    }[author]
    for command in (
        "/sale #1 500",
        f"/redeem {code}",
        "/note #1 hi",
        "/dayoff Анна 25.11",
        "/invite_master Анна",
    ):
        await push_in_admin_chat(telegram, command, **fields)
    await olga.quiet()  # silence: there is no person to answer
    await _nothing_recorded(carebot)
    assert not [r for r in caplog.records if "update failed" in r.getMessage()]
    await olga.send("/find 4567")  # and the staff go on working
    card = await olga.reply()
    assert card.template == "staff_card" and "<b>Анна</b>" in card.text


async def test_an_anonymous_admin_records_a_sale_and_a_day_off(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await _anna(telegram, carebot)
    anonymous = {
        "from": ANONYMOUS_ADMIN,
        "sender_chat": telegram._chat(ADMIN_CHAT),
        "author_signature": "Владелец",
    }
    await push_in_admin_chat(telegram, "/sale #1 500", **anonymous)
    assert (await olga.reply()).template == "staff_sale_done"
    await push_in_admin_chat(telegram, "/dayoff Анна 25.11", **anonymous)
    dayoff = await olga.reply()
    assert dayoff.template == "dayoff_set" and "Анна" in dayoff.text
    async with carebot.db.transaction() as repos:
        [purchase] = list(await repos.session.scalars(select(Purchase)))
    assert purchase.staff_name == "Владелец"
    assert await count(carebot.db, DayOff) == 1
