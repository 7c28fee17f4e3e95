"""/erasures in the admin chat: the destruction records of personal data (`/forget`, the
retention periods), latest first, a page at a time; counts only, naming nobody."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.rendering import Renderer
from bot.services.retention import RetentionService
from bot.telegram_text import TEXT_LIMIT, truncate_html
from handlers.filters import admin_chat_router


async def erasures(
    message: Message,
    command: CommandObject,
    retention: RetentionService,
    render: Renderer,
    staff_lang: str,
) -> None:
    arg = (command.args or "").strip()
    if arg and not (arg.isascii() and arg.isdigit() and int(arg) >= 1):
        await message.reply(render.text(staff_lang, "erasures", bad_page=True))
        return
    found = await retention.records(int(arg) if arg else 1)
    text = render.text(
        staff_lang,
        "erasures",
        bad_page=False,
        records=found.records,
        total=found.total,
        page=found.page,
        pages=found.pages,
    )
    await message.answer(truncate_html(text, TEXT_LIMIT))


def create_router() -> Router:
    router = admin_chat_router("erasures-staff")
    router.message.register(erasures, Command("erasures"))
    return router
