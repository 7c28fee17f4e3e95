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
from tests.conftest import RunningBot
from tests.e2e.helpers import count, customer_of, onboard
from tests.telegram_server import Call, Person, TelegramServer

pytestmark = pytest.mark.in_process

MOSCOW = ZoneInfo("Europe/Moscow")
LINK = re.compile(r"https://t\.me/carebot_test_bot\?start=(master_[\w-]+)")


def moscow(day: date, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=MOSCOW).astimezone(UTC)


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
    assert joined.template == "master_joined" and f"{name}!" in joined.text
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
    assert offer.template == "due_offer" and offer.text.startswith("Анна,")
    assert "«Маникюр с покрытием»" in offer.text
    assert "обычно вы приходите примерно в эти дни" in offer.text  # her own cycle's wording
    keyed = zip(offer.button_texts, offer.labels, strict=True)
    slots = [text for text, key in keyed if key == "slot_button"]
    assert 1 <= len(slots) <= 6  # then another time, not now, and (an offer) unsubscribe
    assert offer.labels[len(slots) :] == ["other_time", "not_now", "unsubscribe"]
    # Her usual master first: Анна works Mon-Fri; the offer starts the day before her due date (Fri 11.12).
    assert slots[0] == "пт 11.12 в 10:00 · Анна", slots

    await anna.press(offer, slots[0])
    await anna.next("answerCallbackQuery")
    requested = await anna.next("editMessageText")
    assert requested.template == "booking_requested" and "пт 11.12 в 10:00" in requested.text
    request = await master.reply()
    assert request.template == "booking_request"
    assert "пт 11.12 в 10:00 — «Маникюр с покрытием»" in request.text
    assert "Анна, +79161234567" in request.text
    assert request.labels == ["booking_accept", "booking_decline"]
    notice = await olga.reply()
    assert notice.template == "booking_new_staff" and "пт 11.12 в 10:00" in notice.text
    assert "Ждёт ответа мастера" in notice.text  # the booking's state, in words
    assert not notice.markup

    await master.press(request, "Принять")
    await master.next("answerCallbackQuery")
    accepted = await master.next("editMessageText")
    assert accepted.template == "booking_decided"
    assert accepted.text.startswith(
        "✅ Принято (Мастер Анна)"
    )  # accepted, not declined, and by whom
    confirmed = await anna.reply()
    assert confirmed.template == "booking_confirmed" and confirmed.text.startswith("Анна,")
    assert confirmed.labels == ["visit_reschedule", "visit_cancel"]

    carebot.clock.set(moscow(date(2026, 12, 10), "10:00"))  # 24 hours before
    reminder = await anna.reply(timeout=15)
    assert reminder.template == "booking_reminder" and reminder.text.startswith("Анна,")
    assert "завтра <b>пт 11.12 в 10:00</b>" in reminder.text  # the day before: "tomorrow"
    assert reminder.labels == ["visit_confirm", "visit_reschedule", "visit_cancel"]
    await anna.press(reminder, "Приду")
    assert (await anna.next("answerCallbackQuery")).template == "visit_confirmed_popup"
    assert (await anna.next("editMessageReplyMarkup")).labels == [
        "visit_reschedule",
        "visit_cancel",
    ]
    carebot.clock.set(moscow(date(2026, 12, 11), "08:00"))  # 2 hours before
    today = await anna.reply(timeout=15)
    assert today.template == "booking_reminder"
    assert "сегодня <b>пт 11.12 в 10:00</b>" in today.text  # the same day: "today"

    carebot.clock.set(moscow(date(2026, 12, 11), "11:40"))
    await master.send("/today")
    day = await master.reply()
    assert day.template == "master_day" and day.text.startswith("📅 <b>пт 11.12</b>")
    assert "10:00–11:30 Маникюр с покрытием — Анна, +79161234567 👍 клиент подтвердил" in day.text
    assert day.labels == ["visit_done", "visit_no_show"]
    assert all("10:00" in text for text in day.button_texts)
    await master.press(day, "✅")
    closed = await master.next("answerCallbackQuery")
    assert closed.template == "visit_closed" and "2000 ₽" in closed.text
    day_after = await master.next("editMessageText")
    assert day_after.template == "master_day" and "✅ состоялся" in day_after.text  # its new state
    await master.press_data(day, day.buttons[0]["callback_data"])  # a second tap changes nothing
    assert (await master.next("answerCallbackQuery")).template == "booking_already_decided"
    assert await count(carebot.db, Purchase) == 4

    carebot.clock.advance(
        timedelta(hours=3)
    )  # the sale brings the survey (service, first) and the offer
    survey = await anna.reply(timeout=15)
    assert survey.template == "survey_question" and "мастеру Анна" in survey.text
    assert (await anna.reply(timeout=15)).template == "thanks_offer"


