"""Texts measured as Telegram measures them (UTF-16 units of what is shown, after entities):
an owner's broadcast at the limits, end to end through the wizard."""

from __future__ import annotations

import re

import pytest

from bot.telegram_text import CAPTION_LIMIT, TEXT_LIMIT, visible_len
from tests.e2e.helpers import onboard
from tests.telegram_server import Call, Person, TelegramServer

pytestmark = pytest.mark.in_process


async def _answer(olga: Person, prompt: Call, text: str) -> Call:
    await olga.send(text, reply_to=prompt)
    return await olga.reply()


async def _tap(person: Person, message: Call, button: str) -> None:
    await person.press(message, button)
    await person.next("answerCallbackQuery")
    await person.next("editMessageReplyMarkup")


async def test_broadcast_text_is_measured_as_telegram_does(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    """Seen: the limit was 3,500 characters of HTML: 2,010 emoji (4,020 units, over 4,096 with the
    coupon line) passed, and the preview and every recipient's message were refused by Telegram;
    3,600 characters with 200 `&` (4,400 once escaped) were refused though they fit."""
    await onboard(telegram.user(6001))
    await olga.send("/broadcast")
    ask = await olga.reply()
    bad = await _answer(olga, ask, "🎉" * 2010)
    limit = re.search(r"не больше (\d+) знаков", bad.text)
    assert (
        limit and TEXT_LIMIT - 250 < int(limit[1]) < 4020 and "эмодзи считается за два" in bad.text
    )
    text = "Скидки & подарки! " * 200  # 3,600 characters, 4,400 once escaped
    ask_buttons = await _answer(olga, bad, text)
    assert ask_buttons.button_texts == ["📅 Кнопка «Записаться»", "Без кнопок", "✖️ Отмена"]
    await _tap(olga, ask_buttons, "Без кнопок")
    segment = await _answer(olga, await olga.reply(), "15% до 31.12")
    await _tap(olga, segment, "Готово")
    preview = await olga.reply()
    assert (
        preview.text.startswith("Скидки &amp; подарки!") and "<code>ABCD2345</code>" in preview.text
    )
    assert visible_len(preview.text) <= TEXT_LIMIT
    assert "Получателей" in (await olga.reply()).text
    assert not telegram.refused


async def test_broadcast_caption_is_measured_as_telegram_does(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await onboard(telegram.user(6001))
    await olga.send("/broadcast")
    ask = await olga.reply()
    await olga.send_media(
        "photo", "🎄" * 480, reply_to=ask
    )  # 960 units and a coupon line: too long
    bad = await olga.reply()
    assert "Слишком длинно" in bad.text and "в подписи" in bad.text
    await olga.send_media(
        "photo", "Ёлки & гирлянды " * 50, reply_to=bad
    )  # 800 characters (room is left for the coupon and the how-to-stop lines), 1,000 escaped
    await _tap(olga, await olga.reply(), "Без кнопок")
    segment = await _answer(olga, await olga.reply(), "500 ₽ до 31.12")
    await _tap(olga, segment, "Готово")
    preview = await olga.next("sendPhoto")
    assert visible_len(preview.text) <= CAPTION_LIMIT
    assert not telegram.refused
