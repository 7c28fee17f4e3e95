"""The waitlist end to end: joining from /book's full day and from /waitlist, a cancelled time
offered to the waiting customers, two of them racing for it, leaving, an entry's end, the
quiet hours' choice for a time too soon to wait for the morning; and "we missed you" after a
no-show."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.models import Booking, BookingSource, BookingState, WaitlistEntry, WaitlistOffer
from bot.services.booking import BookOutcome
from bot.services.slots import cells
from bot.services.waitlist import DayPart, JoinOutcome
from tests.conftest import ADMIN_CHAT, RunningBot
from tests.e2e.helpers import (
    book_days,
    bot_on,
    business_plus,
    count,
    customer_of,
    onboard,
    reply_of,
)
from tests.harness import InProcessBot
from tests.telegram_server import PROVIDER_TOKEN, Call, Person, TelegramServer

pytestmark = pytest.mark.in_process

MOSCOW = ZoneInfo("Europe/Moscow")
MONDAY = date(2026, 11, 23)  # the tests' clock: Mon 23.11, 12:00 in Moscow
TUESDAY = date(2026, 11, 24)


def moscow(day: date, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=MOSCOW).astimezone(UTC)


async def press_label(person: Person, message: Call, label: str, edit: bool = True) -> Call:
    """Tap the button made from this label; return the message's edit (or the press's answer)."""
    await person.press_data(message, message.buttons[message.labels.index(label)]["callback_data"])
    answer = await person.next("answerCallbackQuery")
    return await person.next("editMessageText") if edit else answer


async def book(bot: RunningBot | InProcessBot, tg_user_id: int, at: datetime) -> int:
    assert bot.app is not None
    result = await bot.app.booking.book(tg_user_id, "manicure", "anna", at, source="menu")
    assert result.outcome is BookOutcome.BOOKED and result.booking, result
    return result.booking.id


async def rows(bot: RunningBot | InProcessBot, model: Any) -> list[Any]:
    async with bot.db.transaction() as repos:
        return list(await repos.session.scalars(select(model).order_by(model.id)))


async def fill_tuesday_but(carebot: RunningBot, tg_user_id: int, *free: str) -> None:
    """Анна's Tuesday taken all day (one long visit of this customer's), but these cells."""
    customer = await customer_of(carebot.db, tg_user_id)
    assert customer is not None
    start, end = moscow(TUESDAY, "10:00"), moscow(TUESDAY, "19:00")
    kept = {moscow(TUESDAY, hhmm) for hhmm in free}
    async with carebot.db.transaction() as repos:
        await repos.bookings.add(
            Booking(
                customer_id=customer.id,
                service_id="pedicure",
                master_id="anna",
                starts_at=start,
                ends_at=end,
                state=BookingState.CONFIRMED,
                source=BookingSource.MENU,
                created_at=carebot.clock.now(),
                answer_due_at=start,
            ),
            [c for c in cells(start, 9 * 60, 30) if c not in kept],
        )


async def test_a_full_day_waits_and_the_cancelled_time_goes_to_the_first_to_tap(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    anna, boris = telegram.user(6001), telegram.user(6002, "Борис")
    vera, gleb = telegram.user(6003, "Вера"), telegram.user(6004, "Глеб")
    for person, phone in ((anna, "79161234567"), (boris, "79161234568")):
        await onboard(person, phone=phone)
    await onboard(vera, phone="79161234569")
    await onboard(gleb, phone="79161234570")
    await fill_tuesday_but(carebot, 6003, "15:00", "15:30", "16:00")
    visit = await book(carebot, 6004, moscow(TUESDAY, "15:00"))  # the day is full now

    # Анна: /book → manicure → Анна: no Tuesday; she waits for a time instead
    days = await book_days(anna)
    assert days.template == "booking_days" and "вт 24.11" not in days.button_texts
    assert days.labels[-2:] == ["waitlist_join", "back"]
    ranges = await press_label(anna, days, "waitlist_join")
    assert ranges.template == "waitlist_days" and "мастер Анна" in ranges.text
    assert ranges.button_texts == ["Только сегодня", "До ср 25.11", "До вс 29.11", "До вс 06.12"]
    await anna.press(ranges, "До ср 25.11")
    await anna.next("answerCallbackQuery")
    parts = await anna.next("editMessageText")
    assert parts.template == "waitlist_time" and "пн 23.11 – ср 25.11" in parts.text
    joined = await press_label(anna, parts, "waitlist_part_any")
    assert joined.template == "waitlist_joined"
    assert "«Маникюр с покрытием», мастер Анна, пн 23.11 – ср 25.11" in joined.text

    # Борис through /waitlist: any master, the afternoon, a week
    await boris.send("/waitlist")
    empty = await boris.reply()
    assert empty.template == "waitlist_list" and empty.labels == ["waitlist_add"]
    chosen = await press_label(boris, empty, "waitlist_add")
    assert chosen.template == "waitlist_services"
    await boris.press(chosen, "Маникюр")
    await boris.next("answerCallbackQuery")
    masters = await boris.next("editMessageText")
    assert masters.template == "waitlist_masters"
    ranges = await press_label(boris, masters, "any_master")
    await boris.press(ranges, "До вс 29.11")
    await boris.next("answerCallbackQuery")
    parts = await boris.next("editMessageText")
    joined = await press_label(boris, parts, "waitlist_part_afternoon")
    assert joined.template == "waitlist_joined" and "мастер" not in joined.text
    await anna.quiet()

    # Глеб cancels: the time is offered to both at once
    assert carebot.app is not None
    assert (await carebot.app.booking.cancel(6004, visit)).outcome.value == "done"
    offers = [await anna.reply(), await boris.reply()]
    for offer in offers:
        assert offer.template == "waitlist_offer" and offer.labels == ["waitlist_take"]
        assert "«Маникюр с покрытием», мастер Анна, <b>вт 24.11 в 15:00</b>" in offer.text
    # both tap at once: one gets it, the other hears it is gone
    await asyncio.gather(
        *(
            person.press(offer, "Записаться")
            for person, offer in zip((anna, boris), offers, strict=True)
        )
    )
    answers = []
    for person in (anna, boris):
        await person.next("answerCallbackQuery")
        answers.append(await person.next("editMessageText"))
    assert sorted(str(a.template) for a in answers) == ["booking_requested", "waitlist_gone"]
    winner, loser = (anna, boris) if answers[0].template == "booking_requested" else (boris, anna)
    async with carebot.db.transaction() as repos:
        taken = list(
            await repos.session.scalars(
                select(Booking).where(Booking.starts_at == moscow(TUESDAY, "15:00"))
            )
        )
    assert [b.state for b in taken] == ["cancelled", "pending"]
    assert taken[1].customer_id == (await customer_of(carebot.db, winner.id)).id  # type: ignore[union-attr]
    # a second tap of the loser's: still gone, nothing booked
    await loser.press(offers[0 if loser is anna else 1], "Записаться")
    again = await loser.next("answerCallbackQuery")
    assert again.template == "waitlist_gone_short" and again.params.get("show_alert")

    # the winner's entry is done; the loser still waits, and leaves
    await winner.send("/waitlist")
    assert (await winner.reply()).labels == ["waitlist_add"]
    await loser.send("/waitlist")
    mine = await loser.reply()
    assert mine.template == "waitlist_list" and mine.labels == ["waitlist_leave", "waitlist_add"]
    assert "«Маникюр с покрытием»" in mine.text
    await loser.press_data(mine, mine.buttons[0]["callback_data"])
    assert (await loser.next("answerCallbackQuery")).template == "waitlist_left"
    left = await loser.next("editMessageText")
    assert left.template == "waitlist_list" and left.labels == ["waitlist_add"]
    await loser.press_data(mine, mine.buttons[0]["callback_data"])  # the same button again
    assert (await loser.next("answerCallbackQuery")).params.get("show_alert")
    assert await count(carebot.db, WaitlistEntry) == 0
    # someone else's offer, or a forged one, books nothing
    await loser.press_data(mine, "wla:take:999")
    assert (await loser.next("answerCallbackQuery")).params.get("show_alert")
    await loser.press_data(mine, "wl:j:manicure:anna:20261123:20301231:any")
    assert (await loser.next("answerCallbackQuery")).params.get("show_alert")
    assert await count(carebot.db, WaitlistEntry) == 0


async def test_an_entry_ends_after_its_last_day(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    await anna.send("/waitlist")
    chosen = await press_label(anna, await anna.reply(), "waitlist_add")
    await anna.press(chosen, "Педикюр")  # one master: straight to the days
    await anna.next("answerCallbackQuery")
    ranges = await anna.next("editMessageText")
    assert ranges.template == "waitlist_days" and "мастер Ольга" in ranges.text
    await anna.press(ranges, "Только сегодня")
    await anna.next("answerCallbackQuery")
    joined = await press_label(anna, await anna.next("editMessageText"), "waitlist_part_evening")
    assert joined.template == "waitlist_joined" and "пн 23.11." in joined.text
    assert carebot.app is not None
    carebot.clock.set(moscow(MONDAY, "23:50"))
    await carebot.app.planners.run_all()
    assert await count(carebot.db, WaitlistEntry) == 1  # its day is not over
    carebot.clock.set(moscow(TUESDAY, "00:10"))
    await carebot.app.planners.run_all()
    assert await count(carebot.db, WaitlistEntry) == 0
    await anna.send("/waitlist")
    assert (await anna.reply()).labels == ["waitlist_add"]


@pytest.mark.parametrize("choice", ["send", "skip"])
async def test_at_night_a_soon_time_is_sent_or_skipped_and_a_later_one_waits_for_the_morning(
    choice: str, telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    business = business_plus(
        tmp_path, f'\n[waitlist]\nsoon_hours = 4\nsoon_in_quiet_hours = "{choice}"\n'
    )
    async with bot_on(telegram, database_url, clock, business) as bot:
        assert bot.app is not None
        anna, vera = telegram.user(6001), telegram.user(6003, "Вера")
        gleb = telegram.user(6004, "Глеб")
        await onboard(anna)
        await onboard(vera, phone="79161234569")
        await onboard(gleb, phone="79161234570")
        soon = await book(bot, 6003, moscow(TUESDAY, "11:00"))
        later = await book(bot, 6004, moscow(TUESDAY, "17:00"))
        waiting = await bot.app.waitlist.join(6001, "manicure", None, TUESDAY, TUESDAY, DayPart.ANY)
        assert waiting.outcome is JoinOutcome.JOINED
        bot.clock.set(moscow(MONDAY, "23:30"))  # quiet hours: 21:00-10:00
        await bot.app.booking.cancel(6003, soon)  # 11:00: within 4 hours of 10:00
        await bot.app.booking.cancel(6004, later)  # 17:00 can wait for the morning
        if choice == "send":
            night = await anna.reply()
            assert night.template == "waitlist_offer" and "вт 24.11 в 11:00" in night.text
        await anna.quiet()
        bot.clock.set(moscow(TUESDAY, "10:00"))
        morning = await anna.reply(timeout=15)
        assert morning.template == "waitlist_offer" and "вт 24.11 в 17:00" in morning.text
        await anna.quiet()
        async with bot.db.transaction() as repos:
            offered = [o.starts_at for o in await repos.session.scalars(select(WaitlistOffer))]
        assert sorted(offered) == (
            [moscow(TUESDAY, "11:00"), moscow(TUESDAY, "17:00")]
            if choice == "send"
            else [moscow(TUESDAY, "17:00")]
        )


async def test_we_missed_you_the_day_after_a_no_show_once(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    olga = telegram.staff(9001, "Ольга", ADMIN_CHAT, username="olga_admin")
    anna = telegram.user(6001)
    await onboard(anna)
    await book(carebot, 6001, moscow(MONDAY, "15:00"))
    assert (await olga.reply()).template == "booking_new_staff"
    carebot.clock.set(moscow(MONDAY, "17:00"))
    await olga.send("/today")
    day = await olga.reply()
    assert day.template == "master_day"
    await olga.press_data(day, day.buttons[day.labels.index("visit_no_show")]["callback_data"])
    assert (await olga.next("answerCallbackQuery")).template == "visit_closed"
    assert carebot.app is not None
    await carebot.app.planners.run_all()
    await anna.quiet()  # not the same day
    carebot.clock.set(moscow(TUESDAY, "08:00"))
    await carebot.app.planners.run_all()
    await anna.quiet()  # the quiet hours: it waits for 10:00
    carebot.clock.set(moscow(TUESDAY, "10:00"))
    missed = await anna.reply(timeout=15)
    assert missed.template == "missed_you" and "«Маникюр с покрытием»" in missed.text
    assert "мастера Анна" in missed.text and missed.labels == ["missed_you_book"]
    carebot.clock.set(moscow(TUESDAY, "15:00"))
    await carebot.app.planners.run_all()  # once: the planner runs again, nothing more
    await anna.quiet()
    await anna.press(missed, "Выбрать другое время")
    await anna.next("answerCallbackQuery")
    menu = await anna.next("editMessageText")
    assert menu.template == "booking_masters"  # /book, at the service's masters


async def test_no_missed_you_for_someone_who_booked_again(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    assert carebot.app is not None
    first = await book(carebot, 6001, moscow(MONDAY, "15:00"))
    carebot.clock.set(moscow(MONDAY, "17:00"))
    async with carebot.db.transaction() as repos:
        visit = await repos.bookings.get(first, for_update=True)
        assert visit is not None
        visit.state = BookingState.NO_SHOW  # as the master's button records it
    await book(carebot, 6001, moscow(TUESDAY + timedelta(days=1), "12:00"))  # booked again
    carebot.clock.set(moscow(TUESDAY, "10:00"))
    await carebot.app.planners.run_all()
    await anna.quiet()


async def test_an_unpaid_hold_goes_to_the_waitlist_and_its_taker_pays_the_deposit(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    section = '\n[deposits]\npolicy = "everyone"\namount = 500\nhold_minutes = 15\n'
    async with bot_on(
        telegram,
        database_url,
        clock,
        business_plus(tmp_path, section),
        payment_provider_token=PROVIDER_TOKEN,
    ) as bot:
        assert bot.app is not None
        anna, boris, vera = telegram.user(6001), telegram.user(6002, "Борис"), telegram.user(6003)
        await onboard(anna)
        await onboard(boris, phone="79161234568")
        await onboard(vera, phone="79161234569")
        for user in (6001, 6002):
            joined = await bot.app.waitlist.join(
                user, "manicure", None, TUESDAY, TUESDAY, DayPart.ANY
            )
            assert joined.outcome is JoinOutcome.JOINED
        held = await bot.app.booking.book(
            6003, "manicure", "anna", moscow(TUESDAY, "15:00"), source="menu"
        )
        assert held.outcome is BookOutcome.HELD  # Вера holds it while she pays... and does not
        await anna.quiet()
        bot.clock.advance(timedelta(minutes=16))
        assert (await bot.app.planners.run_all())["deposit_holds"] == 1
        offers = [await anna.reply(), await boris.reply()]
        assert all(o.template == "waitlist_offer" and "вт 24.11 в 15:00" in o.text for o in offers)
        await anna.press(offers[0], "Записаться")  # the deposit flow, as any booking's
        await anna.next("answerCallbackQuery")
        hold = await anna.next("editMessageText")
        assert hold.template == "deposit_hold" and "<b>500\u00a0₽</b>" in hold.text
        invoice = await anna.next("sendInvoice")
        await anna.pay(invoice)
        confirmed = await reply_of(anna, "booking_confirmed")
        assert "вт 24.11 в 15:00" in confirmed.text
        await boris.press(offers[1], "Записаться")
        await boris.next("answerCallbackQuery")
        assert (await boris.next("editMessageText")).template == "waitlist_gone"
        assert [e.customer_id for e in await rows(bot, WaitlistEntry)] == [
            (await customer_of(bot.db, 6002)).id  # type: ignore[union-attr]
        ]


async def test_a_day_off_taken_back_offers_its_times_one_a_customer(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    olga = telegram.staff(9001, "Ольга", ADMIN_CHAT, username="olga_admin")
    anna, boris = telegram.user(6001), telegram.user(6002, "Борис")
    await onboard(anna)
    await onboard(boris, phone="79161234568")
    await olga.send("/dayoff Анна 24.11")
    assert (await olga.reply()).template == "dayoff_set"
    assert carebot.app is not None
    join = carebot.app.waitlist.join
    assert (await join(6001, "manicure", "anna", TUESDAY, TUESDAY, DayPart.ANY)).entry
    assert (await join(6002, "manicure", None, MONDAY, TUESDAY, DayPart.EVENING)).entry
    await olga.send("/workday Анна 24.11")
    back = await olga.reply()
    assert (
        back.template == "dayoff_back" and "Выходной отменён: Анна работает вт 24.11" in back.text
    )
    first = await anna.reply()
    assert first.template == "waitlist_offer" and "<b>вт 24.11 в 10:00</b>" in first.text
    evening = await boris.reply()
    assert evening.template == "waitlist_offer" and "<b>вт 24.11 в 17:00</b>" in evening.text
    await anna.quiet()  # one offer of that day each, not one per half hour
    await boris.quiet()
    await olga.send("/workday Анна 24.11")  # no day off any more: nothing happens
    again = await olga.reply()
    assert again.template == "dayoff_back" and "ничего не изменилось" in again.text
    await anna.quiet()
