"""/stats masters|sources|funnel [period] in the admin chat: the owner's numbers per master, per
deep-link source, and the onboarding funnel (`bot.services.stats_breakdowns`).

Its router goes just before /stats's own: a /stats whose first word is not one of these passes on
to the summary (`handlers.stats`). Anyone but the staff in the admin chat passes on too, and is
refused by the staff router as /stats is.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.business import Business
from bot.rendering import Renderer
from bot.services.stats_breakdowns import StatsBreakdownService, drops
from bot.telegram_text import TEXT_LIMIT, truncate_html
from handlers.filters import StatsSection, admin_chat_router

# The first word after /stats, in either language, and the breakdown it asks for.
BREAKDOWNS = {
    "masters": "masters",
    "мастера": "masters",
    "sources": "sources",
    "источники": "sources",
    "funnel": "funnel",
    "воронка": "funnel",
}
TOP_MASTERS = 20
TOP_SOURCES = 25


async def stats_breakdown(
    message: Message,
    section: str,  # masters, sources or funnel (StatsSection)
    period_text: str,
    stats_breakdowns: StatsBreakdownService,
    business: Business,
    render: Renderer,
    staff_lang: str,
) -> None:
    period = stats_breakdowns.period(period_text)
    context: dict[str, object] = {"breakdown": section, "period": period}
    if period is None:
        await message.reply(
            render.text(staff_lang, "stats_breakdowns", usage=True, value=period_text, **context)
        )
        return
    if section == "masters":
        masters = await stats_breakdowns.masters(period)
        if len(masters) > TOP_MASTERS:  # the busiest shown, the rest summed up
            masters = sorted(masters, key=lambda m: -m.sales)
        context |= {"shown": masters[:TOP_MASTERS], "hidden": masters[TOP_MASTERS:]}
    elif section == "sources":
        sources = await stats_breakdowns.sources(period)  # most joined first
        context |= {
            "sources": sources,
            "shown": sources[:TOP_SOURCES],
            "hidden": sources[TOP_SOURCES:],
        }
    else:
        steps = await stats_breakdowns.funnel(period)
        context["steps"] = list(zip(steps, drops(steps), strict=True))
    text = render.text(
        staff_lang, "stats_breakdowns", usage=False, currency=business.currency, **context
    )
    await message.answer(truncate_html(text, TEXT_LIMIT))


def create_router() -> Router:
    router = admin_chat_router("stats-breakdowns-staff")
    router.message.register(stats_breakdown, Command("stats"), StatsSection(BREAKDOWNS))
    return router
