"""A customer's first visit, end to end through the Bot API test server."""

from __future__ import annotations

import re

import pytest

from bot.db.models import Consent, Coupon, Customer
from bot.services.coupons import CODE_ALPHABET, CODE_LENGTH
from handlers.callbacks import CouponCallback
from tests.e2e.helpers import (
    answer_offers,
    consent,
    consents_of,
    count,
    coupons_of,
    customer_id_of,
    customer_of,
    forget,
    onboard,
    tap,
    to_birthday,
)
from tests.telegram_server import TelegramServer

pytestmark = pytest.mark.in_process

CODE = re.compile(rf"<code>([{CODE_ALPHABET}]{{{CODE_LENGTH}}})</code>")


async def test_from_start_to_welcome_coupon(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1001, "Анна", username="anna")
    await anna.send("/start src_instagram")
    intro = await anna.reply()
    assert "приветственный купон — скидка 10%" in intro.text
    assert "номер телефона" in intro.text and "день рождения" in intro.text
    assert intro.button_texts == ["✅ Согласен(на), продолжить", "📄 Что мы храним и зачем"]
    assert await count(carebot.db, Customer) == 0, "nothing is stored before consent"

    await anna.press(intro, "✅")
    assert (await anna.next("answerCallbackQuery")).params.get("text") == "Спасибо! 🙏"
    edit = await anna.next("editMessageReplyMarkup")
    assert edit.params["message_id"] == intro.result["message_id"] and not edit.markup
    ask_phone = await anna.reply()
    assert ask_phone.template == "ask_phone"
    assert ask_phone.keyboard == [{"text": "📱 Поделиться номером", "request_contact": True}]

    await anna.send_contact("79161234567")
    saved = await anna.reply()
    assert saved.template == "phone_saved" and saved.markup == {"remove_keyboard": True}
    ask_birthday = await anna.reply()
    assert ask_birthday.template == "ask_birthday" and ask_birthday.button_texts == ["Пропустить"]

    await anna.send("14 марта")
    ask_name = await anna.reply()
    assert "Запомнили: 14.03" in ask_name.text
    assert ask_name.button_texts == ["Да, Анна"]

    await tap(anna, ask_name, "Анна")
    ask_offers = await anna.reply()
    assert ask_offers.template == "ask_offers"
    assert "присылать вам персональные предложения и подарки?" in ask_offers.text
    assert "Купон вы получите при любом ответе" in ask_offers.text
    assert ask_offers.button_texts == ["Да, присылайте", "Нет, спасибо"]
    assert len(ask_offers.markup["inline_keyboard"]) == 1, "side by side, neither first"

    await anna.press(ask_offers, "Да")
    assert (await anna.next("answerCallbackQuery")).params.get("text") == "Спасибо! 🙏"
    assert not (await anna.next("editMessageReplyMarkup")).markup
    welcome = await anna.reply()
    code = CODE.search(welcome.text)
    assert code, welcome.text
    assert "Спасибо, Анна!" in welcome.text
    assert "Скидка 10%, действует до 23.12.2026 включительно" in welcome.text
    assert welcome.button_texts == [
        "🎟 Показать купон",
        "📅 Записаться",
        "🎁 Мои купоны",
        "👤 Мои данные",
    ]

    customer = await customer_of(carebot.db, 1001)
    assert customer is not None
    assert (customer.phone, customer.birth_day, customer.birth_month, customer.birth_year) == (
        "+79161234567",
        14,
        3,
        None,
    )
    assert (customer.name, customer.username, customer.source) == ("Анна", "anna", "instagram")
    assert customer.onboarded_at is not None
    consents = await consents_of(carebot.db, customer.id)
    assert [(c.kind, c.granted, c.version, c.via) for c in consents] == [
        ("personal_data", True, "2026-11-01", "button"),
        ("marketing", True, "1", "button"),
    ]
    assert consents[1].at > consents[0].at or consents[1].id > consents[0].id
    assert customer.data_consent_version == "2026-11-01" and not customer.marketing_opt_out
    [coupon] = await coupons_of(carebot.db, customer.id)
    assert coupon.code == code[1] and coupon.kind == "welcome" and coupon.percent == 10

    await anna.press(welcome, "Показать купон")
    await anna.next("answerCallbackQuery")
    card = await anna.reply()
    assert f"<code>{coupon.code}</code>" in card.text and "23.12.2026" in card.text


