"""The care chat: customers write to the bot, staff answer from the admin chat."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.db.models import CareMessage
from tests.conftest import ADMIN_CHAT, BUSINESS_FILE, RunningBot, make_settings
from tests.e2e.helpers import ask_staff, count, customer_of, forget, onboard
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process

WJ = "\u2060"  # the word joiner that keeps customer text from mentioning or commanding


async def test_customer_message_reaches_staff_with_a_card_and_the_reply_comes_back(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(4001, username="anna")
    await onboard(anna)
    await anna.send("Здравствуйте! Можно записаться на завтра?")
    relayed = await olga.reply()
    assert relayed.template == "care_card"
    assert "<b>Анна</b> · +79161234567 · @anna · #1" in relayed.text
    assert "Визитов: 0 · купонов: 1" in relayed.text
    assert relayed.text.endswith("Здравствуйте! Можно записаться на завтра?")
    assert (await anna.reply()).template == "care_received"

    await anna.send("В любое время после обеда")
    assert (await olga.reply()).text.endswith("В любое время после обеда")
    await anna.quiet()  # no second "we got it" within half an hour

    await olga.send("Да, ждём вас завтра в 15:00!", reply_to=relayed)
    delivered = await anna.next("copyMessage")
    assert delivered.params["from_chat_id"] == ADMIN_CHAT
    assert delivered.message["text"] == "Да, ждём вас завтра в 15:00!"
    assert "Ольга" not in str(delivered.params) and "olga" not in str(delivered.params)
    reaction = await olga.next("setMessageReaction")
    assert reaction.params["reaction"] == [{"type": "emoji", "emoji": "👍"}]
    async with carebot.db.transaction() as repos:
        assert await repos.audit.of_customer(1, 5)

    carebot.clock.advance(timedelta(minutes=31))
    await anna.send("Спасибо!")
    await olga.reply()
    assert (
        await anna.reply()
    ).template == "care_received"  # after a quiet spell, acknowledged again


@pytest.mark.parametrize(
    "kind",
    [
        "photo",
        "voice",
        "video",
        "document",
        "audio",
        "animation",
        "sticker",
        "video_note",
        "location",
    ],
)
async def test_staff_reply_of_each_kind_reaches_the_customer(
    carebot, telegram: TelegramServer, olga: Person, kind: str
) -> None:
    anna = telegram.user(4002)
    await onboard(anna)
    relayed = await ask_staff(anna, olga, "Пришлите, пожалуйста, прайс")
    await olga.send_media(kind, reply_to=relayed)
    delivered = await anna.next("copyMessage")
    assert kind in delivered.message and delivered.chat_id == anna.id


@pytest.mark.parametrize(
    "kind", ["photo", "voice", "video", "document", "sticker", "location", "video_note"]
)
async def test_customer_content_of_each_kind_reaches_staff(
    carebot, telegram: TelegramServer, olga: Person, kind: str
) -> None:
    anna = telegram.user(4003)
    await onboard(anna)
    await anna.send_media(
        kind, caption="вот так <b>сейчас</b>" if kind in ("photo", "video", "document") else None
    )
    first = await olga.next()
    if kind in ("photo", "voice", "video", "document"):
        assert first.method == "copyMessage" and kind in first.message
        assert first.template == "care_card" and "<b>Анна</b>" in first.params["caption"]
        if kind != "voice":
            assert first.params["caption"].endswith("вот так &lt;b&gt;сейчас&lt;/b&gt;")
        relayed = first
    else:  # no caption to carry the card: the card, then the message itself
        assert first.method == "sendMessage" and first.template == "care_card"
        assert "<b>Анна</b>" in first.text
        relayed = await olga.next("copyMessage")
        assert kind in relayed.message
    await anna.reply()
    await olga.send("Получили, спасибо!", reply_to=relayed)
    assert (await anna.next("copyMessage")).message["text"] == "Получили, спасибо!"


async def test_customer_text_cannot_format_mention_or_command(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(4004)
    await onboard(anna)
    await anna.send('<b>Срочно</b> & <a href="http://x">тут</a> @owner /find #1')
    relayed = await olga.reply()
    assert relayed.text.endswith(
        f'&lt;b&gt;Срочно&lt;/b&gt; &amp; &lt;a href="http://x"&gt;тут&lt;/a&gt; @{WJ}owner /{WJ}find #{WJ}1'
    )
    assert "entities" not in relayed.params


async def test_customer_who_blocked_the_bot(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(4005)
    await onboard(anna)
    relayed = await ask_staff(anna, olga, "Вопрос")
    telegram.blocked.add(anna.id)
    await olga.send("Ответ", reply_to=relayed)
    warning = await olga.reply()
    assert warning.template == "care_blocked"
    assert warning.params["reply_parameters"]["message_id"] or warning.params.get(
        "reply_to_message_id"
    )
    customer = await customer_of(carebot.db, anna.id)
    assert customer and customer.blocked_at is not None
    # What the staff member wrote is kept all the same (stored before it was sent).
    assert await count(carebot.db, CareMessage, CareMessage.direction == "out") == 1

    telegram.blocked.discard(anna.id)  # they unblocked and wrote again
    await anna.send("Я снова тут")
    again = await olga.reply()
    assert again.template == "care_card" and again.text.endswith("Я снова тут")  # no warning
    customer = await customer_of(carebot.db, anna.id)
    assert customer and customer.blocked_at is None


async def test_a_stranger_can_ask_before_registering(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    guest = telegram.user(4006, "Пётр", username="petr")
    await guest.send("Вы работаете в воскресенье?")
    relayed = await olga.reply()
    assert relayed.template == "care_card" and "<b>Пётр</b> · @petr" in relayed.text
    assert "ещё не знакомы" in relayed.text  # a stranger, not a customer
    ack = await guest.reply()
    assert ack.template == "care_received" and "/start" in ack.text
    await olga.send("Да, с 10 до 16", reply_to=relayed)
    assert (await guest.next("copyMessage")).message["text"] == "Да, с 10 до 16"
    assert await customer_of(carebot.db, guest.id) is None


async def test_staff_chatter_is_not_sent_to_anyone(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(4007)
    await onboard(anna)
    await olga.send("Девочки, кто завтра открывает?")
    await olga.send("/find Анна")
    card = await olga.reply()
    misha = telegram.staff(9002, "Миша", ADMIN_CHAT)
    await misha.send("Я открываю", reply_to=card)  # a reply, but not to a customer's message
    await misha.send("/find 4567")
    await misha.reply()
    await anna.quiet()
    assert not [c for c in telegram.calls if c.method == "copyMessage"]


async def test_forum_topic_per_customer(carebot, telegram: TelegramServer, olga: Person) -> None:
    telegram.forum_chats.add(ADMIN_CHAT)
    anna = telegram.user(4008)
    await onboard(anna)
    await anna.send("Первый вопрос")
    topic = await olga.next("createForumTopic")
    assert topic.params["name"] == "Анна · 4567"
    thread = topic.result["message_thread_id"]
    card = await olga.reply()
    assert card.params["message_thread_id"] == thread and card.template == "care_card"
    assert "<b>Анна</b>" in card.text
    first = await olga.reply()
    assert first.params["message_thread_id"] == thread and first.text == "Первый вопрос"
    await anna.reply()

    await anna.send_media("photo", caption="фото")
    copied = await olga.next("copyMessage")
    assert copied.params["message_thread_id"] == thread and copied.params["caption"] == "фото"
    assert len([c for c in telegram.calls if c.method == "createForumTopic"]) == 1

    await olga.send("Видим, спасибо!", thread_id=thread)  # written in the topic, not a reply
    assert (await anna.next("copyMessage")).message["text"] == "Видим, спасибо!"

    telegram.delete_topic(ADMIN_CHAT, thread)  # staff deleted the topic: a new one opens
    await anna.send("Ещё вопрос")
    reopened = await olga.next("createForumTopic")
    [failed] = [c for c in telegram.refused if c.params.get("message_thread_id") == thread]
    assert failed.error_code == 400  # no such thread: nobody saw it
    assert reopened.result["message_thread_id"] != thread
    await olga.reply()
    assert (await olga.reply()).text == "Ещё вопрос"


async def test_replies_signed_when_the_business_wants(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path, olga: Person
) -> None:
    business = tmp_path / "business.toml"
    business.write_text(
        BUSINESS_FILE.read_text().replace("sign_replies = false", "sign_replies = true")
    )
    running = RunningBot(
        make_settings(telegram, database_url, business_file=business), clock, telegram
    )
    await running.start()
    try:
        anna = telegram.user(4009)
        await onboard(anna)
        relayed = await ask_staff(anna, olga, "Вопрос")
        await olga.send("Ответ <от нас>", reply_to=relayed)
        signed = await anna.reply()
        assert signed.text == "Ответ &lt;от нас&gt;\n\n— Ольга"
        await olga.send_media("photo", caption="Прайс", reply_to=relayed)
        photo = await anna.next("copyMessage")
        assert photo.params["caption"] == "Прайс\n\n— Ольга" and "photo" in photo.message
    finally:
        await running.stop()


async def test_without_an_admin_chat_the_customer_is_told_how_to_reach_us(
    telegram: TelegramServer, database_url: str, clock: FixedClock
) -> None:
    running = RunningBot(make_settings(telegram, database_url, admin_chat_id=None), clock, telegram)
    await running.start()
    try:
        anna = telegram.user(4010)
        await anna.send("Алло?")
        answer = await anna.reply()
        assert answer.template == "care_unavailable" and "+7 900 000-00-00" in answer.text
    finally:
        await running.stop()


async def test_forget_erases_the_conversation(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(4011)
    await onboard(anna)
    relayed = await ask_staff(anna, olga, "Мой секрет")
    await olga.send("Ответ", reply_to=relayed)
    await anna.next("copyMessage")
    await olga.next("setMessageReaction")  # comes after the reply is recorded
    assert await count(carebot.db, CareMessage) == 2
    await forget(anna)
    assert await count(carebot.db, CareMessage) == 0
    await olga.send("Ещё ответ", reply_to=relayed)  # the thread is gone: nothing is delivered
    await anna.quiet()
