"""Two separate consents, end to end: data (versioned by the privacy text) and offers (its own
question, its own version), each a row saying how it was given; what "no" to offers means for the
welcome coupon and for what the outbox sends; a new privacy text agreed to again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.models import Coupon, OutboxMessage
from bot.outbox import MARKETING
from bot.services.booking import Actor
from tests.conftest import ADMIN_CHAT, BUSINESS_FILE, make_settings
from tests.e2e.helpers import (
    answer_offers,
    consents_of,
    count,
    coupons_of,
    customer_id_of,
    customer_of,
    msk,
    onboard,
    tap,
)
from tests.harness import InProcessBot
from tests.telegram_server import TelegramServer

pytestmark = pytest.mark.in_process


@pytest.fixture
def business_file(tmp_path: Path) -> Callable[..., Path]:
    """The test business with some lines changed (`old` → `new`), surveys off."""

    def write(name: str = "business.toml", **changes: str) -> Path:
        text = BUSINESS_FILE.read_text().replace("enabled = true", "enabled = false")
        for old, new in changes.items():
            assert old in text or old == "welcome", old
            text = text.replace(old, new)
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


BotWith = Callable[[Path], AbstractAsyncContextManager[InProcessBot]]


@pytest.fixture
def bot_with(telegram: TelegramServer, database_url: str, clock: FixedClock) -> BotWith:
    @asynccontextmanager
    async def running(path: Path) -> AsyncIterator[InProcessBot]:
        bot = InProcessBot(
            make_settings(telegram, database_url, business_file=path), clock, telegram
        )
        await bot.start()
        try:
            yield bot
        finally:
            await bot.stop()

    return running


WELCOME_NEEDS_OFFERS = {
    "percent = 10\nvalid_days = 30\n": (
        "percent = 10\nvalid_days = 30\nrequires_offers_consent = true\n"
    )
}
NEW_PRIVACY = {'privacy_version = "2026-11-01"': 'privacy_version = "2027-03-01"'}


async def outbox(bot: InProcessBot) -> list[OutboxMessage]:
    async with bot.db.transaction() as repos:
        return list(await repos.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_two_consents_recorded_separately_with_versions_and_how(
    carebot, telegram: TelegramServer
) -> None:
    anna = telegram.user(16001)
    welcome = await onboard(anna, offers=False)
    assert welcome.template == "welcome_coupon", "no to offers: the coupon all the same"
    customer = await customer_of(carebot.db, 16001)
    assert customer and customer.marketing_opt_out and customer.data_consent_version == "2026-11-01"
    consents = await consents_of(carebot.db, customer.id)
    assert [(c.kind, c.granted, c.version, c.via) for c in consents] == [
        ("personal_data", True, "2026-11-01", "button"),
        ("marketing", False, "1", "button"),
    ]
    await anna.send("/profile")
    profile = (await anna.reply()).text
    assert "Согласие на обработку данных: 23.11.2026, версия 2026-11-01" in profile
    assert "Согласие на предложения: нет, с 23.11.2026" in profile

    await anna.send("/resume")  # changed their mind: a row of its own, with the offers version
    assert (await anna.reply()).template == "marketing_on"
    await anna.quiet()  # the welcome coupon was hers already: nothing more
    consents = await consents_of(carebot.db, customer.id)
    assert [(c.kind, c.granted, c.version, c.via) for c in consents][-1] == (
        "marketing",
        True,
        "1",
        "button",
    )


async def test_mid_onboarding_start_and_text_ask_the_offers_question_again(
    carebot, telegram: TelegramServer
) -> None:
    anna = telegram.user(16002)
    await anna.send("/start")
    await tap(anna, await anna.reply(), "✅")
    await anna.reply()
    await anna.send_contact("79161234567")
    await anna.reply()
    await tap(anna, await anna.reply(), "Пропустить")
    await tap(anna, await anna.reply(), "Анна")
    assert (await anna.reply()).template == "ask_offers"
    customer = await customer_of(carebot.db, 16002)
    assert customer and customer.marketing_opt_out, "no offers before a yes"
    assert customer.onboarded_at is None

    await anna.send("/start")
    again = await anna.reply()
    assert again.template == "ask_offers" and again.labels == ["offers_yes", "offers_no"]
    await anna.send("а что за предложения?")
    explained = await anna.reply()
    assert explained.template == "ask_offers"
    assert explained.text.startswith("Пожалуйста, ответьте кнопкой")
    assert await count(carebot.db, Coupon) == 0

    welcome = await answer_offers(anna, explained, True)
    assert welcome.template == "welcome_coupon"
    customer = await customer_of(carebot.db, 16002)
    assert customer and not customer.marketing_opt_out and customer.onboarded_at


async def test_no_to_offers_means_no_marketing_but_service_messages_go(
    carebot, telegram: TelegramServer
) -> None:
    anna, olga = telegram.user(16003), telegram.user(16004, "Ольга")
    await onboard(anna, birthday="25.11.1990", offers=False)
    await onboard(olga, phone="79161112233", birthday="25.11.1991", offers=True)
    anna_id = await customer_id_of(carebot.db, 16003)
    app = carebot.app
    carebot.clock.set(msk("2026-11-25T10:30"))  # both birthdays
    # An offer queued for her before her answer (a broadcast planned earlier): it does not go.
    async with app.db.transaction() as repos:
        await repos.outbox.queue(
            key=f"test_offer:{anna_id}",
            kind=MARKETING,
            template="thanks_offer",
            customer_id=anna_id,
            data={},
            not_before=carebot.clock.now(),
            not_after=carebot.clock.now() + timedelta(days=3),
            now=carebot.clock.now(),
        )
    day = (await app.booking.days_with_slots("manicure", "anna"))[0]
    slot = (await app.booking.slots_on("manicure", "anna", day))[0]
    booked = await app.booking.book(16003, "manicure", "anna", slot.starts_at, source="menu")
    assert booked.booking is not None
    await app.booking.decide(booked.booking.id, Actor(1, "Ольга", staff=True), accept=True)

    before = len(telegram.calls)
    await app.tick()
    rows = {r.key: r for r in await outbox(carebot)}
    offer = rows[f"test_offer:{anna_id}"]
    assert (offer.state, offer.error_code) == ("skipped", "opted_out")
    assert rows[f"booking_confirmed:{booked.booking.id}"].state == "sent"
    birthdays = [r for r in await outbox(carebot) if r.template == "birthday_greeting"]
    assert [r.customer_id for r in birthdays] == [await customer_id_of(carebot.db, 16004)]
    assert birthdays[0].state == "sent", "who said yes gets it"
    confirmed = [
        c for c in telegram.calls if c.chat_id == 16003 and c.template == "booking_confirmed"
    ]
    assert len(confirmed) == 1
    sent = [(c.chat_id, c.text) for c in telegram.calls[before:] if c.text]
    assert any(chat == 16004 and "с днём рождения" in text for chat, text in sent)
    [to_anna] = [text for chat, text in sent if chat == 16003]
    assert to_anna.startswith("Анна, ваша запись подтверждена")


async def test_welcome_coupon_that_comes_with_offers(
    telegram: TelegramServer, business_file: Callable[..., Path], bot_with: BotWith
) -> None:
    path = business_file(**WELCOME_NEEDS_OFFERS)
    async with bot_with(path) as bot:
        anna, olga = telegram.user(16005), telegram.user(16006, "Ольга")
        await anna.send("/start")
        intro = await anna.reply()
        assert "Купон мы дарим вместе с нашими предложениями" in intro.text
        yes = await onboard(olga, phone="79161112233", offers=True)
        assert yes.template == "welcome_coupon"

        no = await onboard(anna, offers=False)
        assert no.template == "welcome_needs_offers"
        assert "/resume" in no.text and "скидка 10%" in no.text
        assert no.button_texts == ["📅 Записаться", "🎁 Мои купоны", "👤 Мои данные"]
        anna_id = await customer_id_of(bot.db, 16005)
        assert await coupons_of(bot.db, anna_id) == []
        customer = await customer_of(bot.db, 16005)
        assert customer and customer.onboarded_at and customer.marketing_opt_out

        await anna.send("/resume")
        assert (await anna.reply()).template == "marketing_on"
        gift = await anna.reply()
        assert gift.template == "welcome_coupon" and "Показать купон" in gift.button_texts[0]
        [coupon] = await coupons_of(bot.db, anna_id)
        assert coupon.kind == "welcome" and coupon.code in gift.text

        await anna.send("/stop")
        await anna.reply()
        await anna.send("/resume")  # once: a second /resume gives no second coupon
        assert (await anna.reply()).template == "marketing_on"
        await anna.quiet()
        assert len(await coupons_of(bot.db, anna_id)) == 1


async def test_welcome_coupon_without_offers_when_the_rule_does_not_ask(
    carebot, telegram: TelegramServer
) -> None:
    anna = telegram.user(16007)
    await anna.send("/start")
    intro = await anna.reply()
    assert "вместе с нашими предложениями" not in intro.text
    await tap(anna, intro, "✅")
    await anna.reply()
    await anna.send_contact("79161234567")
    await anna.reply()
    await tap(anna, await anna.reply(), "Пропустить")
    await tap(anna, await anna.reply(), "Анна")
    question = await anna.reply()
    assert "Купон вы получите при любом ответе" in question.text
    welcome = await answer_offers(anna, question, False)
    assert welcome.template == "welcome_coupon"
    await anna.send("/resume")
    assert (await anna.reply()).template == "marketing_on"
    await anna.quiet()
    assert await count(carebot.db, Coupon) == 1


async def test_new_privacy_text_is_agreed_to_again_before_anything_else(
    telegram: TelegramServer,
    database_url: str,
    clock: FixedClock,
    business_file: Callable[..., Path],
    bot_with: BotWith,
) -> None:
    anna = telegram.user(16008)
    async with bot_with(business_file()) as bot:
        await onboard(anna, birthday="25.11.1990")
        anna_id = await customer_id_of(bot.db, 16008)
        clock.set(msk("2026-11-25T10:30"))  # her birthday; the business has a new privacy text
        new = business_file("new.toml", **NEW_PRIVACY)
        bot.settings = make_settings(telegram, database_url, business_file=new)
        await bot.restart()
        app = bot.app
        assert app is not None
        day = (await app.booking.days_with_slots("manicure", "anna"))[0]
        slot = (await app.booking.slots_on("manicure", "anna", day))[0]
        booked = await app.booking.book(16008, "manicure", "anna", slot.starts_at, source="menu")
        assert booked.booking is not None
        await app.booking.decide(booked.booking.id, Actor(1, "Ольга", staff=True), accept=True)
        await app.tick()
        [greeting] = [r for r in await outbox(bot) if r.template == "birthday_greeting"]
        assert (greeting.state, greeting.last_error) == ("pending", "privacy_outdated")
        assert greeting.due_at is not None
        [confirmed] = [r for r in await outbox(bot) if r.template == "booking_confirmed"]
        assert confirmed.state == "sent", "service messages still reach her"
        await anna.reply()  # the booking confirmation

        await anna.send("Здравствуйте, хочу записаться")
        asked = await anna.reply()
        assert asked.template == "reconsent" and "версия 2027-03-01" in asked.text
        assert "пока никуда не передано" in asked.text
        assert asked.labels == ["reconsent", "privacy"]
        await anna.send("/start")
        assert (await anna.reply()).template == "reconsent"
        await anna.send("/privacy")  # what she is asked to agree to is always at hand
        privacy = await anna.reply()
        assert privacy.template == "privacy" and "Версия: 2027-03-01" in privacy.text
        await anna.press(asked, "Что мы храним")
        await anna.next("answerCallbackQuery")
        assert (await anna.reply()).template == "privacy"
        await anna.quiet()
        assert not [c for c in telegram.calls if c.chat_id == ADMIN_CHAT and "записаться" in c.text]

        await anna.press(asked, "Согласен")
        assert (await anna.next("answerCallbackQuery")).params.get("text") == "Спасибо! 🙏"
        await anna.next("editMessageReplyMarkup")
        thanks = await anna.reply()
        assert thanks.template == "reconsent_thanks" and thanks.labels[-1] == "profile"
        consents = await consents_of(bot.db, anna_id)
        assert [(c.kind, c.granted, c.version, c.via) for c in consents][-1] == (
            "personal_data",
            True,
            "2027-03-01",
            "button",
        )
        customer = await customer_of(bot.db, 16008)
        assert customer and customer.data_consent_version == "2027-03-01"

        await anna.send("/start")  # served normally again
        assert (await anna.reply()).template == "returning"
        clock.advance(timedelta(hours=1))
        await app.tick()
        [greeting] = [r for r in await outbox(bot) if r.template == "birthday_greeting"]
        assert greeting.state == "sent"
        assert "с днём рождения" in (await anna.reply()).text


async def test_the_staff_card_shows_both_consents(carebot, telegram: TelegramServer) -> None:
    olga = telegram.staff(16100, "Ольга", ADMIN_CHAT)
    anna = telegram.user(16009)
    await onboard(anna, offers=False)
    await olga.send("/find +79161234567")
    card = await olga.reply()
    assert card.template == "staff_card"
    assert (
        "Данные: да, с 23.11.2026 (версия 2026-11-01) · Предложения: нет, с 23.11.2026" in card.text
    )
    carebot.clock.advance(timedelta(days=2))
    await anna.send("/resume")
    await anna.reply()
    await olga.send("/find +79161234567")
    card = await olga.reply()
    assert "Предложения: да, с 25.11.2026" in card.text
