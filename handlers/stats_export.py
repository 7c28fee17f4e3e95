"""/stats export [period] in the admin chat: the tables behind /stats and its charts as CSV files
in one ZIP archive (`bot.services.stats_export`): one document, one message of the group's 20 a
minute. Its router goes before /stats's own; anyone but the staff in the admin chat passes on and
is refused by the staff router as /stats is."""

from __future__ import annotations

import asyncio

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, Message

from bot.rendering import Renderer
from bot.services.stats import StatsService
from bot.services.stats_export import StatsExporter, archive_name, stats_archive
from bot.telegram_text import CAPTION_LIMIT, truncate_html
from handlers.filters import StatsSection, admin_chat_router

WORDS = {"export": "export", "экспорт": "export"}  # `/stats export [period]`, either language


async def stats_export(
    message: Message,
    period_text: str,
    stats: StatsService,
    stats_exporter: StatsExporter,
    render: Renderer,
    staff_lang: str,
) -> None:
    period = stats.period(period_text)
    if period is None:
        await message.reply(render.text(staff_lang, "stats_export", usage=True, value=period_text))
        return
    tables = await stats_exporter.tables(period)
    data, files = await asyncio.to_thread(stats_archive, tables)
    caption = render.text(staff_lang, "stats_export", usage=False, files=files, period=period)
    await message.reply_document(
        BufferedInputFile(data, archive_name(period)), caption=truncate_html(caption, CAPTION_LIMIT)
    )


def create_router() -> Router:
    router = admin_chat_router("stats-export")
    router.message.register(stats_export, Command("stats"), StatsSection(WORDS))
    return router