async def test_english_customer(carebot, telegram: TelegramServer) -> None:
    john = telegram.user(1002, "John", language_code="en")
    await john.send("/start")
    intro = await john.reply()
    assert "welcome coupon — 10% off" in intro.text
    assert intro.button_texts[0] == "✅ I agree, continue"
    welcome = await onboard(john, phone="+447911123456", birthday="1990-03-14")
    assert "Your welcome coupon" in welcome.text and "valid until 23 Dec 2026" in welcome.text
    customer = await customer_of(carebot.db, 1002)
    assert customer and customer.language == "en" and customer.phone == "+447911123456"


@pytest.mark.parametrize("payload", ["<script>", "src_", "src_" + "x" * 60, "ref_123", "src_a b"])
async def test_malformed_deep_link_is_ignored(
    carebot, telegram: TelegramServer, payload: str
) -> None:
    olga = telegram.user(1003, "Ольга")
    await onboard(olga, start=f"/start {payload}")
    customer = await customer_of(carebot.db, 1003)
    assert customer and customer.source is None


async def test_privacy_button_shows_what_is_stored(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1004)
    await anna.send("/start")
    intro = await anna.reply()
    await anna.press(intro, "Что мы храним")
    await anna.next("answerCallbackQuery")
    privacy = await anna.reply()
    assert "Мы храним" in privacy.text and "Версия: 2026-11-01" in privacy.text
    assert await count(carebot.db, Customer) == 0


async def test_text_instead_of_consent_asks_again_and_stores_nothing(
    carebot, telegram: TelegramServer
) -> None:
    anna = telegram.user(1005)
    await anna.send("/start")
    await anna.reply()
    await anna.send("а что за купон?")
    explain = await anna.reply()
    assert explain.template == "consent_needed"
    again = await anna.reply()
    assert again.button_texts[0].startswith("✅")
    await anna.send_photo()
    await anna.reply()
    await anna.reply()
    assert await count(carebot.db, Customer) == 0


async def test_returning_customer_is_greeted_by_name(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1006)
    await onboard(anna)
    await anna.send("/start")
    hello = await anna.reply()
    assert hello.template == "returning" and "Анна" in hello.text
    assert hello.button_texts == ["📅 Записаться", "🎁 Мои купоны", "👤 Мои данные"]
    await anna.send("/start src_vk")
    await anna.reply()
    customer = await customer_of(carebot.db, 1006)
    assert customer and customer.source is None, "the first source stays"
    assert await count(carebot.db, Coupon) == 1


async def test_phone_step_accepts_only_own_contact(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1007)
    await consent(anna)

    await anna.send_contact("79990001122", user_id=555)
    answer = await anna.reply()
    assert "контакт другого человека" in answer.text
    assert answer.keyboard[0]["request_contact"] is True

    await anna.send_contact("79990001122", user_id=0)  # a contact typed into the address book
    assert "контакт другого человека" in (await anna.reply()).text

    await anna.send("+7 916 123-45-67")
    answer = await anna.reply()
    assert "только через кнопку" in answer.text and answer.keyboard

    await anna.send("мой номер скажу потом")
    assert "не похоже на номер телефона" in (await anna.reply()).text

    await anna.send_photo()
    assert "не похоже на номер телефона" in (await anna.reply()).text

    customer = await customer_of(carebot.db, 1007)
    assert customer and customer.phone is None

    await anna.send_contact("+7 (916) 765-43-21")
    assert (await anna.reply()).template == "phone_saved"
    customer = await customer_of(carebot.db, 1007)
    assert customer and customer.phone == "+79167654321"


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("31.02", "Такой даты нет"),
        ("00.13", "Такой даты нет"),
        ("29.02.2023", "Такой даты нет"),
        ("14.03.2030", "ещё не наступила"),
        ("14.03.1890", "опечатка"),
        ("привет", "Не получилось понять дату"),
        ("/hello", "Не получилось понять дату"),
    ],
)
async def test_wrong_birthday_is_explained_and_asked_again(
    carebot, telegram: TelegramServer, typed: str, answer: str
) -> None:
    anna = telegram.user(1008)
    await to_birthday(anna)
    await anna.send(typed)
    reply = await anna.reply()
    assert answer in reply.text
    assert "Когда у вас день рождения?" in reply.text and reply.button_texts == ["Пропустить"]
    customer = await customer_of(carebot.db, 1008)
    assert customer and customer.birth_day is None and customer.birth_month is None


