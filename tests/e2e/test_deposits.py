"""Deposits and the no-show policy, end to end against the Bot API test server: a held time paid
and confirmed (and counted into the visit's sale), a hold that runs out, a payment that comes
after its time was lost, cancel and move closed inside the window and a late cancellation by
staff, a no-show that switches the policy on; the card's "only with deposit"."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.models import Booking, BookingCell, BookingState, Deposit, DepositState
from tests.e2e.helpers import book_days, bot_on, business_plus, onboard, reply_of, tap
from tests.e2e.test_booking import _book, _join_master, _menu_to_times, _plan, moscow
from tests.harness import InProcessBot
from tests.telegram_server import PROVIDER_TOKEN, Call, Person, TelegramServer

MONDAY = date(2026, 11, 23)  # the tests' today (12:00 in Moscow)


def deposits(policy: str, extra: str = "") -> str:
    return f'\n[deposits]\npolicy = "{policy}"\namount = 500\nhold_minutes = 15\n{extra}'


async def running(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path, section: str
) -> AsyncIterator[InProcessBot]:
    async with bot_on(
        telegram,
        database_url,
        clock,
        business_plus(tmp_path, section),
        payment_provider_token=PROVIDER_TOKEN,
    ) as bot:
        yield bot


@pytest.fixture
async def everyone(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> AsyncIterator[InProcessBot]:
    async for bot in running(telegram, database_url, clock, tmp_path, deposits("everyone")):
        yield bot


@pytest.fixture
async def no_shows(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> AsyncIterator[InProcessBot]:
    section = deposits("no_shows", "no_show_threshold = 1\ncancel_window_hours = 24\n")
    async for bot in running(telegram, database_url, clock, tmp_path, section):
        yield bot


async def hold(person: Person, at: str = "в 15:00", master: str = "Анна") -> tuple[Call, Call]:
    """/book → manicure → the master → today → a time → confirm: the hold's message and the
    invoice."""
    _, held = await _book(person, await _menu_to_times(person, master), at)
    assert held.template == "deposit_hold", held.text
    return held, await person.next("sendInvoice")


async def deposit_rows(bot: InProcessBot) -> list[Deposit]:
    async with bot.db.transaction() as repos:
        return list(await repos.session.scalars(select(Deposit).order_by(Deposit.id)))


async def bookings(bot: InProcessBot) -> list[Booking]:
    async with bot.db.transaction() as repos:
        return list(await repos.session.scalars(select(Booking).order_by(Booking.id)))


async def test_a_deposit_paid_confirms_the_visit_and_counts_into_its_sale(
    everyone: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    master = await _join_master(olga, telegram)
    held, invoice = await hold(anna)
    assert "<b>500\u00a0₽</b>" in held.text and "15 минут" in held.text
    assert "у всех" in held.text  # why: everyone pays for this service
    assert (
        invoice.params["currency"] == "RUB" and invoice.params["provider_token"] == PROVIDER_TOKEN
    )
    assert invoice.params["prices"] == [{"label": "Предоплата визита", "amount": 50000}]
    assert invoice.params["title"] == "Предоплата: Маникюр с покрытием"
    assert "пн 23.11 в 15:00" in invoice.params["description"]
    (booking,) = await bookings(everyone)
    assert booking.state == BookingState.HELD  # the time is taken while she pays
    await master.quiet()  # nothing to the master before the money

    payment = await anna.pay(invoice)
    confirmed = await reply_of(anna, "booking_confirmed")
    assert "Предоплата 500\u00a0₽ получена" in confirmed.text
    assert confirmed.labels == ["visit_reschedule", "visit_cancel"]
    told = await master.reply()
    assert told.template == "deposit_paid_staff" and "пн 23.11 в 15:00" in told.text
    assert (await olga.reply()).template == "deposit_paid_staff"
    (deposit,) = await deposit_rows(everyone)
    assert deposit.state == DepositState.PAID and deposit.paid_minor == 50000
    assert deposit.telegram_charge_id == payment["telegram_payment_charge_id"]
    assert deposit.provider_charge_id == payment["provider_payment_charge_id"]
    (booking,) = await bookings(everyone)
    assert booking.state == BookingState.CONFIRMED and booking.decided_by == "deposit"
    assert not telegram.unanswered_pre_checkouts

    # the same payment told twice records nothing more
    await anna.server.push({"message": anna._message(successful_payment={**payment})})
    await anna.quiet()
    assert len(await deposit_rows(everyone)) == 1

    everyone.clock.set(moscow(MONDAY, "16:40"))
    await master.send("/today")
    day = await master.reply()
    await master.press(day, "✅")
    await master.next("answerCallbackQuery")
    await master.next("editMessageText")
    counted = await reply_of(olga, "deposit_counted_staff")
    assert "500\u00a0₽" in counted.text and "к оплате 1\u00a0500\u00a0₽" in counted.text
    (deposit,) = await deposit_rows(everyone)
    assert deposit.state == DepositState.COUNTED and deposit.purchase_id is not None


async def test_an_unpaid_hold_runs_out_and_the_time_is_free_again(
    everyone: InProcessBot, telegram: TelegramServer
) -> None:
    anna, boris = telegram.user(6001), telegram.user(6002, "Борис")
    await onboard(anna)
    await onboard(boris, phone="79161234568")
    _, invoice = await hold(anna)
    times = await _menu_to_times(boris)
    assert "пн 23.11 в 15:00" not in times.button_texts  # held for Анна
    everyone.clock.advance(timedelta(minutes=14))
    assert (await _plan(everyone))["deposit_holds"] == 0
    everyone.clock.advance(timedelta(minutes=2))
    assert (await _plan(everyone))["deposit_holds"] == 1
    expired = await anna.reply(timeout=15)
    assert expired.template == "deposit_expired" and "пн 23.11 в 15:00" in expired.text
    assert expired.labels == ["book_again"]
    (booking,) = await bookings(everyone)
    assert booking.state == BookingState.CANCELLED and booking.reason == "unpaid"
    async with everyone.db.transaction() as repos:
        assert not list(await repos.session.scalars(select(BookingCell)))
    (deposit,) = await deposit_rows(everyone)
    assert deposit.state == DepositState.EXPIRED
    # paying the old invoice now: refused politely, nothing charged
    query = await anna.checkout(invoice)
    assert query.answered is False and "время брони истекло" in str(query.error_message)
    # and the time is free for someone else
    again = await _menu_to_times(boris)
    assert "пн 23.11 в 15:00" in again.button_texts


async def test_a_payment_after_the_time_was_lost_is_refund_due(
    everyone: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    """Approved while the hold was hers, charged after it ran out and someone else took the time:
    never two visits in one time; the payment is recorded as refund due, staff are told."""
    anna, boris = telegram.user(6001), telegram.user(6002, "Борис")
    await onboard(anna)
    await onboard(boris, phone="79161234568")
    _, invoice = await hold(anna)
    query = await anna.checkout(invoice)
    assert query.answered is True
    everyone.clock.advance(timedelta(minutes=16))
    assert (await _plan(everyone))["deposit_holds"] == 1
    assert (await anna.reply(timeout=15)).template == "deposit_expired"
    await hold(boris)  # the time is Борис's now (held while he pays)

    payment = await anna.complete_payment(query)
    late = await anna.reply()
    assert late.template == "deposit_late_paid" and "500\u00a0₽" in late.text
    assert "пн 23.11 в 15:00" in late.text and "вернём" in late.text
    refund = await reply_of(olga, "deposit_refund_staff")
    assert "Верните предоплату вручную" in refund.text and "500\u00a0₽" in refund.text
    assert payment["telegram_payment_charge_id"] in refund.text
    assert payment["provider_payment_charge_id"] in refund.text
    deposits_now = await deposit_rows(everyone)
    assert [(d.state, d.reason) for d in deposits_now] == [
        (DepositState.REFUND_DUE, "hold_lost"),
        (DepositState.AWAITING, None),
    ]
    assert deposits_now[0].telegram_charge_id == payment["telegram_payment_charge_id"]
    # one visit in that time: Борис's hold; Анна's stays cancelled
    assert [b.state for b in await bookings(everyone)] == [
        BookingState.CANCELLED,
        BookingState.HELD,
    ]
    async with everyone.db.transaction() as repos:
        owners = {c.booking_id for c in await repos.session.scalars(select(BookingCell))}
    assert owners == {(await bookings(everyone))[1].id}


async def test_a_late_payment_takes_back_a_time_still_free(
    everyone: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    _, invoice = await hold(anna)
    query = await anna.checkout(invoice)
    everyone.clock.advance(timedelta(minutes=16))
    await _plan(everyone)
    assert (await anna.reply(timeout=15)).template == "deposit_expired"
    await anna.complete_payment(query)
    assert (await reply_of(anna, "booking_confirmed")).template == "booking_confirmed"
    (booking,) = await bookings(everyone)
    assert booking.state == BookingState.CONFIRMED
    (deposit,) = await deposit_rows(everyone)
    assert deposit.state == DepositState.PAID


async def test_late_cancel_is_closed_to_the_customer_and_counts_when_staff_cancel(
    no_shows: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    _, requested = await _book(anna, await _menu_to_times(anna), "в 15:00")
    assert requested.template == "booking_requested"  # no misses yet: no deposit
    request = await olga.reply()
    await olga.press(request, "Принять")
    await olga.next("answerCallbackQuery")
    await olga.next("editMessageText")
    confirmed = await anna.reply()
    for button in ("Отменить", "Перенести"):  # three hours before: inside the 24-hour window
        await anna.press(confirmed, button)
        await anna.next("answerCallbackQuery")
        closed = await anna.reply()
        assert closed.template == "visit_closed_call"
        assert "позвоните нам: +7 900 000-00-00" in closed.text
    (booking,) = await bookings(no_shows)
    assert booking.state == BookingState.CONFIRMED  # nothing changed

    await olga.send("/today")
    day = await olga.reply()
    assert day.labels[-1] == "visit_staff_cancel"
    await olga.press(day, "✖️ Отменить 15:00")
    answer = await olga.next("answerCallbackQuery")
    assert answer.template == "visit_staff_cancelled" and "поздняя отмена" in answer.text
    assert (await olga.next("editMessageText")).template == "master_day"
    told = await olga.reply()
    assert told.template == "booking_cancelled_staff" and "поздняя отмена" in told.text
    (booking,) = await bookings(no_shows)
    assert booking.state == BookingState.CANCELLED and booking.reason == "late"
    # the threshold (1) reached: she is told, once, and the next booking asks a deposit
    policy = await anna.reply(timeout=15)
    assert policy.template == "deposit_policy_on" and "предоплату" in policy.text
    held, _ = await hold(anna, "в 17:30")
    assert "раньше визиты срывались" in held.text


async def test_a_no_show_switches_the_deposit_on_and_keeps_a_paid_one(
    no_shows: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    master = await _join_master(olga, telegram)
    await _book(anna, await _menu_to_times(anna), "в 15:00")
    await master.press(await master.reply(), "Принять")
    await master.next("answerCallbackQuery")
    await master.next("editMessageText")
    await olga.reply()
    await anna.reply()  # confirmed
    no_shows.clock.set(moscow(MONDAY, "16:40"))
    await master.send("/today")
    day = await master.reply()
    await master.press(day, "не пришёл")
    await master.next("answerCallbackQuery")
    await master.next("editMessageText")
    policy = await reply_of(anna, "deposit_policy_on")
    assert "визит сорвался" in policy.text

    # the next booking (tomorrow) asks a deposit; paid, then missed again: the deposit is kept
    days = await book_days(anna)
    await anna.press(days, "вт 24.11")
    await anna.next("answerCallbackQuery")
    _, held = await _book(anna, await anna.next("editMessageText"), "в 12:00")
    assert held.template == "deposit_hold" and "раньше визиты срывались" in held.text
    await anna.pay(await anna.next("sendInvoice"))
    await reply_of(anna, "booking_confirmed")
    assert (await master.reply()).template == "deposit_paid_staff"
    await olga.reply()
    no_shows.clock.set(moscow(MONDAY + timedelta(days=1), "14:00"))
    await master.send("/today")
    day = await master.reply()
    await master.press(day, "не пришёл")
    await master.next("answerCallbackQuery")
    kept = await reply_of(olga, "deposit_kept_staff")
    assert "остаётся у вас" in kept.text and "клиент не пришёл" in kept.text
    assert kept.labels == ["deposit_refund_button"]
    deposit = (await deposit_rows(no_shows))[-1]
    assert deposit.state == DepositState.KEPT and deposit.reason == "no_show"
    # the owner decides to refund it after all: recorded, to be refunded by hand
    await olga.press(kept, "Вернуть предоплату")
    recorded = await olga.next("answerCallbackQuery")
    assert recorded.template == "deposit_refund_recorded" and "500\u00a0₽" in recorded.text
    assert not (await olga.next("editMessageReplyMarkup")).buttons
    deposit = (await deposit_rows(no_shows))[-1]
    assert deposit.state == DepositState.REFUND_DUE and deposit.reason == "staff"
    await olga.press_data(kept, kept.buttons[0]["callback_data"])  # again: nothing more
    assert (await olga.next("answerCallbackQuery")).template == "deposit_refund_already"


async def test_staff_mark_a_customer_only_with_deposit(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path, olga: Person
) -> None:
    section = deposits("first_visit", 'services = ["manicure"]\n')
    async for bot in running(telegram, database_url, clock, tmp_path, section):
        anna = telegram.user(6001)
        await onboard(anna)
        assert bot.app is not None
        customer = await bot.app.customers.find(6001)
        assert customer is not None
        await olga.send("/find Анна")
        card = await olga.reply()
        assert card.labels[-1] == "staff_deposit"
        await olga.press(card, "Только с предоплатой")
        marked = await olga.next("answerCallbackQuery")
        assert marked.template == "deposit_marked" and marked.params.get("show_alert")
        assert await bot.app.deposits.is_marked(customer.id)
        held, _ = await hold(anna)  # first visit anyway; the mark says why
        assert "так договорились с администратором" in held.text
        await olga.press(card, "Только с предоплатой")
        assert (await olga.next("answerCallbackQuery")).template == "deposit_unmarked"
        assert not await bot.app.deposits.is_marked(customer.id)


async def test_my_data_shows_the_deposits_and_forget_keeps_only_the_money_record(
    everyone: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    """/mydata lists each deposit (amount, state, the payment's ids) and the staff's mark; /forget
    deletes the mark and unlinks the payments, which stay as money records (accounting)."""
    anna = telegram.user(6001)
    await onboard(anna)
    _, invoice = await hold(anna)
    payment = await anna.pay(invoice)
    await reply_of(anna, "booking_confirmed")
    assert everyone.app is not None
    customer = await everyone.app.customers.find(6001)
    assert customer is not None
    await everyone.app.deposits.toggle_mark(customer.id, 9001, "Ольга")
    exporter = everyone.app.dp.workflow_data["exporter"]
    mine = await exporter.my_data(6001)
    document = json.loads(mine.document)
    (deposit,) = document["deposits"]
    assert deposit["amount"] == "500.00" and deposit["currency"] == "RUB"
    assert deposit["state"] == "paid" and deposit["service"]["id"] == "manicure"
    assert deposit["telegram_payment_id"] == payment["telegram_payment_charge_id"]
    assert [m["by"] for m in document["only_with_deposit"]] == ["Ольга"]

    await anna.send("/forget")
    await tap(anna, await anna.reply(), "Да", "editMessageText")
    assert not await everyone.app.deposits.is_marked(customer.id)
    (kept,) = await deposit_rows(everyone)
    assert kept.customer_id is None  # the money record stays, naming nobody
    assert kept.telegram_charge_id == payment["telegram_payment_charge_id"]
    assert kept.state == DepositState.REFUND_DUE and kept.reason == "erased"  # cancelled ahead
    refund = await reply_of(olga, "deposit_refund_staff")
    assert "удалил свои данные" in refund.text


async def test_deposits_without_a_provider_token_start_off_and_say_so(
    telegram: TelegramServer,
    database_url: str,
    clock: FixedClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The business file asks deposits, PAYMENT_PROVIDER_TOKEN is unset: the bot starts, says
    in its log that deposits are off, and books as before (the master is asked, no invoice)."""
    caplog.set_level(logging.WARNING, logger="carebot")
    async with bot_on(telegram, database_url, clock, business_plus(tmp_path, deposits("everyone"))):
        assert any(
            "deposits are OFF" in r.getMessage() and "PAYMENT_PROVIDER_TOKEN" in r.getMessage()
            for r in caplog.records
        )
        anna = telegram.user(6001)
        await onboard(anna)
        _, requested = await _book(anna, await _menu_to_times(anna), "в 15:00")
        assert requested.template == "booking_requested"
        await anna.quiet()


async def test_a_late_payment_does_not_give_a_second_visit_of_the_service(
    everyone: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    """Her first time ran out and she chose another one: the late payment of the first takes
    nothing back (its time is free, but she is booked for the service already): refund due."""
    anna = telegram.user(6001)
    await onboard(anna)
    _, invoice = await hold(anna)
    query = await anna.checkout(invoice)
    everyone.clock.advance(timedelta(minutes=16))
    await _plan(everyone)
    assert (await anna.reply(timeout=15)).template == "deposit_expired"
    await hold(anna, "в 17:30")
    await anna.complete_payment(query)
    assert (await anna.reply()).template == "deposit_late_paid"
    assert (await reply_of(olga, "deposit_refund_staff")).template == "deposit_refund_staff"
    assert [b.state for b in await bookings(everyone)] == [
        BookingState.CANCELLED,
        BookingState.HELD,
    ]


async def test_staff_sale_of_the_visit_counts_its_deposit(
    everyone: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    _, invoice = await hold(anna)
    await anna.pay(invoice)
    await reply_of(anna, "booking_confirmed")
    await olga.reply()  # deposit paid
    assert everyone.app is not None
    customer = await everyone.app.customers.find(6001)
    assert customer is not None
    everyone.clock.set(moscow(MONDAY, "16:35"))
    await olga.send(f"/sale #{customer.id} 2500 маникюр анна")
    assert (await olga.reply()).template == "staff_sale_done"
    counted = await reply_of(olga, "deposit_counted_staff")
    assert "к оплате 2\u00a0000\u00a0₽" in counted.text  # 2 500 less the 500 paid
    (deposit,) = await deposit_rows(everyone)
    assert deposit.state == DepositState.COUNTED
    (booking,) = await bookings(everyone)
    assert booking.state == BookingState.DONE and booking.purchase_id == deposit.purchase_id
