"""`/forget` end to end: after a customer's whole story (onboarding, the care chat, a staff
note, a sale, a survey with a comment, a booking the staff were told of), the whole database,
every table and every column, holds nothing that names them."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import Base, Booking, Customer, OutboxMessage, Purchase, Survey, WelcomeClaim
from tests.e2e.helpers import ask_staff, coupons_of, customer_of, forget, onboard, tap
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process

USER_ID = 987654321  # distinctive: no id, amount or time contains it
NAME, USERNAME = "Евлампия", "evlampia_q"
WORDS = "у меня аллергия на шеллак Кодиак, я беременна"
NOTE = "аллергия, беременна: Евлампия просила звонить после 18"
COMMENT = "Евлампия недовольна: скол на второй день"
PERSONAL = [
    "+79161234567",
    "79161234567",
    "9161234567",
    "916 123",
    "123-45-67",
    NAME,
    NAME.casefold(),
    USERNAME,
    "14.03.1990",
    "1990-03-14",
    "14.03",
    "Кодиак",
    "шеллак",
    "после 18",
    "скол на второй день",
]


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


async def _dump(carebot) -> dict[str, list[dict[str, str]]]:  # type: ignore[no-untyped-def]
    """Every row of every table, every column as text."""
    dump: dict[str, list[dict[str, str]]] = {}
    async with carebot.db.transaction() as repos:
        for table in Base.metadata.sorted_tables:
            rows = (await repos.session.execute(select(table))).mappings().all()
            dump[table.name] = [
                {column: _text(value) for column, value in row.items()} for row in rows
            ]
    return dump


async def test_forget_leaves_no_copy_anywhere(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    customer = telegram.user(USER_ID, NAME, username=USERNAME)
    await onboard(customer, phone="79161234567", birthday="14.03.1990")
    found = await customer_of(carebot.db, USER_ID)
    assert found and found.name == NAME and found.birth_day == 14 and found.username == USERNAME

    relayed = await ask_staff(customer, olga, WORDS)  # the care chat, both ways
    assert WORDS in relayed.text
    await olga.send(f"{NAME}, учтём, спасибо", reply_to=relayed)
    await customer.next("copyMessage")
    await olga.send(f"/note #{found.id} {NOTE}")  # the note, with the customer's words and name
    assert "Заметка добавлена" in (await olga.reply()).text
    await olga.send(f"/sale #{found.id} 2000 маникюр анна")
    assert "Продажа записана" in (await olga.reply()).text

    await customer.quiet()
    carebot.clock.advance(timedelta(hours=3))  # the thank-you offer, then the survey
    both = [await customer.reply(timeout=15), await customer.reply(timeout=15)]
    [survey] = [m for m in both if "как вам визит" in m.text]
    assert NAME in survey.text
    await customer.press(survey, "2")
    await customer.next("answerCallbackQuery")
    await customer.next("editMessageText")
    assert NAME in (await olga.reply()).text  # the alert
    await customer.reply()  # "what could we do better?"
    await customer.send(COMMENT)
    assert COMMENT in (await olga.next("editMessageText")).text
    await customer.next("editMessageReplyMarkup")
    await customer.reply()

    await customer.send("/book")  # a booking: the admin chat is told, with the name and the phone
    masters = await tap(customer, await customer.reply(), "Маникюр", "editMessageText")
    days = await tap(customer, masters, "Анна", "editMessageText")
    times = await tap(customer, days, days.button_texts[0], "editMessageText")
    ask = await tap(customer, times, times.button_texts[0], "editMessageText")
    assert (await tap(customer, ask, "Записаться", "editMessageText")).text.startswith(
        "Заявка отправлена"
    )
    notice = await olga.reply(timeout=15)
    assert NAME in notice.text and "+79161234567" in notice.text

    flat = json.dumps(await _dump(carebot), ensure_ascii=False)
    for needle in (NAME, "+79161234567", WORDS, NOTE, COMMENT, USERNAME):
        assert needle in flat, needle  # each kind of copy really was in the database before

    await forget(customer)
    cancelled = await olga.reply(
        timeout=15
    )  # the staff still hear the time is free, without a name
    assert (
        "Запись отменена" in cancelled.text
        and NAME not in cancelled.text
        and "+7916" not in cancelled.text
    )

    after = await _dump(carebot)
    leaks = [
        (table, column, needle)
        for table, rows in after.items()
        for row in rows
        for column, value in row.items()
        for needle in PERSONAL
        if needle.casefold() in value.casefold()
    ]
    assert leaks == [], sorted(set(leaks))
    accounts = [
        (table, column)
        for table, rows in after.items()
        for row in rows
        for column, value in row.items()
        if str(USER_ID) in value
    ]
    assert accounts == [], "the erased row is not linked to their Telegram account"
    [erased] = [r for r in after["customers"] if r["id"] == str(found.id)]
    assert (
        erased["birth_day"],
        erased["birth_month"],
        erased["birth_year"],
        erased["tg_user_id"],
    ) == ("",) * 4
    assert not after["care_messages"] and not after["staff_notes"]

    async with carebot.db.transaction() as repos:  # the anonymous totals stay
        [purchase] = await repos.session.scalars(select(Purchase))
        assert (purchase.customer_id, purchase.amount_minor) == (found.id, 200000)
        [answered] = await repos.session.scalars(select(Survey))
        assert (answered.score, answered.comment) == (2, None)
        assert [b.state for b in await repos.session.scalars(select(Booking))] == ["cancelled"]
        assert await repos.session.get(Customer, found.id) is not None
        fingerprints = set(await repos.session.scalars(select(WelcomeClaim.fingerprint)))
        sent = list(
            await repos.session.scalars(select(OutboxMessage).where(OutboxMessage.state == "sent"))
        )
    plain = {
        hashlib.sha256(f"carebot-welcome|{v}".encode()).hexdigest()
        for v in ("phone:+79161234567", f"tg:{USER_ID}")
    }
    assert (
        len(fingerprints) == 2
        and not fingerprints & plain
        and all(f.startswith("k1:") for f in fingerprints)
    )
    assert {r.template for r in sent} >= {
        "thanks_offer",
        "survey_question",
        "booking_new_staff",
        "booking_cancelled_staff",
    }  # the rows (counts) stay, not their words

    again = telegram.user(USER_ID, "Другое имя")  # the same account gets no second welcome coupon
    await onboard(again, phone="79035556677", birthday=None)
    renewed = await customer_of(carebot.db, USER_ID)
    assert renewed and renewed.id != found.id
    assert await coupons_of(carebot.db, renewed.id) == []
