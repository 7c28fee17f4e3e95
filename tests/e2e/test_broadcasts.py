"""Broadcasts and sleeping customers, end to end: the wizard step by step, the preview, the
progress message and report, stopping, quiet hours, a restart mid-way, unsubscribing, and the
reactivation of a customer who stopped coming."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import update

from bot.db.models import OutboxMessage, OutboxState
from bot.services.segments import Condition
from bot.services.staff import Staff
from tests.conftest import ADMIN_CHAT, RunningBot
from tests.e2e.helpers import customer_of, onboard
from tests.telegram_server import Call, Person, TelegramServer

MOSCOW = ZoneInfo("Europe/Moscow")
CODE = re.compile(r"<code>([A-Z0-9]{8})</code>")


async def _bought(
    carebot: RunningBot, tg_user_id: int, service: str, day: date, master: str = "olga"
) -> None:
    """A past visit (its thank-you and survey expired long ago)."""
    assert carebot.app is not None
    customer = await customer_of(carebot.db, tg_user_id)
    assert customer is not None
    now = carebot.clock.now()
    carebot.clock.set(datetime(day.year, day.month, day.day, 12, tzinfo=MOSCOW))
    await carebot.app.staff.record_sale(Staff(1, "Ольга"), customer.id, 200000, service, master)
    # Expired at once: left waiting, the sender could send them while a later past visit is being
    # recorded (the clock back a day or two, still within their time to go).
    async with carebot.db.transaction() as repos:
        await repos.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.customer_id == customer.id,
                OutboxMessage.state == OutboxState.PENDING,
            )
            .values(state=OutboxState.EXPIRED)
        )
    carebot.clock.set(now)


async def _call(
    telegram: TelegramServer, wanted: Callable[[Call], bool], timeout: float = 15
) -> Call:
    """The first call the bot made (or makes within the timeout) that matches."""
    await telegram.wait_for(lambda: any(wanted(c) for c in telegram.calls), timeout)
    return next(c for c in telegram.calls if wanted(c))


async def _answer(olga: Person, prompt: Call, text: str, **kwargs: object) -> Call:
    await olga.send(text, reply_to=prompt, **kwargs)  # type: ignore[arg-type]
    return await olga.reply()


async def _tap(
    person: Person, message: Call, button: str, edit: str = "editMessageReplyMarkup"
) -> Call:
    await person.press(message, button)
    await person.next("answerCallbackQuery")
    return await person.next(edit)


async def test_the_wizard_preview_progress_report_and_unsubscribe(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    anna, boris = telegram.user(6001), telegram.user(6002, "Борис")
    await onboard(anna)
    await onboard(boris, phone="79161234568")
    await _bought(carebot, 6001, "manicure", date(2026, 11, 10))
    await _bought(carebot, 6002, "pedicure", date(2026, 11, 12))

    await olga.send("/broadcast")
    ask = await olga.reply()
    assert ask.template == "broadcast_ask_content" and ask.markup == {
        "force_reply": True,
        "selective": True,
    }
    ask_buttons = await _answer(
        olga, ask, "Скидки к Новому году!", entities=[{"type": "bold", "offset": 0, "length": 6}]
    )
    assert ask_buttons.template == "broadcast_ask_buttons"
    assert ask_buttons.labels == ["broadcast_book_button", "broadcast_no_buttons", "staff_cancel"]
    bad = await _answer(olga, ask_buttons, "просто текст")
    assert bad.template == "broadcast_bad_buttons"
    ask_coupon = await _answer(olga, bad, "Наш сайт | https://example.ru\nзаписаться")
    assert ask_coupon.template == "broadcast_ask_coupon"
    assert ask_coupon.labels == ["broadcast_no_coupon", "staff_cancel"]
    bad = await _answer(olga, ask_coupon, "10% до 31.02")
    assert bad.template == "broadcast_bad_coupon"
    segment = await _answer(olga, bad, "10% до 31.12")
    assert segment.template == "broadcast_segment" and "<b>2</b>" in segment.text  # recipients
    assert "• все, кто согласился на рассылки" in segment.text  # the conditions, in words
    services = await _tap(olga, segment, "По услуге", "editMessageText")
    assert services.template == "broadcast_segment"
    assert services.button_texts[:2] == ["Маникюр с покрытием", "Педикюр"]
    assert services.labels[2:] == ["back"]
    chosen = await _tap(olga, services, "Маникюр", "editMessageText")
    assert chosen.template == "broadcast_segment" and "<b>1</b>" in chosen.text
    assert "• были на «Маникюр с покрытием»" in chosen.text
    done_button = chosen.buttons[chosen.labels.index("segment_done")]
    assert "1" in done_button["text"]

    await _tap(olga, chosen, "Готово")
    preview = await olga.reply()
    assert preview.template == "broadcast"
    assert preview.text.startswith("<b>Скидки</b> к Новому году!")  # the staff's own words
    assert "<code>ABCD2345</code>" in preview.text and "31.12.2026" in preview.text
    assert preview.buttons[0]["text"] == "Наш сайт"
    assert preview.buttons[0].get("url") == "https://example.ru"
    assert preview.labels == [None, "book", "unsubscribe"]
    summary = await olga.reply()
    assert summary.template == "broadcast_summary"
    assert "<b>1</b>" in summary.text and "«Маникюр с покрытием»" in summary.text
    assert "тихие часы" not in summary.text  # daytime: no quiet-hours warning
    assert summary.labels == ["broadcast_send", "broadcast_schedule", "broadcast_cancel"]
    await _tap(olga, summary, "Отправить сейчас")
    progress = await olga.reply()
    assert progress.template == "broadcast_progress" and "№1" in progress.text
    assert progress.labels == ["broadcast_stop"]

    got = await anna.reply(timeout=15)
    code = CODE.search(got.text)
    assert got.template == "broadcast"
    assert got.text.startswith("<b>Скидки</b> к Новому году!") and code and code[1] != "ABCD2345"
    assert got.button_texts[0] == "Наш сайт" and got.labels == [None, "book", "unsubscribe"]
    report = await _call(
        telegram,
        lambda c: (
            c.method == "sendMessage"
            and c.chat_id == ADMIN_CHAT
            and c.template == "broadcast_report"
        ),
    )
    assert "Получателей: 1\nДоставлено: 1\nЗаблокировали бота: 0" in report.text
    done = await _call(
        telegram,
        lambda c: (
            c.method == "editMessageText"
            and c.template == "broadcast_progress"
            and "завершена" in c.text  # its state
            and c.params["message_id"] == progress.message["message_id"]
        ),
    )
    assert "Доставлено: 1" in done.text and not done.markup
    await boris.quiet()

    await olga.send(f"/redeem {code[1]}")
    await _call(
        telegram,
        lambda c: c.chat_id == ADMIN_CHAT and c.template == "staff_redeem" and code[1] in c.text,
    )
    olga._cursor = len(olga._mine())
    updated = await _tap(olga, report, "Обновить", "editMessageText")
    assert updated.template == "broadcast_report"
    assert "Погашено купонов из рассылки: 1" in updated.text

    await anna.press(got, "Отписаться")
    assert (await anna.next("answerCallbackQuery")).template == "unsubscribed"
    assert (await anna.reply()).template == "marketing_off"
    assert carebot.app is not None
    assert await carebot.app.broadcasts.count([Condition("all")]) == 1  # only Борис now
    await anna.press(got, "Записаться")  # the broadcast's booking button opens the booking menu
    await anna.next("answerCallbackQuery")
    assert (await anna.reply()).template == "booking_services"


async def test_quiet_hours_hold_it_and_stop_cancels_it(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    carebot.clock.set(datetime(2026, 11, 23, 22, 0, tzinfo=MOSCOW))
    await olga.send("/broadcast")
    ask_buttons = await _answer(olga, await olga.reply(), "Завтра скидки!")
    await _tap(olga, ask_buttons, "Без кнопок")
    ask_coupon = await olga.reply()
    await _tap(olga, ask_coupon, "Без купона")
    segment = await olga.reply()
    await _tap(olga, segment, "Готово")
    await olga.reply()  # the preview
    summary = await olga.reply()
    assert summary.template == "broadcast_summary"
    assert "🌙 Сейчас тихие часы: если отправить сейчас, рассылка начнётся в 10:00." in summary.text
    await _tap(olga, summary, "Отправить сейчас")
    progress = await olga.reply()
    waiting = await _call(
        telegram, lambda c: c.method == "editMessageText" and "продолжим в 10:00" in c.text
    )
    assert waiting.template == "broadcast_progress"
    assert "осталось: 1" in waiting.text
    await olga.press(progress, "Остановить")  # the progress message is being edited meanwhile
    stopped = await _call(
        telegram, lambda c: c.method == "editMessageText" and "Остановил(а)" in c.text
    )
    assert stopped.template == "broadcast_progress"
    assert "⏹ Остановил(а): Ольга (@olga_admin)" in stopped.text and not stopped.markup
    await olga.press(progress, "Остановить")  # again: it is not running
    await _call(
        telegram,
        lambda c: c.method == "answerCallbackQuery" and c.template == "broadcast_not_running",
    )
    carebot.clock.set(datetime(2026, 11, 24, 10, 30, tzinfo=MOSCOW))
    await anna.quiet(1.5)


async def test_the_wizard_refuses_what_it_cannot_send_and_cancels(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    await anna.send("/broadcast")
    assert (await anna.reply()).template == "staff_only"
    await olga.send("/broadcast")
    ask = await olga.reply()
    await olga.send_media("sticker", reply_to=ask)
    again = await olga.reply()
    assert again.template == "broadcast_bad_content"
    ask_buttons = await _answer(olga, again, "Текст")
    await olga.press(ask_buttons, "Отмена")
    await olga.next("answerCallbackQuery")
    assert (await olga.next("editMessageText")).template == "broadcast_wizard_cancelled"
    await olga.press(ask_buttons, "Без кнопок")  # a button of the cancelled wizard
    assert (await olga.next("answerCallbackQuery")).params.get("show_alert")
    await olga.send("/find 4567")  # staff commands work again at once
    card = await olga.reply()
    assert card.template == "staff_card" and "Анна" in card.text
    await anna.quiet()


async def test_a_photo_for_one_masters_lapsed_customers_scheduled_for_tomorrow(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    anna, boris, vera = (
        telegram.user(6001),
        telegram.user(6002, "Борис"),
        telegram.user(6003, "Вера"),
    )
    for person, phone in ((anna, "79161234567"), (boris, "79161234568"), (vera, "79161234569")):
        await onboard(person, phone=phone)
    await _bought(carebot, 6001, "manicure", date(2026, 10, 1), master="anna")
    await _bought(carebot, 6002, "manicure", date(2026, 10, 2), master="olga")
    await _bought(carebot, 6003, "manicure", date(2026, 11, 20), master="anna")

    await olga.send("/broadcast")
    await olga.send_media(
        "photo", "Соскучились? Новогодний дизайн уже здесь", reply_to=await olga.reply()
    )
    await _tap(olga, ask_buttons := await olga.reply(), "Без кнопок")
    assert ask_buttons.labels[0] == "broadcast_book_button"
    await _tap(olga, await olga.reply(), "Без купона")
    segment = await olga.reply()
    assert segment.template == "broadcast_segment" and "<b>3</b>" in segment.text
    masters = await _tap(olga, segment, "По мастеру", "editMessageText")
    assert masters.template == "broadcast_segment"
    assert masters.button_texts[:2] == ["Анна", "Ольга"] and masters.labels[2:] == ["back"]
    assert "Выберите мастера" in masters.text  # the segment's step, in words
    by_anna = await _tap(olga, masters, "Анна", "editMessageText")
    assert by_anna.template == "broadcast_segment" and "<b>2</b>" in by_anna.text
    assert "• были у мастера Анна" in by_anna.text
    await olga.press(by_anna, "Были до даты")
    await olga.next("answerCallbackQuery")
    ask_date = await olga.reply()
    assert ask_date.template == "broadcast_ask_date" and "<b>до</b>" in ask_date.text  # before
    bad = await _answer(olga, ask_date, "32.10")
    assert bad.template == "broadcast_bad_date"
    lapsed = await _answer(olga, bad, "01.11")
    assert lapsed.template == "broadcast_segment" and "<b>1</b>" in lapsed.text
    assert "• были у мастера Анна\n• последний визит до 01.11.2026" in lapsed.text

    await _tap(olga, lapsed, "Готово")
    preview = await olga.next("sendPhoto")
    assert (
        preview.params["photo"] == "photo-1"
        and preview.text == "Соскучились? Новогодний дизайн уже здесь"
    )
    assert preview.template == "broadcast" and preview.labels == ["unsubscribe"]
    summary = await olga.reply()
    await _tap(olga, summary, "Запланировать")
    ask_when = await olga.reply()
    assert ask_when.template == "broadcast_ask_schedule"
    past = await _answer(olga, ask_when, "23.11 11:00")  # an hour ago
    assert past.template == "broadcast_bad_schedule"
    progress = await _answer(olga, past, "завтра 11:30")
    assert progress.template == "broadcast_progress" and "№1" in progress.text
    assert "запланирована на 24.11" in progress.text  # its state, and when
    assert progress.labels == ["broadcast_stop"]
    await anna.quiet(2.5)  # the broadcast watch ran at least once: not yet

    carebot.clock.set(datetime(2026, 11, 24, 11, 31, tzinfo=MOSCOW))
    got = await anna.next("sendPhoto", timeout=15)
    assert (
        got.params["photo"] == "photo-1"
        and got.text.startswith("Соскучились? Новогодний дизайн уже здесь")
        and got.text.endswith("/stop.</i>")  # her first offer says how to stop them
    )
    assert got.template == "broadcast" and got.labels == ["unsubscribe"]
    report = await _call(
        telegram,
        lambda c: (
            c.method == "sendMessage"
            and c.chat_id == ADMIN_CHAT
            and c.template == "broadcast_report"
        ),
    )
    assert "Получателей: 1\nДоставлено: 1" in report.text
    await boris.quiet()
    await vera.quiet()


async def test_a_restart_in_the_middle_sends_nobody_twice(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    assert carebot.app is not None
    customers = carebot.app.customers
    people = range(7000, 7120)
    for tg in people:
        await customers.consent(
            tg, name=f"Клиент {tg}", username=None, language="ru", source=None, offers=True
        )
        await customers.set_phone(tg, f"+7916{tg:07d}")
        await customers.finish_onboarding(tg)
    broadcast_id = await carebot.app.broadcasts.create(
        by="Ольга",
        content={"kind": "text", "html": "Акция недели"},
        buttons=[],
        coupon=None,
        conditions=[Condition("all")],
        starts_at=None,
        progress_chat_id=ADMIN_CHAT,
    )

    def delivered() -> Counter[int]:
        return Counter(
            c.chat_id or 0
            for c in telegram.calls
            if c.method == "sendMessage"
            and c.text.startswith("Акция недели")  # (each one's first offer: how to stop them)
            and c.chat_id in people
        )

    await telegram.wait_for(lambda: len(delivered()) >= 20, 15)
    await carebot.restart()  # mid-way: the rest goes after the restart
    assert len(delivered()) < len(people)
    await telegram.wait_for(lambda: len(delivered()) == len(people), 30)
    assert set(delivered().values()) == {1}
    await carebot.settle()  # the last answers are recorded
    progress = await carebot.app.broadcasts.progress(broadcast_id)  # type: ignore[union-attr]
    assert progress and not progress.waiting
    assert progress and progress.sent == len(people) and progress.recipients == len(people)


async def test_a_sleeping_customer_is_woken_once(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6001)
    await onboard(anna)
    await _bought(carebot, 6001, "manicure", date(2026, 8, 1))  # 21-day cycle, asleep after 42 days
    assert carebot.app is not None
    assert (await carebot.app.planners.run_all())["reactivation"] == 1
    wake = await anna.reply(timeout=15)
    assert wake.template == "reactivation" and wake.text.startswith("Анна,")
    assert "«Маникюр с покрытием»" in wake.text
    assert "скидка 15%" in wake.text and wake.labels == ["book", "my_coupons", "unsubscribe"]
    assert (await carebot.app.planners.run_all())["reactivation"] == 0
    await olga.send("/sleeping")
    stats = await olga.reply()
    assert stats.template == "sleeping_stats"
    assert (
        "Спят сейчас: 1\nНаписали им: 1\nПроснулись (записались или купили в срок предложения): 0 — 0.0%"
        in stats.text
    )
    await _bought(carebot, 6001, "manicure", date(2026, 11, 23))
    await olga.send("/sleeping")
    assert (
        "Спят сейчас: 0\nНаписали им: 1\nПроснулись (записались или купили в срок предложения): 1 — 100.0%"
        in (await olga.reply()).text
    )
    carebot.clock.set(datetime(2026, 12, 1, 9, tzinfo=UTC))
    assert (await carebot.app.planners.run_all())["reactivation"] == 0  # awake: no second message


async def test_stopping_in_the_middle_sends_nothing_more(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    """Stopped while a batch is in flight: the sender skips the rest of its batch too."""
    assert carebot.app is not None
    people = range(7000, 7120)
    for tg in people:
        await carebot.app.customers.consent(
            tg, name=f"Клиент {tg}", username=None, language="ru", source=None, offers=True
        )
        await carebot.app.customers.finish_onboarding(tg)
    broadcast_id = await carebot.app.broadcasts.create(
        by="Ольга",
        content={"kind": "text", "html": "Акция дня"},
        buttons=[],
        coupon=None,
        conditions=[Condition("all")],
        starts_at=None,
    )

    def delivered() -> Counter[int]:
        return Counter(
            c.chat_id or 0
            for c in telegram.calls
            if c.method == "sendMessage" and c.text.startswith("Акция дня")
        )

    await telegram.wait_for(lambda: len(delivered()) >= 10, 15)
    assert await carebot.app.broadcasts.cancel(broadcast_id, "Ольга")
    await carebot.settle()  # the sender has put down what it held and finds nothing more due
    progress = await carebot.app.broadcasts.progress(broadcast_id)
    assert progress and not progress.waiting
    assert progress and progress.state == "cancelled"
    sent = len(delivered())
    assert sent < len(people) and set(delivered().values()) == {1}
    assert progress.sent == sent and progress.skipped == len(people) - sent
    await carebot.settle()
    assert len(delivered()) == sent
