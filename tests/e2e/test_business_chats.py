"""Telegram Business: customers write to the salon's own account, which connected the bot; the
staff chat shows them as the care chat does, and staff answer through the account."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.models import BusinessMessage, CareMessage
from tests.e2e.helpers import bot_on, business_plus, count, customer_id_of, forget, msk, onboard
from tests.telegram_server import BusinessAccount, Person, TelegramServer

pytestmark = pytest.mark.in_process


@pytest.fixture
def salon(telegram: TelegramServer) -> BusinessAccount:
    return telegram.business_account(7100, "Салон", last_name="Ноготки")


async def care_rows(db, tg_user_id: int) -> list[tuple[str, str | None, int | None]]:  # type: ignore[no-untyped-def]
    """The customer's care history: (direction, text, who wrote it of the staff)."""
    async with db.reading() as repos:
        query = select(CareMessage.direction, CareMessage.text, CareMessage.staff_id).where(
            CareMessage.tg_user_id == tg_user_id
        )
        return [tuple(r) for r in await repos.session.execute(query.order_by(CareMessage.id))]


async def test_a_customer_of_the_account_is_answered_as_the_account(
    carebot, telegram: TelegramServer, olga: Person, salon: BusinessAccount
) -> None:
    # Polling and the webhook ask Telegram for the accounts' updates (they come only if asked).
    assert carebot.app is not None
    assert {
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
    } <= set(carebot.app.dp.resolve_used_update_types())
    await salon.connect()
    notice = await olga.reply()
    assert notice.template == "business_connection_staff"
    assert "Салон Ноготки" in notice.text and "от имени аккаунта" in notice.text
    await olga.send("/accounts")
    listed = await olga.reply()
    assert listed.template == "accounts" and "🟢 <b>Салон Ноготки</b>" in listed.text

    vera = telegram.user(4101, "Вера", username="vera")  # never wrote to the bot itself
    await vera.write_to(salon, "Здравствуйте! Есть время в пятницу?")
    relayed = await olga.reply()
    assert relayed.template == "care_card"
    assert "<b>Вера</b> · @vera" in relayed.text
    assert "в аккаунт «Салон Ноготки»" in relayed.text
    assert relayed.text.endswith("Есть время в пятницу?")
    await vera.quiet()  # no "we got it" from the bot in the account's chat

    await olga.send("Да, в 15:00 свободно <b>!</b>", reply_to=relayed)
    answer = await vera.next("sendMessage")
    assert answer.params["business_connection_id"] == salon.connection_id
    assert answer.message["from"]["id"] == salon.owner.id  # the customer sees the salon
    assert answer.text == "Да, в 15:00 свободно &lt;b&gt;!&lt;/b&gt;"
    assert (await olga.next("setMessageReaction")).params["message_id"]
    assert not [c for c in telegram.calls if c.method == "copyMessage"]

    # The owner answers from their phone: recorded on the card, not relayed as the customer's.
    await salon.owner_writes(vera, "Вера, ждём вас!")
    await olga.quiet()
    rows = await care_rows(carebot.db, vera.id)
    assert rows == [
        ("in", "Здравствуйте! Есть время в пятницу?", None),
        ("out", "Да, в 15:00 свободно <b>!</b>", olga.id),
        ("out", "Вера, ждём вас!", salon.owner.id),
    ]

    # A photo from the customer: sent to the staff by its file (nothing to copy from there).
    await vera.write_to(salon, kind="photo", caption="вот такой дизайн")
    photo = await olga.next("sendPhoto")
    assert photo.params["photo"] == "photo-1"
    assert photo.params["caption"].endswith("вот такой дизайн")

    # A staff photo goes as the account by its file; a location cannot go, and staff are told.
    await olga.send_media("photo", caption="Прайс", reply_to=photo)
    price = await vera.next("sendPhoto")
    assert price.params["business_connection_id"] == salon.connection_id
    assert price.params["caption"] == "Прайс"
    await olga.next("setMessageReaction")
    await olga.send_media("location", reply_to=photo)
    where = await vera.next("sendLocation")
    assert where.params["business_connection_id"] == salon.connection_id
    assert (float(where.params["latitude"]), float(where.params["longitude"])) == (55.75, 37.62)
    await olga.next("setMessageReaction")
    # A customer's location reaches the staff as a location (after their card).
    await vera.write_to(salon, kind="location")
    assert (await olga.reply()).template == "care_card"
    located = await olga.next("sendLocation")
    assert (float(located.params["latitude"]), float(located.params["longitude"])) == (55.75, 37.62)
    # A contact a staff member sends cannot go as the account: they are told.
    contact = {"phone_number": "+79160000000", "first_name": "Мастер"}
    await telegram.push({"message": olga._message(reply_to=located, contact=contact)})
    failed = await olga.reply()
    assert failed.template == "business_failed" and "контакт" in failed.text


