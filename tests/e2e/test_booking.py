"""Cycles and booking, end to end: the due-offer, booking from it or from the menu, the
master's answer, reminders, cancel and reschedule, the visit's end, and the booking race."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.db.models import Booking, BookingCell, Purchase
from bot.services.staff import Staff
from handlers.callbacks import SlotAct, SlotCallback, to_minutes
from tests.conftest import ADMIN_CHAT, RunningBot
from tests.e2e.helpers import count, customer_of, onboard
from tests.telegram_server import Call, Person, TelegramServer

pytestmark = pytest.mark.in_process

MOSCOW = ZoneInfo("Europe/Moscow")
LINK = re.compile(r"https://t\.me/carebot_test_bot\?start=(master_[\w-]+)")


def moscow(day: date, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=MOSCOW).astimezone(UTC)


@pytest.fixture
def olga(telegram: TelegramServer) -> Person:
    return telegram.staff(9001, "Ольга", ADMIN_CHAT, username="olga_admin")


async def _join_master(
    olga: Person, telegram: TelegramServer, name: str = "Анна", user_id: int = 7001
) -> Person:
    """The owner invites a master from the admin chat; the master opens the link."""
    await olga.send(f"/invite_master {name}")
    invite = await olga.reply()
    token = LINK.search(invite.text)
    assert token, invite.text
    master = telegram.user(user_id, f"Мастер {name}")
    await master.send(f"/start {token[1]}")
    joined = await master.reply()
    assert f"Здравствуйте, {name}! Вы подключены как мастер" in joined.text
    return master


async def _history(carebot: RunningBot, tg_user_id: int, *days: date, master: str = "anna") -> None:
    """Past visits for manicure (recorded by the staff on those days)."""
    assert carebot.app is not None
    customer = await customer_of(carebot.db, tg_user_id)
    assert customer is not None
    for day in days:
        carebot.clock.set(moscow(day, "12:00"))
        await carebot.app.staff.record_sale(
            Staff(1, "Ольга"), customer.id, 200000, "manicure", master
        )


async def _plan(carebot: RunningBot) -> dict[str, int]:
    assert carebot.app is not None
    return await carebot.app.planners.run_all()


async def test_due_offer_booked_accepted_reminded_and_closed(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    master = await _join_master(olga, telegram)
    # Visits on 13.10, 2.11 and 22.11 (Mondays... roughly every 20 days): her own cycle is 20 days.
    await _history(carebot, 6001, date(2026, 10, 13), date(2026, 11, 2), date(2026, 11, 22))
    due = moscow(date(2026, 12, 12), "12:00")
    carebot.clock.set(
        due - timedelta(days=4)
    )  # past 5/6 of her cycle (3⅓ days before): the offer is due
    assert (await _plan(carebot))["due_offers"] == 0  # not yet: 4 days before
    carebot.clock.set(due - timedelta(days=3))
    assert (await _plan(carebot))["due_offers"] == 1
    assert (await _plan(carebot))["due_offers"] == 0  # and not twice
    offer = await anna.reply(timeout=15)
    assert offer.text.startswith(
        "Анна, здравствуйте! Кажется, подходит время для «Маникюр с покрытием»"
    )
    assert "обычно вы приходите примерно в эти дни" in offer.text
    slots = offer.button_texts[:-2]
    assert 1 <= len(slots) <= 6 and offer.button_texts[-2:] == ["🗓 Другое время", "Не сейчас"]
    # Her usual master first: Анна works Mon-Fri; the offer starts the day before her due date (Fri 11.12).
    assert slots[0] == "пт 11.12 в 10:00 · Анна", slots

    await anna.press(offer, slots[0])
    await anna.next("answerCallbackQuery")
    requested = await anna.next("editMessageText")
    assert (
        requested.text.startswith("Заявка отправлена ✨") and "пт 11.12 в 10:00" in requested.text
    )
    request = await master.reply()
    assert request.text.startswith(
        "🆕 <b>Новая запись</b>\nпт 11.12 в 10:00 — «Маникюр с покрытием»"
    )
    assert "Анна, +79161234567" in request.text and request.button_texts == [
        "✅ Принять",
        "✖️ Отклонить",
    ]
    notice = await olga.reply()
    assert (
        notice.text.startswith("📅 Запись: пт 11.12 в 10:00")
        and "Ждёт ответа мастера" in notice.text
    )
    assert not notice.markup

    await master.press(request, "Принять")
    await master.next("answerCallbackQuery")
    accepted = await master.next("editMessageText")
    assert accepted.text.startswith("✅ Принято (Мастер Анна)")
    confirmed = await anna.reply()
    assert confirmed.text.startswith("Анна, ваша запись подтверждена ✅")
    assert confirmed.button_texts == ["🔁 Перенести", "✖️ Отменить"]

    carebot.clock.set(moscow(date(2026, 12, 10), "10:00"))  # 24 hours before
    reminder = await anna.reply(timeout=15)
    assert reminder.text.startswith("Анна, напоминаем: завтра <b>пт 11.12 в 10:00</b>")
    assert reminder.button_texts == ["👍 Приду", "🔁 Перенести", "✖️ Отменить"]
    await anna.press(reminder, "Приду")
    assert (await anna.next("answerCallbackQuery")).params["text"] == "Спасибо, ждём вас! 💛"
    assert (await anna.next("editMessageReplyMarkup")).button_texts == [
        "🔁 Перенести",
        "✖️ Отменить",
    ]
    carebot.clock.set(moscow(date(2026, 12, 11), "08:00"))  # 2 hours before
    assert "сегодня <b>пт 11.12 в 10:00</b>" in (await anna.reply(timeout=15)).text

    carebot.clock.set(moscow(date(2026, 12, 11), "11:40"))
    await master.send("/today")
    day = await master.reply()
    assert day.text.startswith("📅 <b>пт 11.12</b> — Анна")
    assert "10:00–11:30 Маникюр с покрытием — Анна, +79161234567 👍 клиент подтвердил" in day.text
    assert day.button_texts == ["✅ 10:00 Анна: пришёл(а)", "🚫 10:00: не пришёл(а)"]
    await master.press(day, "✅")
    closed = await master.next("answerCallbackQuery")
    assert closed.params["text"] == "Визит закрыт, продажа 2000 ₽ записана."
    assert "✅ состоялся" in (await master.next("editMessageText")).text
    await master.press_data(day, day.buttons[0]["callback_data"])  # a second tap changes nothing
    assert (
        "уже закрыли: визит состоялся" in (await master.next("answerCallbackQuery")).params["text"]
    )
    assert await count(carebot.db, Purchase) == 4

    carebot.clock.advance(
        timedelta(hours=3)
    )  # the sale brings the survey (service, first) and the offer
    assert "как вам визит к мастеру Анна" in (await anna.reply(timeout=15)).text
    assert "спасибо, что были у нас" in (await anna.reply(timeout=15)).text


async def test_not_now_postpones_to_the_next_cycle(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    await _history(carebot, 6001, date(2026, 11, 2))  # one visit: the service's 21 days
    carebot.clock.set(moscow(date(2026, 11, 20), "11:00"))
    assert (await _plan(carebot))["due_offers"] == 1
    offer = await anna.reply(timeout=15)
    assert "обычно вы приходите" not in offer.text
    await anna.press(offer, "Не сейчас")
    await anna.next("answerCallbackQuery")
    assert (await anna.next("editMessageText")).text.startswith("Хорошо, не сейчас 🙂")
    await anna.press(offer, "Не сейчас")  # the same button again: nothing more is postponed
    await anna.next("answerCallbackQuery")
    carebot.clock.set(moscow(date(2026, 11, 24), "11:00"))
    assert (await _plan(carebot))["due_offers"] == 0
    carebot.clock.set(moscow(date(2026, 12, 11), "11:00"))  # the next cycle: due 14.12
    assert (await _plan(carebot))["due_offers"] == 1
    assert "Кажется, подходит время" in (await anna.reply(timeout=15)).text


async def _menu_to_times(person: Person, master: str = "Анна") -> Call:
    """/book → manicure → a master → the first day; returns the message with the times."""
    await person.send("/book")
    services = await person.reply()
    assert services.text == "На что хотите записаться?"
    assert services.button_texts == ["Маникюр с покрытием · 2000 ₽", "Педикюр · 2800 ₽"]
    await person.press(services, "Маникюр")
    await person.next("answerCallbackQuery")
    masters = await person.next("editMessageText")
    assert masters.button_texts == ["Любой мастер", "Анна", "Ольга", "← Назад"]
    await person.press(masters, master)
    await person.next("answerCallbackQuery")
    days = await person.next("editMessageText")
    await person.press(days, days.button_texts[0])
    await person.next("answerCallbackQuery")
    return await person.next("editMessageText")


async def _book(person: Person, times: Call, time: str) -> tuple[Call, Call]:
    """Pick a time from the list and confirm; returns the question and the answer."""
    await person.press(times, time)
    await person.next("answerCallbackQuery")
    ask = await person.next("editMessageText")
    await person.press(ask, "Записаться")
    await person.next("answerCallbackQuery")
    return ask, await person.next("editMessageText")


async def test_booking_from_the_menu_declined_by_staff_and_by_the_master(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    times = await _menu_to_times(
        anna
    )  # Mon 23.11, 12:00: 13:00 would run into Анна's break, so 14:30
    assert times.text.startswith("пн 23.11, мастер Анна: свободное время")
    assert times.button_texts[0] == "пн 23.11 в 14:30" and times.button_texts[-1] == "← Назад"
    ask, requested = await _book(anna, times, "в 15:00")
    assert (
        "Записать вас на «Маникюр с покрытием» (2000 ₽, 90 мин) к мастеру Анна — <b>пн 23.11 в 15:00</b>?"
        in ask.text
    )
    assert requested.text.startswith("Заявка отправлена")
    notice = await olga.reply()  # Анна has not joined the bot: the admin chat answers for her
    assert "Мастер ещё не подключён к боту" in notice.text
    assert notice.button_texts == ["✅ Принять", "✖️ Отклонить"]
    await olga.press(notice, "Отклонить")
    await olga.next("answerCallbackQuery")
    assert (await olga.next("editMessageText")).text.startswith("✖️ Отклонено (Ольга (@olga_admin))")
    declined = await anna.reply()
    assert declined.text.startswith(
        "Анна, к сожалению, мастер Анна не сможет принять вас пн 23.11 в 15:00."
    )
    assert declined.button_texts[-1] == "🗓 Другое время" and len(declined.button_texts) >= 2
    assert (
        declined.button_texts[0] == "пн 23.11 в 14:30 · Анна"
    )  # today's first and last free times, then days
    assert await count(carebot.db, BookingCell) == 0  # the declined time is free again

    master = await _join_master(olga, telegram)
    await anna.press(declined, declined.button_texts[0])
    await anna.next("answerCallbackQuery")
    assert (await anna.next("editMessageText")).text.startswith("Заявка отправлена")
    request = await master.reply()
    await olga.reply()  # the admin chat hears of it
    await master.press(request, "Отклонить")
    await master.next("answerCallbackQuery")
    ask_reason = await master.reply()
    assert ask_reason.text.startswith("Почему отклоняете запись") and ask_reason.button_texts == [
        "Отклонить без причины"
    ]
    await master.send("Заболела, простите <3")
    assert (await master.next("editMessageText")).text.startswith("✖️ Отклонено (Мастер Анна)")
    assert (await master.reply()).text.startswith("Готово: клиенту отправлен отказ")
    assert "«Заболела, простите &lt;3»" in (await anna.reply()).text
    await master.press(
        ask_reason, "без причины"
    )  # the prompt's button after the answer: nothing happens
    assert "уже отклонили" in (await master.next("answerCallbackQuery")).params["text"]


async def test_an_unanswered_request_goes_to_the_admin_chat(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    master = await _join_master(olga, telegram)
    await _book(anna, await _menu_to_times(anna), "в 17:30")
    request = await master.reply()
    await olga.reply()
    carebot.clock.advance(timedelta(hours=2))
    assert (await _plan(carebot))["escalations"] == 1
    escalated = await olga.reply(timeout=15)
    assert escalated.text.startswith("⏰ <b>Мастер Анна не ответил на заявку</b>")
    await olga.press(escalated, "Принять")
    await olga.next("answerCallbackQuery")
    await olga.next("editMessageText")
    assert (await anna.reply()).text.startswith("Анна, ваша запись подтверждена")
    await master.press(request, "Принять")  # too late: the staff answered
    assert (
        "уже приняли (Ольга (@olga_admin))"
        in (await master.next("answerCallbackQuery")).params["text"]
    )


async def test_cancel_and_reschedule(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    master = await _join_master(olga, telegram)
    await _book(anna, await _menu_to_times(anna), "в 16:00")
    await master.press(await master.reply(), "Принять")
    await master.next("answerCallbackQuery")
    await master.next("editMessageText")
    await olga.reply()
    confirmed = await anna.reply()

    await anna.press(confirmed, "Перенести")
    await anna.next("answerCallbackQuery")
    days = await anna.reply()
    assert days.text.startswith(
        "На какой день перенести «Маникюр с покрытием» (сейчас: пн 23.11 в 16:00"
    )
    await anna.press(days, "вт 24.11")
    await anna.next("answerCallbackQuery")
    ask, requested = await _book(anna, await anna.next("editMessageText"), "в 12:00")
    assert ask.text.startswith("Перенести запись на «Маникюр с покрытием»")
    assert "вт 24.11 в 12:00" in requested.text
    moved = await master.reply()
    assert moved.text.startswith("✖️ <b>Запись отменена</b> (клиент переносит)\nпн 23.11 в 16:00")
    assert (await master.reply()).text.startswith("🆕 <b>Новая запись</b>\nвт 24.11 в 12:00")
    await anna.press(confirmed, "Отменить")  # the old visit's button: it was moved
    assert "уже неактуальна" in (await anna.next("answerCallbackQuery")).params["text"]

    await anna.send("/book")
    menu = await anna.reply()
    assert (
        "• вт 24.11 в 12:00 — «Маникюр с покрытием», мастер Анна (ждёт подтверждения мастера)"
        in menu.text
    )
    await anna.press(menu, "отменить")
    await anna.next("answerCallbackQuery")
    sure = await anna.reply()
    assert sure.text.startswith("Отменить запись вт 24.11 в 12:00")
    await anna.press(sure, "Да, отменить")
    await anna.next("answerCallbackQuery")
    assert (await anna.next("editMessageText")).text.startswith("Запись вт 24.11 в 12:00 отменена")
    assert (await master.reply()).text.startswith("✖️ <b>Запись отменена</b>\nвт 24.11 в 12:00")
    async with carebot.db.transaction() as repos:
        states = [
            b.state for b in await repos.session.scalars(select(Booking).order_by(Booking.id))
        ]
    assert states == ["cancelled", "cancelled"]


async def test_two_customers_tap_the_same_slot(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    anna, boris = telegram.user(6001), telegram.user(6002, "Борис")
    await onboard(anna)
    await onboard(boris, phone="79161234568")
    anna_times, boris_times = await _menu_to_times(anna), await _menu_to_times(boris)
    slot = anna_times.button("в 16:00")["callback_data"].replace("pick", "book")
    await asyncio.gather(anna.press_data(anna_times, slot), boris.press_data(boris_times, slot))
    texts = []
    for person in (anna, boris):
        await person.next("answerCallbackQuery")
        texts.append((await person.next("editMessageText")).text)
    assert sorted(t.split()[0] for t in texts) == ["Заявка", "Ой,"]
    taken = next(t for t in texts if t.startswith("Ой, это время только что заняли"))
    assert "Вот что свободно пн 23.11" in taken
    assert await count(carebot.db, Booking) == 1


async def test_bad_taps_and_commands_change_nothing(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    master = await _join_master(olga, telegram)
    other = await _join_master(olga, telegram, "Ольга", 7002)
    times = await _menu_to_times(anna)
    past = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10:00 today, two hours ago
    await anna.press_data(
        times,
        SlotCallback(
            action=SlotAct.BOOK, service="manicure", master="anna", at=to_minutes(past)
        ).pack(),
    )
    await anna.next("answerCallbackQuery")
    assert (await anna.next("editMessageText")).text.startswith("Это время уже не успеть")
    for forged in (
        "slot:book:manicure:anna:12345:0",
        "slot:book:haircut:anna:0:0",
        "bk:times:manicure:anna:20261399:0",
        "booking:accept:1",
        "booking:cancel:1",
        "cycle:later:manicure:0",
        "slot:book:manicure",
    ):
        await anna.press_data(times, forged)
        answer = await anna.next("answerCallbackQuery")
        assert answer.params.get("show_alert"), (forged, answer.params)
    await _book(anna, times, "в 16:00")
    request = await master.reply()
    await olga.reply()
    await other.send("/today")
    other_day = await other.reply()
    assert "Записей нет." in other_day.text
    await other.press_data(
        other_day, request.buttons[0]["callback_data"]
    )  # another master's booking
    assert "Эта запись не к вам" in (await other.next("answerCallbackQuery")).params["text"]
    await anna.send("/today")
    assert (await anna.reply()).text.startswith("Эта команда — для мастеров и администраторов")
    await anna.send("/invite_master Анна")
    assert "для сотрудников" in (await anna.reply()).text
    await master.send("/dayoff 31.02")
    assert "Укажите день" in (await master.reply()).text
    await master.send("/dayoff 23.11")
    dayoff = await master.reply()
    assert dayoff.text.startswith("Выходной отмечен: Анна, пн 23.11")
    assert "16:00 Маникюр с покрытием — Анна, +79161234567" in dayoff.text
    await olga.send("/today")
    staff_day = await olga.reply()
    assert "16:00–17:30 Маникюр с покрытием · Анна — Анна" in staff_day.text
    async with carebot.db.transaction() as repos:
        assert [b.state for b in await repos.session.scalars(select(Booking))] == ["pending"]