async def test_not_now_postpones_to_the_next_cycle(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    await _history(carebot, 6001, date(2026, 11, 2))  # one visit: the service's 21 days
    carebot.clock.set(moscow(date(2026, 11, 20), "11:00"))
    assert (await _plan(carebot))["due_offers"] == 1
    offer = await anna.reply(timeout=15)
    assert offer.template == "due_offer"
    assert "обычно вы приходите" not in offer.text  # one visit: no cycle of her own to speak of
    await anna.press(offer, "Не сейчас")
    await anna.next("answerCallbackQuery")
    assert (await anna.next("editMessageText")).template == "offer_postponed"
    await anna.press(offer, "Не сейчас")  # the same button again: nothing more is postponed
    await anna.next("answerCallbackQuery")
    carebot.clock.set(moscow(date(2026, 11, 24), "11:00"))
    assert (await _plan(carebot))["due_offers"] == 0
    carebot.clock.set(moscow(date(2026, 12, 11), "11:00"))  # the next cycle: due 14.12
    assert (await _plan(carebot))["due_offers"] == 1
    assert (await anna.reply(timeout=15)).template == "due_offer"


async def _menu_to_times(person: Person, master: str = "Анна") -> Call:
    """/book → manicure → a master → the first day; returns the message with the times."""
    await person.send("/book")
    services = await person.reply()
    assert services.template == "booking_services"
    assert services.button_texts == ["Маникюр с покрытием · 2000 ₽", "Педикюр · 2800 ₽"]
    await person.press(services, "Маникюр")
    await person.next("answerCallbackQuery")
    masters = await person.next("editMessageText")
    assert masters.labels == ["any_master", None, None, "back"]
    assert masters.button_texts[1:3] == ["Анна", "Ольга"]
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
    assert times.template == "booking_times" and times.text.startswith("пн 23.11")
    assert "мастер Анна" in times.text
    assert times.button_texts[0] == "пн 23.11 в 14:30" and times.labels[-1] == "back"
    ask, requested = await _book(anna, times, "в 15:00")
    assert ask.template == "booking_confirm_ask"
    assert "«Маникюр с покрытием» (2000 ₽, 90 мин) к мастеру Анна" in ask.text
    assert "<b>пн 23.11 в 15:00</b>" in ask.text
    assert requested.template == "booking_requested"
    notice = await olga.reply()  # Анна has not joined the bot: the admin chat answers for her
    assert notice.template == "booking_new_staff"
    assert "Мастер ещё не подключён к боту" in notice.text  # why the admin chat is asked
    assert notice.labels == ["booking_accept", "booking_decline"]
    await olga.press(notice, "Отклонить")
    await olga.next("answerCallbackQuery")
    decided = await olga.next("editMessageText")
    assert decided.template == "booking_decided"
    assert decided.text.startswith("✖️ Отклонено (Ольга (@olga_admin))")  # declined, and by whom
    declined = await anna.reply()
    assert declined.template == "booking_declined" and declined.text.startswith("Анна,")
    assert "мастер Анна" in declined.text and "пн 23.11 в 15:00" in declined.text
    assert declined.labels[-1] == "other_time" and len(declined.button_texts) >= 2
    assert (
        declined.button_texts[0] == "пн 23.11 в 14:30 · Анна"
    )  # today's first and last free times, then days
    assert await count(carebot.db, BookingCell) == 0  # the declined time is free again

    master = await _join_master(olga, telegram)
    await anna.press(declined, declined.button_texts[0])
    await anna.next("answerCallbackQuery")
    assert (await anna.next("editMessageText")).template == "booking_requested"
    request = await master.reply()
    await olga.reply()  # the admin chat hears of it
    await master.press(request, "Отклонить")
    await master.next("answerCallbackQuery")
    ask_reason = await master.reply()
    assert ask_reason.template == "decline_reason_ask"
    assert ask_reason.labels == ["decline_no_reason"]
    await master.send("Заболела, простите <3")
    decided = await master.next("editMessageText")
    assert decided.template == "booking_decided"
    assert decided.text.startswith("✖️ Отклонено (Мастер Анна)")  # declined, and by whom
    assert (await master.reply()).template == "decline_sent"
    assert "«Заболела, простите &lt;3»" in (await anna.reply()).text
    await master.press(
        ask_reason, "без причины"
    )  # the prompt's button after the answer: nothing happens
    assert (await master.next("answerCallbackQuery")).template == "booking_already_decided"


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
    assert escalated.template == "booking_escalated" and "Мастер Анна" in escalated.text
    await olga.press(escalated, "Принять")
    await olga.next("answerCallbackQuery")
    await olga.next("editMessageText")
    assert (await anna.reply()).template == "booking_confirmed"
    await master.press(request, "Принять")  # too late: the staff answered
    late = await master.next("answerCallbackQuery")
    assert late.template == "booking_already_decided" and "(Ольга (@olga_admin))" in late.text


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
    assert days.template == "visit_reschedule_days"
    assert "«Маникюр с покрытием»" in days.text and "пн 23.11 в 16:00" in days.text
    await anna.press(days, "вт 24.11")
    await anna.next("answerCallbackQuery")
    ask, requested = await _book(anna, await anna.next("editMessageText"), "в 12:00")
    assert ask.template == "booking_confirm_ask"
    assert ask.text.startswith("Перенести запись на «Маникюр с покрытием»")  # a move, not a new one
    assert requested.template == "booking_requested" and "вт 24.11 в 12:00" in requested.text
    moved = await master.reply()
    assert moved.template == "booking_cancelled_staff" and "пн 23.11 в 16:00" in moved.text
    assert "(клиент переносит)" in moved.text  # why it was cancelled
    new = await master.reply()
    assert new.template == "booking_request" and "вт 24.11 в 12:00" in new.text
    await anna.press(confirmed, "Отменить")  # the old visit's button: it was moved
    assert (await anna.next("answerCallbackQuery")).template == "visit_not_active"

    await anna.send("/book")
    menu = await anna.reply()
    assert (
        "• вт 24.11 в 12:00 — «Маникюр с покрытием», мастер Анна (ждёт подтверждения мастера)"
        in menu.text
    )
    await anna.press(menu, "отменить")
    await anna.next("answerCallbackQuery")
    sure = await anna.reply()
    assert sure.template == "visit_cancel_ask" and "вт 24.11 в 12:00" in sure.text
    await anna.press(sure, "Да, отменить")
    await anna.next("answerCallbackQuery")
    cancelled = await anna.next("editMessageText")
    assert cancelled.template == "visit_cancelled" and "вт 24.11 в 12:00" in cancelled.text
    told = await master.reply()
    assert told.template == "booking_cancelled_staff" and "вт 24.11 в 12:00" in told.text
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
    answers = []
    for person in (anna, boris):
        await person.next("answerCallbackQuery")
        answers.append(await person.next("editMessageText"))
    assert sorted(str(a.template) for a in answers) == ["booking_requested", "booking_taken"]
    taken = next(a for a in answers if a.template == "booking_taken")
    assert "пн 23.11" in taken.text
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
    assert (await anna.next("editMessageText")).template == "booking_too_late"
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
    assert other_day.template == "master_day" and "Записей нет." in other_day.text  # an empty day
    await other.press_data(
        other_day, request.buttons[0]["callback_data"]
    )  # another master's booking
    assert (await other.next("answerCallbackQuery")).template == "booking_not_yours"
    await anna.send("/today")
    assert (await anna.reply()).template == "masters_only"
    await anna.send("/invite_master Анна")
    assert (await anna.reply()).template == "staff_only"
    await master.send("/dayoff 31.02")
    assert (await master.reply()).template == "dayoff_usage"
    await master.send("/dayoff 23.11")
    dayoff = await master.reply()
    assert dayoff.template == "dayoff_set" and "Анна, пн 23.11" in dayoff.text
    assert "16:00 Маникюр с покрытием — Анна, +79161234567" in dayoff.text
    await olga.send("/today")
    staff_day = await olga.reply()
    assert "16:00–17:30 Маникюр с покрытием · Анна — Анна" in staff_day.text
    async with carebot.db.transaction() as repos:
        assert [b.state for b in await repos.session.scalars(select(Booking))] == ["pending"]