async def test_photo_where_a_date_is_expected(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1009)
    await to_birthday(anna)
    await anna.send_photo(caption="14.03")
    reply = await anna.reply()
    assert "напишите её текстом" in reply.text and reply.button_texts == ["Пропустить"]
    await anna.send_sticker()
    assert "напишите её текстом" in (await anna.reply()).text
    await anna.send("29.02")  # a leap-day birthday without a year is a real birthday
    assert "Запомнили: 29.02" in (await anna.reply()).text


async def test_skipped_birthday_still_gets_a_coupon(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1010)
    welcome = await onboard(anna, birthday=None)
    assert CODE.search(welcome.text)
    customer = await customer_of(carebot.db, 1010)
    assert customer and customer.birth_month is None and customer.onboarded_at


async def test_typed_name_is_stored_and_shown_escaped(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1011, "Anna")
    await to_birthday(anna)
    await anna.send("14.03.1990")
    await anna.reply()
    await anna.send("/" + "x" * 70)
    refused = await anna.reply()
    assert "Имя должно быть текстом" in refused.text and refused.button_texts == ["Да, Anna"]
    await anna.send("<b>Ann</b> & Co")
    welcome = await answer_offers(anna, await anna.reply(), True)
    assert "Спасибо, &lt;b&gt;Ann&lt;/b&gt; &amp; Co!" in welcome.text
    customer = await customer_of(carebot.db, 1011)
    assert customer and customer.name == "<b>Ann</b> & Co"
    await anna.send("/start")
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; Co" in (await anna.reply()).text


async def test_stale_buttons_change_nothing(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1012)
    await anna.send("/start")
    intro = await anna.reply()
    await tap(anna, intro, "✅")
    await anna.reply()
    telegram.messages[(anna.id, intro.result["message_id"])]["reply_markup"] = intro.markup
    await anna.press(intro, "✅")  # an old client still shows the consent button
    stale = await anna.next("answerCallbackQuery")
    assert "неактуальна" in stale.params["text"]
    await anna.quiet()

    await anna.send_contact("79161234567")
    await anna.reply()
    ask_birthday = await anna.reply()
    await anna.send("14.03")
    ask_name = await anna.reply()
    await anna.press(ask_birthday, "Пропустить")  # the skip button after the birthday was given
    assert "неактуальна" in (await anna.next("answerCallbackQuery")).params["text"]
    await anna.quiet()
    customer = await customer_of(carebot.db, 1012)
    assert customer and customer.birth_day == 14

    await tap(anna, ask_name, "Анна")
    ask_offers = await anna.reply()
    telegram.messages[(anna.id, ask_name.result["message_id"])]["reply_markup"] = ask_name.markup
    await anna.press(ask_name, "Анна")
    assert "неактуальна" in (await anna.next("answerCallbackQuery")).params["text"]
    await anna.quiet()

    await answer_offers(anna, ask_offers, True)
    telegram.messages[(anna.id, ask_offers.result["message_id"])]["reply_markup"] = (
        ask_offers.markup
    )
    await anna.press(ask_offers, "Нет")  # the other answer, on the old question
    assert "неактуальна" in (await anna.next("answerCallbackQuery")).params["text"]
    await anna.quiet()
    assert await count(carebot.db, Coupon) == 1
    customer = await customer_of(carebot.db, 1012)
    assert customer and not customer.marketing_opt_out
    assert await count(carebot.db, Consent, Consent.kind == "marketing") == 1


@pytest.mark.parametrize(
    "data", ["coupon:999999", "coupon:abc", "onb:bogus", "menu", "garbage", "forget:maybe"]
)
async def test_forged_callbacks_are_refused(carebot, telegram: TelegramServer, data: str) -> None:
    anna = telegram.user(1013)
    welcome = await onboard(anna)
    await anna.press_data(welcome, data)
    answer = await anna.next("answerCallbackQuery")
    assert answer.params["show_alert"] in (True, "true", "True")
    assert (
        "неактуальна" in answer.params["text"]
        or "нет такого купона" in answer.params["text"].lower()
        or "Такого купона у вас нет" in answer.params["text"]
    )
    await anna.quiet()
    customer = await customer_of(carebot.db, 1013)
    assert customer and customer.erased_at is None
    assert await count(carebot.db, Coupon) == 1


