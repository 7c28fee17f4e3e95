"""The data leaves the bot on request: `/mydata` (a customer's own, as a JSON file and a readable
summary) and `/export` (the whole base as CSV files, for the staff in the admin chat)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, FSInputFile, Message

from bot.business import Business
from bot.rendering import Renderer
from bot.services.customers import CustomerView
from bot.services.exporting import Exporter
from handlers.filters import admin_chat_router
from handlers.staff import staff_only

# The largest file a bot may send (core.telegram.org/bots/api#sending-files).
DOCUMENT_LIMIT = 50 * 1024 * 1024


async def my_data(
    message: Message,
    customer: CustomerView | None,
    exporter: Exporter,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    assert message.from_user is not None
    mine = await exporter.my_data(message.from_user.id) if customer is not None else None
    if mine is None:
        await message.answer(render.text(lang, "not_registered"))
        return
    await message.answer(render.text(lang, "mydata", summary=mine.summary, business=business))
    await message.answer_document(BufferedInputFile(mine.document, mine.filename))


async def export(message: Message, exporter: Exporter, render: Renderer, staff_lang: str) -> None:
    """The CSV files in one ZIP archive: one message of the group's 20 a minute, compressed
    (a base of 100,000 customers and a million visits is a few megabytes), the same files as
    `carebot export` writes. Built in a temporary file, not in memory."""
    with tempfile.TemporaryDirectory(prefix="carebot-export-") as folder:
        path = Path(folder) / exporter.archive_name()
        files = await exporter.to_zip(path)
        size = (await asyncio.to_thread(path.stat)).st_size
        if size > DOCUMENT_LIMIT:
            await message.reply(
                render.text(staff_lang, "export_too_big", limit_mb=DOCUMENT_LIMIT // 2**20)
            )
            return
        caption = render.text(staff_lang, "export_done", files=files, today=exporter.today())
        await message.reply_document(FSInputFile(path), caption=caption)


def create_router() -> Router:
    router = Router(name="data-rights")
    router.message.register(my_data, Command("mydata"), F.chat.type == ChatType.PRIVATE)
    admin = admin_chat_router("data-rights-admin-chat")
    admin.message.register(export, Command("export"))
    elsewhere = Router(name="data-rights-elsewhere")
    elsewhere.message.register(staff_only, Command("export"))
    router.include_routers(admin, elsewhere)
    return router