async def test_edits_and_deletions_reach_the_staff(
    carebot, telegram: TelegramServer, olga: Person, salon: BusinessAccount
) -> None:
    await salon.connect()
    await olga.reply()
    vera = telegram.user(4102, "Вера")
    first = await vera.write_to(salon, "Запишите на среду")
    relayed = await olga.reply()
    await vera.edit_to(salon, first, "Запишите на четверг")
    edited = await olga.reply()
    assert edited.template == "business_edited" and "Запишите на четверг" in edited.text
    assert edited.params["reply_parameters"]["message_id"] == relayed.message["message_id"]
    await vera.delete_to(salon, first)
    deleted = await olga.reply()
    assert deleted.template == "business_deleted"
    assert deleted.params["reply_parameters"]["message_id"] == relayed.message["message_id"]
    [(_, text, _)] = await care_rows(carebot.db, vera.id)
    assert text is None  # the words the customer took back are not kept


async def test_rights_removed_mid_conversation_then_disconnected(
    carebot, telegram: TelegramServer, olga: Person, salon: BusinessAccount
) -> None:
    await salon.connect()
    await olga.reply()
    vera = telegram.user(4103, "Вера")
    await vera.write_to(salon, "Вопрос")
    relayed = await olga.reply()

    await salon.change_rights(can_reply=False)
    assert "забрал право отвечать" in (await olga.reply()).text
    await olga.send("Ответ", reply_to=relayed)
    failed = await olga.reply()
    assert failed.template == "business_failed" and "Отвечать на сообщения" in failed.text
    assert not salon.sent_as_account(vera)
    await olga.send("/invite", reply_to=relayed)
    refused = await olga.reply()
    assert refused.template == "business_refused" and "Отвечать на сообщения" in refused.text

    await salon.change_rights(can_reply=True)
    await olga.reply()
    await olga.send("Теперь можно", reply_to=relayed)
    assert (await vera.next("sendMessage")).text == "Теперь можно"

    await salon.disconnect()
    assert "бот отключён" in (await olga.reply()).text
    await olga.send("Ещё ответ", reply_to=relayed)
    failed = await olga.reply()
    assert failed.template == "business_failed" and "отключил бота" in failed.text
    await olga.send("/accounts")
    assert "⚪️ <b>Салон Ноготки</b> — отключён" in (await olga.reply()).text
    assert [c.text for c in salon.sent_as_account(vera)] == ["Теперь можно"]
    # Nothing refused by Telegram: the rights were checked before each send.
    assert not [c for c in telegram.refused if c.params.get("business_connection_id")]
    assert (await customer_of_blocked(carebot, vera)) is None


async def customer_of_blocked(carebot, person: Person):  # type: ignore[no-untyped-def]
    """A refusal through an account never marks anyone blocked (they have no card here)."""
    async with carebot.db.reading() as repos:
        return await repos.customers.by_tg_user(person.id)


async def test_a_day_later_the_chat_is_closed_to_the_bot(
    carebot, telegram: TelegramServer, olga: Person, salon: BusinessAccount
) -> None:
    await salon.connect()
    await olga.reply()
    vera = telegram.user(4104, "Вера")
    await vera.write_to(salon, "Вопрос")
    relayed = await olga.reply()
    carebot.clock.advance(timedelta(hours=25))
    await olga.send("Ответ через сутки", reply_to=relayed)
    failed = await olga.reply()
    assert failed.template == "business_failed" and "24 часов" in failed.text
    assert not salon.sent_as_account(vera)


