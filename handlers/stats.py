"""/stats [period] in the admin chat: the share of repeat sales (the owner's starting point),
the previous period and the change, customers new and returning, the average check and interval
(`bot.services.stats`). Anyone else gets "for staff" from the staff router's refusal."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.business import Business
from bot.rendering import Renderer
from bot.services.stats import StatsService
from bot.telegram_text import TEXT_LIMIT, truncate_html
from handlers.filters import admin_chat_router


async def stats(
    message: Message,
    command: CommandObject,
    stats: StatsService,
    business: Business,
    render: Renderer,
    staff_lang: str,
) -> None:
    period = stats.period(command.args)
    if period is None:
        await message.reply(render.text(staff_lang, "stats", usage=True, value=command.args))
        return
    report = await stats.report(period)
    text = render.text(staff_lang, "stats", usage=False, report=report, currency=business.currency)
    await message.answer(truncate_html(text, TEXT_LIMIT))


def create_router() -> Router:
    router = admin_chat_router("stats-staff")
    router.message.register(stats, Command("stats"))
    return router
