"""The after-purchase survey, end to end: sale → survey → score → comment → alert → resolve."""

from __future__ import annotations

from datetime import timedelta
from html import escape

import pytest
from sqlalchemy import func, select

from bot.db.models import OutboxMessage, Survey
from bot.services.staff import Staff
from bot.telegram_text import TEXT_LIMIT, utf16_len, visible, visible_len
from handlers.callbacks import SurveyCallback
from tests.conftest import ADMIN_CHAT
from tests.e2e.helpers import onboard
from tests.telegram_server import Call, Person, TelegramServer

pytestmark = pytest.mark.in_process


async def _surveyed(
    carebot,
    telegram: TelegramServer,
    olga: Person,
    user_id: int = 6001,
    sale: str = "/sale 4567 2000 маникюр анна",
) -> tuple[Person, Call]:
    """A customer who bought something; returns them and the survey they received."""
    anna = telegram.user(user_id)
    await onboard(anna)
    await olga.send(sale)
    await olga.reply()
    await anna.quiet()
    carebot.clock.advance(timedelta(hours=3))
    survey = await anna.reply(timeout=15)  # the survey (a service message) first, then the offer
    thanks = await anna.reply(timeout=15)
    assert thanks.template == "thanks_offer"
    return anna, survey


async def test_survey_after_the_delay_and_a_happy_answer(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna, survey = await _surveyed(carebot, telegram, olga)
    assert survey.text.startswith("Анна, как вам визит к мастеру Анна на «Маникюр с покрытием»? 🙏")
    assert survey.button_texts == ["1 😞", "2", "3", "4", "5 🤩"]
    await anna.press(survey, "5")
    await anna.next("answerCallbackQuery")
    scored = await anna.next("editMessageText")
    assert scored.text == "Ваша оценка: ★★★★★ — спасибо!" and not scored.markup
    ask = await anna.reply()
    assert "Что вам понравилось больше всего?" in ask.text and ask.button_texts == ["Пропустить"]
    await anna.send("Анна — волшебница <3")
    await anna.next("editMessageReplyMarkup")
    thanks = await anna.reply()
    assert thanks.text.startswith("Спасибо! 💛") and "отзыв" in thanks.text
    assert [(b["text"], b["url"]) for b in thanks.buttons] == [
        ("Яндекс Карты", "https://yandex.ru/maps/org/example"),
        ("2ГИС", "https://2gis.ru/firm/example"),
    ]
    shared = await olga.reply()  # staff see the praise too
    assert (
        shared.text.startswith("⭐ <b>Оценка 5 из 5</b> — Анна")
        and "«Анна — волшебница &lt;3»" in shared.text
    )
    assert not shared.markup
    await anna.send("А можно ещё записаться?")  # after the survey, back to the care chat
    assert (await olga.reply()).text.endswith("А можно ещё записаться?")


async def test_a_low_score_alerts_staff_who_answer_and_resolve(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna, survey = await _surveyed(carebot, telegram, olga)
    await anna.press(survey, "2")
    await anna.next("answerCallbackQuery")
    await anna.next("editMessageText")
    alert = await olga.reply()  # at once, before any comment
    assert alert.text.startswith("⚠️ <b>Оценка 2 из 5</b> — Анна · +79161234567 · #1")
    assert "Маникюр с покрытием у мастера Анна, 2\u00a0000\u00a0₽, 23.11.2026 12:00" in alert.text
    assert alert.button_texts == ["💬 Ответить клиенту", "✅ Решено"]
    ask = await anna.reply()
    assert "Что мы могли бы сделать лучше?" in ask.text
    await anna.send("Покрытие скололось на второй день")
    updated = await olga.next("editMessageText")
    assert "Комментарий: «Покрытие скололось на второй день»" in updated.text
    await anna.next("editMessageReplyMarkup")
    assert "Мы разберёмся и свяжемся с вами" in (await anna.reply()).text

    await olga.press(alert, "Ответить")
    assert (
        "Ответьте (reply) на это сообщение"
        in (await olga.next("answerCallbackQuery")).params["text"]
    )
    await olga.send("Анна, приходите, бесплатно переделаем!", reply_to=alert)
    assert (await anna.next("copyMessage")).message[
        "text"
    ] == "Анна, приходите, бесплатно переделаем!"

    await olga.send("/complaints")
    listing = await olga.reply()
    assert (
        "Открытые жалобы: 1" in listing.text
        and "«Покрытие скололось на второй день»" in listing.text
    )
    await olga.press(updated, "Решено")
    await olga.next("answerCallbackQuery")
    resolved = await olga.next("editMessageText")
    assert "✅ Решено: Ольга (@olga_admin), 23.11.2026 15:00" in resolved.text
    assert resolved.button_texts == ["💬 Ответить клиенту"]
    misha = telegram.staff(9002, "Миша", ADMIN_CHAT)
    await misha.press(updated, "Решено")  # an older copy of the buttons
    assert "Уже решено: Ольга" in (await misha.next("answerCallbackQuery")).params["text"]
    await olga.send("/complaints")
    assert "Открытых жалоб нет" in (await olga.reply()).text
    await olga.send("/find 4567")
    assert "оценка 2.0 (1)" in (await olga.reply()).text


async def test_skip_the_comment(carebot, telegram: TelegramServer, olga: Person) -> None:
    anna, survey = await _surveyed(carebot, telegram, olga)
    await anna.press(survey, "4")
    await anna.next("answerCallbackQuery")
    await anna.next("editMessageText")
    ask = await anna.reply()
    await anna.send_photo()
    assert (await anna.reply()).template == "survey_comment_text"
    await anna.press(ask, "Пропустить")
    await anna.next("answerCallbackQuery")
    await anna.next("editMessageReplyMarkup")
    assert (await anna.reply()).text.startswith("Спасибо! 💛")
    await olga.quiet()  # a happy score without a comment bothers nobody
    await anna.press(ask, "Пропустить")  # again
    assert "неактуальна" in (await anna.next("answerCallbackQuery")).params["text"]


async def test_bad_taps_change_nothing(carebot, telegram: TelegramServer, olga: Person) -> None:
    anna, survey = await _surveyed(carebot, telegram, olga)
    survey_id = SurveyCallback.unpack(survey.buttons[0]["callback_data"]).id
    for forged in (
        SurveyCallback(id=survey_id, score=0).pack(),
        SurveyCallback(id=survey_id, score=6).pack(),
        SurveyCallback(id=survey_id + 1, score=5).pack(),
        "survey:x:5",
    ):
        await anna.press_data(survey, forged)
        assert "неактуальна" in (await anna.next("answerCallbackQuery")).params["text"]
    await anna.press(survey, "3")
    await anna.next("answerCallbackQuery")
    await anna.next("editMessageText")
    await olga.reply()
    await anna.reply()
    telegram.messages[(anna.id, survey.message["message_id"])]["reply_markup"] = survey.markup
    await anna.press(survey, "5")  # a second tap from an old client
    assert "Вы уже ответили" in (await anna.next("answerCallbackQuery")).params["text"]
    async with carebot.db.transaction() as repos:
        [row] = list(await repos.session.scalars(select(Survey)))
    assert row.score == 3

    olga_customer = telegram.user(6002, "Ольга")
    await onboard(olga_customer, phone="79031112233")
    await olga_customer.send("/mycoupons")
    own = await olga_customer.reply()
    await olga_customer.press_data(
        own, SurveyCallback(id=survey_id, score=1).pack()
    )  # someone else's survey
    assert "неактуальна" in (await olga_customer.next("answerCallbackQuery")).params["text"]
    async with carebot.db.transaction() as repos:
        assert (await repos.session.get(Survey, survey_id)).score == 3  # type: ignore[union-attr]


async def test_a_survey_closes_after_72_hours(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna, survey = await _surveyed(carebot, telegram, olga)
    carebot.clock.advance(timedelta(hours=72))
    await anna.press(survey, "5")
    assert "опрос уже закрыт" in (await anna.next("answerCallbackQuery")).params["text"]
    await anna.quiet()


async def test_a_survey_not_yet_sent_cannot_be_answered(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(6003)
    await onboard(anna)
    await olga.send("/sale 4567 700")
    await olga.reply()
    async with carebot.db.transaction() as repos:
        [survey] = list(await repos.session.scalars(select(Survey)))
    await anna.send("/mycoupons")
    message = await anna.reply()
    await anna.press_data(
        message, SurveyCallback(id=survey.id, score=5).pack()
    )  # forged before the survey was asked
    assert "неактуальна" in (await anna.next("answerCallbackQuery")).params["text"]
    async with carebot.db.transaction() as repos:
        assert (await repos.session.get(Survey, survey.id)).score is None  # type: ignore[union-attr]


async def test_one_survey_per_fortnight_and_night_waits(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna, _ = await _surveyed(carebot, telegram, olga)
    await olga.send("/sale 4567 500")  # 15:00, another purchase the same day
    await olga.reply()
    carebot.clock.advance(timedelta(hours=3))
    assert (await anna.reply(timeout=15)).template == "thanks_offer"
    await anna.quiet()  # no second survey within 14 days
    async with carebot.db.transaction() as repos:
        assert len(list(await repos.session.scalars(select(Survey)))) == 1
    staff = carebot.app.staff
    carebot.clock.advance(timedelta(days=14, hours=2))  # 20:00 Moscow on 7 December
    await staff.record_sale(
        Staff(9001, "Ольга"), 1, 100000, "pedicure"
    )  # asks the next day, 20 h later
    async with carebot.db.transaction() as repos:
        latest = list(await repos.session.scalars(select(Survey).order_by(Survey.id)))[-1]
    assert (
        latest.planned_at.astimezone(carebot.settings.tz).isoformat() == "2026-12-08T16:00:00+03:00"
    )


async def test_csat_figures(carebot, telegram: TelegramServer, olga: Person) -> None:
    """Six purchases, five answers: 5 and 4 for Anna's manicures, 2 for Olga's pedicure,
    5 for Olga's manicure, 3 without a master; one survey unanswered. By hand:
    average (5+4+2+5+3)/5 = 3.8; Anna 4.5 (2), Olga 3.5 (2); manicure 14/3 = 4.67 (3),
    pedicure 2.0 (1); asked 6, answered 5 = 83%."""
    app = carebot.app
    plan = [
        ("manicure", "anna", 5),
        ("manicure", "anna", 4),
        ("pedicure", "olga", 2),
        ("manicure", "olga", 5),
        (None, None, 3),
        ("manicure", "anna", None),
    ]
    for n, (service, master, _score) in enumerate(plan):
        tg = 6100 + n
        view = await app.customers.consent(
            tg, name=f"Гость {n}", username=None, language="ru", source=None
        )
        await app.customers.set_phone(tg, f"+7916000000{n}")
        await app.customers.finish_onboarding(tg)
        await app.staff.record_sale(Staff(9001, "Ольга"), view.id, 100000, service, master)
    carebot.clock.advance(timedelta(hours=22))  # 10:00 next day: past every delay (pedicure: 20 h)
    await app.tick()
    await carebot.settle()  # the running bot's own sender may still be marking its batch
    async with app.db.transaction() as repos:
        assert not await repos.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.template == "survey_question", OutboxMessage.state != "sent")
        )
    async with app.db.transaction() as repos:
        surveys = list(await repos.session.scalars(select(Survey).order_by(Survey.id)))
    for survey, (_, _, score) in zip(surveys, plan, strict=True):
        if score is not None:
            outcome, _ = await app.surveys.answer(6100 + surveys.index(survey), survey.id, score)
            assert outcome == "recorded"
    await app.surveys.comment(6100, surveys[0].id, "Всё чудесно")
    await olga.send("/csat 7d")
    report = (await olga.reply()).text
    assert "Опросов отправлено: 6, ответов: 5 (83%)" in report
    assert "Средняя оценка: <b>3.8</b>" in report
    assert "5★ 2\n4★ 1\n3★ 1\n2★ 1\n1★ 0" in report
    assert "• Анна — 4.5 (2)\n• Ольга — 3.5 (2)" in report
    assert "• Маникюр с покрытием — 4.67 (3)\n• Педикюр — 2.0 (1)" in report
    assert "• 5★ Гость 0: «Всё чудесно»" in report
    await olga.send("/csat никогда")
    assert "не период" in (await olga.reply()).text
    carebot.clock.advance(timedelta(days=10))
    await olga.send("/csat 7d")
    assert "Ответов пока нет" in (await olga.reply()).text


LONG_COMMENT = " ".join(
    f"{n}{'😡' * (n % 3 == 0)} Покрытие & <лак> скололось." for n in range(160)
)[:4000]


async def _complained(
    carebot, telegram: TelegramServer, olga: Person, comment: str
) -> tuple[Person, Call]:
    """A customer gave a 1 and wrote `comment`; returns them and the alert as first sent."""
    anna = telegram.user(6001)
    await onboard(anna)
    await olga.send("/sale 4567 2000 маникюр анна")
    await olga.reply()
    await anna.quiet()
    carebot.clock.advance(timedelta(hours=3))
    offers = [await anna.reply(timeout=15) for _ in range(2)]  # a thank-you offer and the survey
    [survey] = [
        m
        for m in offers
        if m.buttons and m.buttons[0]["callback_data"].startswith(SurveyCallback.__prefix__)
    ]
    await anna.press(survey, "1")
    await anna.next("answerCallbackQuery")
    await anna.next("editMessageText")
    alert = await olga.reply()
    await anna.reply()  # what could we do better?
    await anna.send(comment)
    return anna, alert


async def test_a_long_comment_reaches_the_alert_whole(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    """Seen: a 4,000-character comment was cut to 2,000 characters, and with the card it was over
    Telegram's 4,096 units: the alert was never updated. Now the card is shortened instead."""
    assert len(LONG_COMMENT) == 4000 and 4000 < utf16_len(LONG_COMMENT) <= TEXT_LIMIT  # one message
    anna, alert = await _complained(carebot, telegram, olga, LONG_COMMENT)
    updated = await olga.next("editMessageText")
    assert visible_len(updated.text) <= TEXT_LIMIT
    assert updated.text.startswith("⚠️ <b>Оценка 1 из 5</b> — Анна") and "…" in updated.text
    assert f"Комментарий: «{escape(LONG_COMMENT)}»" in updated.text
    assert updated.button_texts == ["💬 Ответить клиенту", "✅ Решено"]
    await anna.next("editMessageReplyMarkup")
    assert "Мы разберёмся и свяжемся с вами" in (await anna.reply()).text
    async with carebot.db.transaction() as repos:
        assert (await repos.session.scalar(select(Survey.comment))) == LONG_COMMENT
    await olga.quiet()
    assert not [call for call in telegram.refused if call.chat_id == ADMIN_CHAT]


async def test_a_comment_longer_than_a_message_goes_on_in_a_reply(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    """The comment alone is more than the alert can hold: the alert carries the beginning, the
    rest follows in a reply to it; resolving keeps the words; /complaints shortens it to fit."""
    comment = ("Всё плохо 😡 & <лак> " * 300)[:3900]
    assert 4096 - 16 < utf16_len(comment) <= TEXT_LIMIT  # a message, but not with "Комментарий: «»"
    anna, alert = await _complained(carebot, telegram, olga, comment)
    updated = await olga.next("editMessageText")
    rest = await olga.reply()
    assert rest.params["reply_parameters"]["message_id"] == alert.message["message_id"]
    assert all(visible_len(part.text) <= TEXT_LIMIT for part in (updated, rest))
    assert updated.text.startswith("⚠️ <b>Оценка 1 из 5</b> — Анна · +79161234567 · #1")
    shown = visible(updated.text).split("Комментарий: «", 1)[1] + " " + visible(rest.text)
    assert " ".join(shown.split()) == " ".join(comment.split()) + "»"  # every word, in order
    assert updated.button_texts == ["💬 Ответить клиенту", "✅ Решено"]
    await anna.next("editMessageReplyMarkup")
    assert "Мы разберёмся и свяжемся с вами" in (await anna.reply()).text

    await olga.send("Анна, извините, перезвоню!", reply_to=rest)  # a reply to the rest answers too
    assert (await anna.next("copyMessage")).message["text"] == "Анна, извините, перезвоню!"
    await olga.press(updated, "Решено")
    await olga.next("answerCallbackQuery")
    resolved = await olga.next("editMessageText")
    assert "✅ Решено: Ольга" in resolved.text
    assert resolved.text.split("Комментарий: «")[1] == updated.text.split("Комментарий: «")[1]

    async with carebot.db.transaction() as repos:  # open again, to be listed
        (await repos.session.get(Survey, 1)).resolved_at = None  # type: ignore[union-attr]
    await olga.send("/complaints")
    listing = await olga.reply()
    assert visible_len(listing.text) <= TEXT_LIMIT and "Открытые жалобы: 1" in listing.text
    assert f"«{escape(comment[:500])}" in listing.text and "…»" in listing.text
    await olga.send("/csat")
    report = await olga.reply()
    assert visible_len(report.text) <= TEXT_LIMIT and "Последние комментарии" in report.text
    assert not [call for call in telegram.refused if call.chat_id == ADMIN_CHAT]