async def test_a_known_customer_gets_their_card_coupons_invite_and_slots(
    carebot, telegram: TelegramServer, olga: Person, salon: BusinessAccount
) -> None:
    anna = telegram.user(4105, username="anna")
    await onboard(anna)
    await salon.connect()
    await olga.reply()
    await anna.write_to(salon, "Какие у меня купоны?")
    relayed = await olga.reply()
    assert "<b>Анна</b> · +79161234567 · @anna" in relayed.text  # their card
    assert "купонов: 1" in relayed.text

    await olga.send("/coupons", reply_to=relayed)
    coupons = await anna.next("sendMessage")
    assert coupons.params["business_connection_id"] == salon.connection_id
    assert coupons.template == "my_coupons" and "Ваши купоны" in coupons.text
    await olga.send("/invite", reply_to=relayed)
    invite = await anna.next("sendMessage")
    assert invite.template == "business_invite"
    assert invite.buttons[0]["url"] == "https://t.me/carebot_test_bot?start=src_business"
    await olga.send("/slots", reply_to=relayed)
    slots = await anna.next("sendMessage")
    assert slots.template == "business_slots" and "Маникюр" in slots.text
    assert slots.buttons[0]["url"] == "https://t.me/carebot_test_bot?start=book"
    assert len(salon.sent_as_account(anna)) == 3

    # The button opens /book in the bot.
    await anna.send("/start book")
    assert (await anna.reply()).template == "booking_services"

    # Not in a customer's conversation: how to use it; outside the admin chat: staff only.
    await olga.send("/slots")
    assert (await olga.reply()).template == "business_usage"
    await anna.send("/accounts")
    assert (await anna.reply()).template == "staff_only"


async def test_forget_erases_the_account_chat_and_mydata_shows_it(
    carebot, telegram: TelegramServer, olga: Person, salon: BusinessAccount
) -> None:
    anna = telegram.user(4106)
    await onboard(anna)
    await salon.connect()
    await olga.reply()
    await anna.write_to(salon, "Мой секрет")
    await olga.reply()
    await salon.owner_writes(anna, "Ответ владельца")
    await olga.quiet()
    await anna.send("/mydata")
    await anna.reply()
    document = await anna.next("sendDocument")
    data = document.upload().data.decode()
    assert "Мой секрет" in data and "Ответ владельца" in data and '"business_chat"' in data
    customer_id = await customer_id_of(carebot.db, anna.id)
    assert await count(carebot.db, BusinessMessage, BusinessMessage.customer_id == customer_id) == 2

    await forget(anna)
    assert await count(carebot.db, BusinessMessage) == 0
    assert await count(carebot.db, CareMessage) == 0


async def test_out_of_hours_the_customer_is_told_when_they_will_be_answered(
    telegram: TelegramServer,
    database_url: str,
    clock: FixedClock,
    tmp_path: Path,
    olga: Person,
    salon: BusinessAccount,
) -> None:
    business = business_plus(tmp_path, "\n[business_account]\nauto_reply = true\n")
    clock.set(msk("2026-11-23T21:30:00"))  # a Monday evening; Tuesday opens at 10:00
    async with bot_on(telegram, database_url, clock, business):
        await salon.connect()
        await olga.reply()
        vera = telegram.user(4107, "Вера")
        await vera.write_to(salon, "Можно завтра утром?")
        await olga.reply()
        auto = await vera.next("sendMessage")
        assert auto.template == "business_auto_reply"
        assert auto.params["business_connection_id"] == salon.connection_id
        assert "ответим вт 24.11 в 10:00" in auto.text
        clock.advance(timedelta(hours=2))  # after midnight, the same evening
        await vera.write_to(salon, "Алло?")
        await olga.reply()
        await vera.quiet()  # once per evening

        clock.set(msk("2026-11-24T12:00:00"))  # open: no auto-reply
        await vera.write_to(salon, "Вы работаете?")
        await olga.reply()
        await vera.quiet()
        clock.set(msk("2026-11-24T19:30:00"))  # the next evening: told again
        await vera.write_to(salon, "А сегодня вечером?")
        await olga.reply()
        assert (await vera.next("sendMessage")).template == "business_auto_reply"


async def test_a_connection_the_bot_missed_is_asked_of_telegram(
    carebot, telegram: TelegramServer, olga: Person, salon: BusinessAccount
) -> None:
    await salon.connect(announce=False)  # connected while the bot was down
    vera = telegram.user(4108, "Вера")
    await vera.write_to(salon, "Добрый вечер")
    asked = await olga.next("sendMessage")  # the connection, learnt from getBusinessConnection
    assert asked.template == "business_connection_staff"
    assert [c for c in telegram.calls if c.method == "getBusinessConnection" and c.ok]
    relayed = await olga.reply()
    assert "в аккаунт «Салон Ноготки»" in relayed.text and relayed.text.endswith("Добрый вечер")
    await olga.send("Здравствуйте!", reply_to=relayed)
    assert (await vera.next("sendMessage")).params["business_connection_id"] == salon.connection_id
