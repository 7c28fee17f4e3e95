"""What a customer can see and control: coupons, profile, opt-out, erasure."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.db.models import Consent, Coupon
from tests.e2e.helpers import (
    consents_of,
    count,
    coupons_of,
    customer_id_of,
    customer_of,
    forget,
    onboard,
    tap,
)
from tests.telegram_server import TelegramServer

pytestmark = pytest.mark.in_process


async def test_my_coupons_lists_active_coupons_with_expiry(
    carebot, telegram: TelegramServer
) -> None:
    anna = telegram.user(2001)
    welcome = await onboard(anna)
    await anna.send("/mycoupons")
    listing = await anna.reply()
    [coupon] = await coupons_of(carebot.db, await customer_id_of(carebot.db, 2001))
    assert f"<code>{coupon.code}</code> — скидка 10%, до 23.12.2026" in listing.text

    await anna.press(welcome, "Мои купоны")
    await anna.next("answerCallbackQuery")
    assert coupon.code in (await anna.reply()).text

    carebot.clock.advance(timedelta(days=31))  # past the last valid day: no longer active
    await anna.send("/mycoupons")
    assert "нет действующих купонов" in (await anna.reply()).text


async def test_profile_shows_what_is_stored(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(2002)
    welcome = await onboard(anna, birthday="29.02.2000")
    await anna.press(welcome, "Мои данные")
    await anna.next("answerCallbackQuery")
    profile = (await anna.reply()).text
    assert "Имя: Анна" in profile
    assert "Телефон: +79161234567" in profile
    assert "День рождения: 29.02.2000" in profile
    assert "Действующих купонов: 1" in profile
    assert "Согласие на обработку данных: 23.11.2026, версия 2026-11-01" in profile


async def test_profile_and_commands_before_meeting(carebot, telegram: TelegramServer) -> None:
    stranger = telegram.user(2003, language_code="en")
    for command in ("/profile", "/mycoupons", "/stop", "/forget"):
        await stranger.send(command)
        text = (await stranger.reply()).text
        assert "nothing" in text or "no active coupons" in text, (command, text)
    await stranger.send("/hello")
    assert "We have not met yet" in (await stranger.reply()).text
    assert await count(carebot.db, Consent) == 0


async def test_stop_and_resume_marketing(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(2004)
    await onboard(anna)
    await anna.send("/stop")
    assert (await anna.reply()).template == "marketing_off"
    await anna.send("/stop")
    assert "уже не приходят" in (await anna.reply()).text
    customer = await customer_of(carebot.db, 2004)
    assert customer and customer.marketing_opt_out
    await anna.send("/profile")
    assert "не присылаем (включить — /resume)" in (await anna.reply()).text

    carebot.clock.advance(timedelta(hours=1))
    await anna.send("/resume")
    assert (await anna.reply()).template == "marketing_on"
    customer = await customer_of(carebot.db, 2004)
    assert customer and not customer.marketing_opt_out
    marketing = [
        (c.granted, c.at, c.version, c.via)
        for c in await consents_of(carebot.db, customer.id)
        if c.kind == "marketing"
    ]
    assert [(g, version, via) for g, _, version, via in marketing] == [
        (True, "1", "button"),  # the offers question in onboarding
        (False, "1", "stop"),
        (True, "1", "button"),
    ]
    assert marketing[2][1] - marketing[1][1] == timedelta(hours=1)
    await anna.send("/profile")
    assert "Согласие на предложения: да, с 23.11.2026" in (await anna.reply()).text


async def test_forget_asks_first_then_erases(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(2005, username="anna_k")
    await onboard(anna)
    customer_id = await customer_id_of(carebot.db, 2005)

    await anna.send("/forget")
    confirm = await anna.reply()
    assert confirm.template == "forget_confirm"
    await anna.press(confirm, "Нет, оставить")
    await anna.next("answerCallbackQuery")
    cancelled = await anna.next("editMessageText")
    assert cancelled.template == "forget_cancelled" and not cancelled.markup
    assert await customer_of(carebot.db, 2005) is not None

    done = await forget(anna)
    assert done.template == "forget_done" and not done.markup

    assert await customer_of(carebot.db, 2005) is None
    async with carebot.db.transaction() as repos:
        erased = await repos.customers.get(customer_id)
    assert erased is not None, "an anonymous row stays for the business's totals"
    assert (
        erased.tg_user_id,
        erased.name,
        erased.username,
        erased.phone,
        erased.birth_day,
        erased.birth_month,
        erased.birth_year,
    ) == (None,) * 7
    assert erased.erased_at is not None and erased.marketing_opt_out
    [coupon] = await coupons_of(carebot.db, customer_id)
    assert coupon.voided_at is not None
    assert [(c.kind, c.granted) for c in await consents_of(carebot.db, customer_id)][-2:] == [
        ("personal_data", False),
        ("marketing", False),
    ]

    await anna.send("/profile")
    assert "ничего о вас не храним" in (await anna.reply()).text
    await anna.press(confirm, "Да, удалить")  # the old confirmation pressed again
    await anna.next("answerCallbackQuery")
    assert (await anna.next("editMessageText")).template == "not_registered"
    assert await count(carebot.db, Coupon) == 1


async def test_forget_in_the_middle_of_onboarding(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(2006)
    await anna.send("/start")
    intro = await anna.reply()
    await tap(anna, intro, "✅")
    await anna.reply()
    await anna.send_contact("79161234567")
    await anna.reply()
    await anna.reply()
    await forget(anna)
    await anna.send("14.03")  # the onboarding is over: this is just a message to the staff now
    assert (await anna.reply()).template == "care_received"
    assert await customer_of(carebot.db, 2006) is None
