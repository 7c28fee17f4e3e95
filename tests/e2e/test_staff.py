"""Staff commands and card buttons in the admin chat, and who may use them."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from html import escape

import pytest
from sqlalchemy import select

from bot.db.models import Coupon, Purchase, StaffAction, StaffNote
from bot.telegram_text import TEXT_LIMIT, visible_len
from handlers.callbacks import RedeemCallback
from tests.conftest import ADMIN_CHAT
from tests.e2e.helpers import ask_staff, count, coupons_of, customer_of, onboard
from tests.telegram_server import Call, Person, TelegramServer

pytestmark = pytest.mark.in_process


async def _anna(
    telegram: TelegramServer,
    carebot,
    user_id: int = 5001,
    phone: str = "79161234567",
    name: str = "Анна",
    username: str | None = "anna",
) -> Coupon:
    """A customer who finished onboarding; returns their welcome coupon."""
    person = telegram.user(user_id, name, username=username)
    await onboard(person, phone=phone)
    customer = await customer_of(carebot.db, user_id)
    assert customer
    return (await coupons_of(carebot.db, customer.id))[0]


@pytest.mark.parametrize(
    "query", ["+7 916 123-45-67", "89161234567", "4567", "анна", "АННА", "@Anna", "#1", "code"]
)
async def test_find_by_anything_a_person_knows(
    carebot, telegram: TelegramServer, olga: Person, query: str
) -> None:
    coupon = await _anna(telegram, carebot)
    await olga.send(f"/find {coupon.code.lower() if query == 'code' else query}")
    card = await olga.reply()
    assert card.template == "staff_card" and "<b>Анна</b> · +79161234567 · @anna · #1" in card.text
    assert f"<code>{coupon.code}</code> — 10%, до 23.12.2026" in card.text
    assert card.labels == ["staff_sale", "staff_redeem", "staff_note", "staff_history"]


async def test_find_nobody_several_and_no_query(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await _anna(telegram, carebot)
    await _anna(telegram, carebot, 5002, "79031112233", "Анна Петрова", None)
    await olga.send("/find Ксения")
    nobody = await olga.reply()
    assert nobody.template == "staff_usage" and "Клиент «Ксения» не найден" in nobody.text
    await olga.send("/find")
    how = await olga.reply()
    assert how.template == "staff_usage" and "Кого ищем?" in how.text
    await olga.send("/find анна")
    listing = await olga.reply()
    assert listing.template == "staff_found_many" and "«анна»" in listing.text
    assert "2" in listing.text
    assert listing.labels == ["staff_pick", "staff_pick"]
    assert listing.button_texts == ["Анна · +79161234567 · #1", "Анна Петрова · +79031112233 · #2"]
    await olga.press(listing, "Петрова")
    card = await olga.reply()
    assert card.template == "staff_card" and "<b>Анна Петрова</b> · +79031112233 · #2" in card.text


async def test_sale_by_command(carebot, telegram: TelegramServer, olga: Person) -> None:
    await _anna(telegram, carebot)
    await olga.send("/sale +7 916 123 45 67 2000 маникюр Анна")
    done = await olga.reply()
    assert done.template == "staff_sale_done"
    assert "Анна (#1) — 2\u00a0000\u00a0₽, Маникюр с покрытием, мастер Анна." in done.text
    assert "Ольга (@olga_admin)" in done.text and ": 1." in done.text  # who, and the visit count
    async with carebot.db.transaction() as repos:
        [purchase] = list(await repos.session.scalars(select(Purchase)))
    assert (purchase.amount_minor, purchase.service_id, purchase.master_id, purchase.staff_id) == (
        200000,
        "manicure",
        "anna",
        9001,
    )
    await olga.send("/sale #1 1500,50")
    kopecks = await olga.reply()
    assert kopecks.template == "staff_sale_done" and "1\u00a0500,50\u00a0₽" in kopecks.text
    await olga.send("/find #1")
    card = await olga.reply()
    assert card.template == "staff_card"
    assert "Визитов: 2, последний 23.11.2026 · всего 3\u00a0500,50\u00a0₽" in card.text


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/sale", "Как записать продажу"),
        ("/sale abc", "Как записать продажу"),
        ("/sale #1 abc", "«abc» — не сумма"),
        ("/sale #1 -500", "«-500» — не сумма"),
        ("/sale #1 0", "«0» — не сумма"),
        ("/sale #1 1e9", "«1e9» — не сумма"),
        ("/sale +79990000000 500", "Клиент «+79990000000» не найден"),
        ("/sale Анна 500", "подходят 2 клиента"),
        (
            "/sale #1 500 стрижка",
            "Услуга «стрижка» не найдена. Есть: Маникюр с покрытием, Педикюр.",
        ),
    ],
)
async def test_sale_arguments_that_do_not_parse(
    carebot, telegram: TelegramServer, olga: Person, command: str, answer: str
) -> None:
    await _anna(telegram, carebot)
    await _anna(telegram, carebot, 5002, "79031112233", "Анна Петрова", None)
    await olga.send(command)
    reply = await olga.reply()
    assert reply.template == "staff_usage" and answer in reply.text, reply.text  # which mistake
    assert "Traceback" not in reply.text
    assert await count(carebot.db, Purchase) == 0


async def test_sale_from_the_card(carebot, telegram: TelegramServer, olga: Person) -> None:
    await _anna(telegram, carebot)
    await olga.send("/find 4567")
    card = await olga.reply()
    await olga.press(card, "Продажа")
    prompt = await olga.reply()
    assert prompt.template == "staff_sale_ask"
    assert prompt.text.startswith('<a href="tg://user?id=9001">Ольга</a>,')  # mentions who asked
    assert "Анна (#1)" in prompt.text
    assert prompt.markup == {"force_reply": True, "selective": True}
    await olga.send("полторы тысячи", reply_to=prompt)
    again = await olga.reply()
    assert again.template == "staff_usage" and "не сумма" in again.text
    assert again.markup["force_reply"]
    await olga.send("1 500", reply_to=again)
    services = await olga.reply()
    assert services.template == "staff_sale_ask_service"
    assert services.button_texts[:2] == ["Маникюр с покрытием", "Педикюр"]
    assert services.labels[2:] == ["staff_skip", "staff_cancel"]
    await olga.press(services, "Педикюр")
    masters = await olga.next("editMessageText")
    assert masters.template == "staff_sale_ask_master"
    assert masters.button_texts[0] == "Ольга" and masters.labels[1:] == [
        "staff_skip",
        "staff_cancel",
    ]
    await olga.press(masters, "Ольга")
    done = await olga.next("editMessageText")
    assert done.template == "staff_sale_done"
    assert "1\u00a0500\u00a0₽, Педикюр, мастер Ольга" in done.text
    await olga.press(masters, "Ольга")  # the same button again: the sale is already recorded
    assert (await olga.next("answerCallbackQuery")).template == "stale_button"
    await olga.quiet()
    assert await count(carebot.db, Purchase) == 1

    await olga.press(card, "Продажа")
    await olga.reply()
    await olga.send("700")
    services = await olga.reply()
    await olga.press(services, "Отмена")
    assert (await olga.next("editMessageText")).template == "staff_cancelled"
    assert await count(carebot.db, Purchase) == 1


async def test_redeem_once_with_who_and_when(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    coupon = await _anna(telegram, carebot)
    await olga.send(f"/redeem {coupon.code[:4].lower()}-{coupon.code[4:].lower()}")
    done = await olga.reply()
    assert done.template == "staff_redeem"
    assert (
        f"✅ Купон <code>{coupon.code}</code> погашен: скидка 10%, клиент Анна (+79161234567)"
        in done.text
    )  # redeemed, not refused: said in words, one template says both
    carebot.clock.advance(timedelta(minutes=5))
    misha = telegram.staff(9002, "Миша", ADMIN_CHAT)
    await misha.send(f"/redeem {coupon.code}")
    again = await misha.reply()
    assert again.template == "staff_redeem"
    assert (
        f"⛔ Купон <code>{coupon.code}</code> уже использован 23.11.2026 12:00, погасил(а) Ольга (@olga_admin)"
        in again.text
    )
    assert await olga.reply() == again  # Olga sees it in the same chat
    await olga.send("/redeem NOPE2345")
    unknown = await olga.reply()
    assert unknown.template == "staff_redeem" and "«NOPE2345» не найден" in unknown.text
    await olga.send("/redeem")
    how = await olga.reply()
    assert how.template == "staff_usage" and "Какой купон погасить?" in how.text


async def test_expired_coupon_is_not_redeemed(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    coupon = await _anna(telegram, carebot)
    carebot.clock.advance(timedelta(days=40))
    await olga.send(f"/redeem {coupon.code}")
    expired = await olga.reply()
    assert (
        expired.template == "staff_redeem" and "истёк: он действовал до 23.12.2026" in expired.text
    )
    assert await count(carebot.db, Coupon, Coupon.redeemed_at.is_not(None)) == 0


async def test_two_staff_redeem_at_once_exactly_one_wins(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    coupon = await _anna(telegram, carebot)
    misha = telegram.staff(9002, "Миша", ADMIN_CHAT)
    await asyncio.gather(olga.send(f"/redeem {coupon.code}"), misha.send(f"/redeem {coupon.code}"))
    replies = [await olga.reply(), await olga.reply()]
    assert [c.template for c in replies] == ["staff_redeem", "staff_redeem"]
    answers = [c.text for c in replies]
    assert (
        sum("✅" in a for a in answers) == 1 and sum("уже использован" in a for a in answers) == 1
    )
    assert await count(carebot.db, StaffAction, StaffAction.action == "redeem") == 1


async def test_redeem_from_the_card_checks_the_owner(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna_coupon = await _anna(telegram, carebot)
    await _anna(telegram, carebot, 5002, "79031112233", "Ксения", None)
    await olga.send("/find Ксения")
    card = await olga.reply()
    await olga.press(card, "Погасить")
    choose = await olga.reply()
    assert len(choose.buttons) == 1
    ksenia = RedeemCallback.unpack(choose.buttons[0]["callback_data"]).customer_id
    await olga.press_data(
        choose, RedeemCallback(code=anna_coupon.code, customer_id=ksenia).pack()
    )  # Anna's code
    refused = await olga.next("editMessageText")
    assert refused.template == "staff_redeem" and "принадлежит другому клиенту" in refused.text
    await olga.press(choose, "10%")
    redeemed = await olga.next("editMessageText")
    assert redeemed.template == "staff_redeem" and "✅" in redeemed.text
    assert await count(carebot.db, Coupon, Coupon.redeemed_at.is_not(None)) == 1


async def test_notes_and_history(carebot, telegram: TelegramServer, olga: Person) -> None:
    coupon = await _anna(telegram, carebot)
    await olga.send("/note +79161234567 любит <кофе> без сахара")
    added = await olga.reply()
    assert added.template == "staff_note_done" and "Анна (#1)" in added.text
    await olga.send("/note 4567")
    how = await olga.reply()
    assert how.template == "staff_usage" and "Как добавить заметку" in how.text
    await olga.send(f"/redeem {coupon.code}")
    await olga.reply()
    await olga.send("/find #1")
    card = await olga.reply()
    assert "📝 любит &lt;кофе&gt; без сахара" in card.text
    await olga.press(card, "Заметка")
    await olga.reply()
    await olga.send("аллергия на лак X")
    await olga.reply()
    await olga.send("/sale #1 900")
    await olga.reply()
    await olga.press(card, "История")
    shown = await olga.reply()
    assert shown.template == "staff_history"
    history = shown.text
    lines = [line for line in history.splitlines() if line.startswith("23.11.2026")]
    assert [re.sub(r"^\S+ \S+ · ", "", line) for line in lines] == [
        "Ольга (@olga_admin) · продажа 900\u00a0₽",
        "Ольга (@olga_admin) · заметка: аллергия на лак X",
        f"Ольга (@olga_admin) · погашен купон {coupon.code}",
        "Ольга (@olga_admin) · заметка: любит &lt;кофе&gt; без сахара",
    ]
    assert await count(carebot.db, StaffNote) == 2


async def test_staff_commands_outside_the_admin_chat_do_nothing(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    coupon = await _anna(telegram, carebot)
    anna = telegram.user(5001)
    for command in ("/find 4567", f"/redeem {coupon.code}", "/sale #1 100", "/note #1 hi"):
        await anna.send(command)
        assert (await anna.reply()).template == "staff_only"
    insider = telegram.user(9001, "Ольга")  # a staff member, but in a private chat with the bot
    await insider.send(f"/redeem {coupon.code}")
    assert (await insider.reply()).template == "staff_only"
    other_group = telegram.staff(9003, "Чужой", -1009999)
    await other_group.send(f"/redeem {coupon.code}")
    assert (await other_group.reply()).template == "staff_only"
    assert await count(carebot.db, Coupon, Coupon.redeemed_at.is_not(None)) == 0
    assert await count(carebot.db, Purchase) == 0 and await count(carebot.db, StaffNote) == 0


@pytest.mark.parametrize(
    "data", ["card:sale:1", "card:history:1", "rdm:{code}:1", "sale:service:manicure"]
)
async def test_staff_buttons_forged_in_a_private_chat_are_refused(
    carebot, telegram: TelegramServer, data: str
) -> None:
    coupon = await _anna(telegram, carebot)
    anna = telegram.user(5001)
    await anna.send("/mycoupons")
    message = await anna.reply()
    await anna.press_data(message, data.format(code=coupon.code))
    assert (await anna.next("answerCallbackQuery")).template == "stale_button"
    await anna.quiet()
    assert await count(carebot.db, Coupon, Coupon.redeemed_at.is_not(None)) == 0


async def test_a_former_member_cannot_press_staff_buttons(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    coupon = await _anna(telegram, carebot)
    await olga.send("/find 4567")
    card = await olga.reply()
    await olga.press(card, "Погасить")
    choose: Call = await olga.reply()
    leaver = telegram.staff(9004, "Бывший", ADMIN_CHAT)
    telegram.members[ADMIN_CHAT].discard(
        9004
    )  # left the group; an old client still shows the buttons
    await leaver.press(choose, coupon.code)
    assert (await leaver.next("answerCallbackQuery")).template == "stale_button"
    await olga.quiet()
    assert await count(carebot.db, Coupon, Coupon.redeemed_at.is_not(None)) == 0


async def test_card_of_an_erased_customer(carebot, telegram: TelegramServer, olga: Person) -> None:
    await _anna(telegram, carebot)
    await olga.send("/find 4567")
    card = await olga.reply()
    anna = telegram.user(5001)
    await anna.send("/forget")
    confirm = await anna.reply()
    await anna.press(confirm, "Да, удалить")
    await anna.next("editMessageText")
    await olga.press(card, "История")
    assert (await olga.next("answerCallbackQuery")).template == "staff_customer_gone"
    await olga.send("/find 4567")
    nobody = await olga.reply()
    assert nobody.template == "staff_usage" and "«4567» не найден" in nobody.text


async def test_a_reply_to_a_customer_during_a_staff_step_still_reaches_the_customer(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await _anna(telegram, carebot)
    anna = telegram.user(5001)
    relayed = await ask_staff(anna, olga, "Можно перенести запись?")
    await olga.send("/find 4567")
    card = await olga.reply()
    await olga.press(card, "Заметка")
    prompt = await olga.reply()
    await olga.send("Конечно, на когда?", reply_to=relayed)  # answering the customer, mid-note
    assert (await anna.next("copyMessage")).message["text"] == "Конечно, на когда?"
    assert await count(carebot.db, StaffNote) == 0
    await olga.send("просила перенести", reply_to=prompt)
    assert (await olga.reply()).template == "staff_note_done"
    assert await count(carebot.db, StaffNote) == 1


async def test_an_anonymous_admin_answers_and_acts(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await _anna(telegram, carebot)
    anna = telegram.user(5001)
    relayed = await ask_staff(anna, olga, "Вопрос")
    message = {
        "message_id": telegram.new_message_id(),
        "date": 0,
        "text": "Ответ владельца",
        "chat": telegram._chat(ADMIN_CHAT),
        "sender_chat": telegram._chat(ADMIN_CHAT),
        "author_signature": "Владелец",
        "from": {
            "id": 1087968824,
            "is_bot": True,
            "first_name": "Group",
            "username": "GroupAnonymousBot",
        },
        "reply_to_message": telegram.messages[(ADMIN_CHAT, relayed.message["message_id"])],
    }
    telegram.messages[(ADMIN_CHAT, message["message_id"])] = message
    await telegram.push({"message": message})
    assert (await anna.next("copyMessage")).message["text"] == "Ответ владельца"
    await olga.next("setMessageReaction")  # comes after the reply is recorded
    async with carebot.db.transaction() as repos:
        [action] = await repos.audit.of_customer(1, 5)
    assert (action.action, action.staff_name) == ("reply", "Владелец")


async def test_chat_id_helps_the_owner_set_up(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await olga.send("/chatid")
    ours = await olga.reply()
    assert ours.template == "staff_chat_id" and "<code>-1001234567890</code>" in ours.text
    assert "все настроено" in ours.text.replace("всё", "все")  # this is the admin chat already
    stranger_group = telegram.staff(9005, "Кто-то", -1005555)
    await stranger_group.send("/chatid")
    theirs = await stranger_group.reply()
    assert theirs.template == "staff_chat_id" and "ADMIN_CHAT_ID=-1005555" in theirs.text
    anna = telegram.user(5009)
    await anna.send("/chatid")
    assert (
        await anna.reply()
    ).template == "not_registered"  # in a private chat it is just an unknown command


LONG_NAME = "Анастасия-Виктория 🌸 Константинопольская-Преображенская 💅💅💅💅💅💅💅💅"
LONG_NOTE = (
    "<лак> & " + ("💅" * 196 + " &") * 10
)  # 1,988 characters, 3,948 units as Telegram counts


async def test_a_long_note_on_a_long_name_never_breaks_the_card(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    """Seen: one long note with emoji made every later /find of that customer "message is too long"."""
    assert len(LONG_NAME) == 64 and len(LONG_NOTE) <= 2000
    await _anna(telegram, carebot, name=LONG_NAME)
    for n in range(3):
        await olga.send(f"/note #1 {n} {LONG_NOTE}")
        assert (await olga.reply()).template == "staff_note_done"
    await olga.send("/find #1")
    card = await olga.reply()
    assert card.method == "sendMessage" and visible_len(card.text) <= TEXT_LIMIT
    assert (
        f"👤 <b>{escape(LONG_NAME)}</b> · +79161234567 · @anna · #1" in card.text
    )  # the name whole
    assert f"📝 2 {escape(LONG_NOTE[:100])}" in card.text and "…" in card.text  # the note shortened
    assert card.labels == ["staff_sale", "staff_redeem", "staff_note", "staff_history"]
    await olga.press(card, "История")
    history = await olga.reply()
    assert visible_len(history.text) <= TEXT_LIMIT
    notes = [
        line.split(" · ", 2)[-1] for line in history.text.splitlines() if " · заметка: " in line
    ]
    assert len(notes) == 3
    assert all(
        note.startswith(f"заметка: {n} &lt;лак&gt; &amp; 💅💅")
        for n, note in zip((2, 1, 0), notes, strict=True)
    )
    assert all(note.endswith("…") and len(note) > 500 for note in notes)  # each shortened, alike
    assert not telegram.refused