async def test_someone_elses_coupon_button_is_refused(carebot, telegram: TelegramServer) -> None:
    anna, olga = telegram.user(1014), telegram.user(1015, "Ольга")
    await onboard(anna)
    welcome = await onboard(olga, phone="79161112233")
    anna_coupon = (await coupons_of(carebot.db, await customer_id_of(carebot.db, 1014)))[0]
    await olga.press_data(welcome, CouponCallback(id=anna_coupon.id).pack())
    answer = await olga.next("answerCallbackQuery")
    assert "Такого купона у вас нет" in answer.params["text"]
    await olga.quiet()


async def test_two_fast_taps_give_one_coupon(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1016)
    await to_birthday(anna)
    await anna.send("14.03")
    ask_name = await anna.reply()
    await tap(anna, ask_name, "Анна")
    ask_offers = await anna.reply()
    await anna.press(ask_offers, "Да")
    await anna.press(ask_offers, "Да")
    calls = [await anna.next() for _ in range(4)]
    methods = sorted(c.method for c in calls)
    assert methods == [
        "answerCallbackQuery",
        "answerCallbackQuery",
        "editMessageReplyMarkup",
        "sendMessage",
    ]
    assert any("неактуальна" in str(c.params.get("text")) for c in calls)
    await anna.quiet()
    assert await count(carebot.db, Coupon) == 1
    assert await count(carebot.db, Consent, Consent.kind == "marketing") == 1


async def test_second_account_with_the_same_phone_gets_no_second_coupon(
    carebot, telegram: TelegramServer
) -> None:
    await onboard(telegram.user(1017))
    twin = telegram.user(1018, "Анна")
    final = await onboard(twin, phone="+7 916 123 45 67")
    assert final.template == "welcome_already_claimed" and not CODE.search(final.text)
    assert final.button_texts == ["📅 Записаться", "🎁 Мои купоны", "👤 Мои данные"]
    assert await count(carebot.db, Coupon) == 1
    twin_customer = await customer_of(carebot.db, 1018)
    assert twin_customer and twin_customer.onboarded_at and twin_customer.phone == "+79161234567"


async def test_forget_and_start_again_gets_no_second_coupon(
    carebot, telegram: TelegramServer
) -> None:
    anna = telegram.user(1019)
    await onboard(anna)
    await forget(anna)
    final = await onboard(anna, phone="79035556677")  # same account, another phone
    assert final.template == "welcome_already_claimed"
    assert await count(carebot.db, Coupon, Coupon.voided_at.is_(None)) == 0


@pytest.mark.http
async def test_restart_in_the_middle_of_onboarding(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1020)
    await to_birthday(anna)
    await carebot.restart()
    await anna.send("14.03.1990")
    ask_name = await anna.reply()
    assert "Запомнили: 14.03.1990" in ask_name.text
    await carebot.restart()
    await tap(anna, ask_name, "Анна")
    ask_offers = await anna.reply()
    await carebot.restart()
    assert CODE.search((await answer_offers(anna, ask_offers, False)).text)


async def test_start_in_the_middle_asks_the_current_question(
    carebot, telegram: TelegramServer
) -> None:
    anna = telegram.user(1021)
    await consent(anna)
    await anna.send("/start")
    assert (await anna.reply()).template == "ask_phone"
    await anna.send_contact("79161234567")
    await anna.reply()
    await anna.reply()
    await anna.send("/start")
    assert (await anna.reply()).template == "ask_birthday"


async def test_group_messages_are_not_answered_as_a_customer(
    carebot, telegram: TelegramServer
) -> None:
    await telegram.push(
        {
            "message": {
                "message_id": 1,
                "date": 0,
                "text": "/start",
                "chat": {"id": -1009999, "type": "supergroup", "title": "Friends"},
                "from": {"id": 1022, "is_bot": False, "first_name": "Анна"},
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            }
        }
    )
    anna = telegram.user(1022)
    await telegram.wait_for(lambda: telegram.delivered >= 1)
    await anna.quiet()
    assert not [c for c in telegram.calls if c.chat_id == -1009999]
    assert await count(carebot.db, Customer) == 0


async def test_commands_work_in_the_middle_of_onboarding(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(1023)
    await to_birthday(anna)
    await anna.send("/profile")
    profile = await anna.reply()
    assert "Телефон: +79161234567" in profile.text and "День рождения: не указан" in profile.text
    await anna.send("14.03")  # the conversation goes on where it was
    assert "Запомнили: 14.03" in (await anna.reply()).text
