"""/stats [period] in the admin chat: the share of repeat sales (the owner's starting point),
the previous period and the change, customers new and returning, the average check and interval
(`bot.services.stats`), then the charts (`bot.services.charts`) as one album. Anyone else gets
"for staff" from the staff router's refusal.

The text goes first, at once; the charts are drawn in a worker thread meanwhile the event loop
answers others, and follow as one sendMediaGroup (2 to 10 photos: one message per chart of the
group's 20 a minute, which the limiter counts item by item), a lone chart as one photo, none when
there is nothing to draw.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, InputMediaPhoto, Message

from bot.business import Business
from bot.rendering import Renderer
from bot.services.charts import Chart, Figures, FigureSources, chart_texts, draw, warm_up
from bot.services.stats import Period, StatsService
from bot.telegram_text import CAPTION_LIMIT, TEXT_LIMIT, truncate_html
from handlers.filters import admin_chat_router

log = logging.getLogger("carebot.stats")


async def stats(
    message: Message,
    command: CommandObject,
    stats: StatsService,
    business: Business,
    render: Renderer,
    staff_lang: str,
    chart_sources: FigureSources,
) -> None:
    period = stats.period(command.args)
    if period is None:
        await message.reply(render.text(staff_lang, "stats", usage=True, value=command.args))
        return
    warming = asyncio.create_task(warm_up())  # the charts' library loads while the numbers are read
    report = await stats.report(period)
    text = render.text(staff_lang, "stats", usage=False, report=report, currency=business.currency)
    await message.answer(truncate_html(text, TEXT_LIMIT))
    figures = await chart_sources.gather(period, known=Figures(cohorts=report.cohorts))
    try:
        await warming
        charts = await draw(figures, chart_texts(render, staff_lang))
    except Exception:  # the text is there; a picture that fails to draw is left out
        log.exception("the /stats charts could not be drawn period=%s", period)
        return
    await send_charts(message, charts, render, staff_lang, period)


async def send_charts(
    message: Message, charts: list[Chart], render: Renderer, lang: str, period: Period
) -> None:
    """The charts under the text: one album (its first photo captioned with what they are)."""
    if not charts:
        return
    caption = truncate_html(
        render.text(lang, "stats_charts", charts=charts, period=period), CAPTION_LIMIT
    )
    photos = [BufferedInputFile(chart.png, f"{chart.name}.png") for chart in charts]
    if len(photos) == 1:
        await message.answer_photo(photos[0], caption=caption)
        return
    await message.answer_media_group(
        [
            InputMediaPhoto(media=photo, caption=caption if i == 0 else None)
            for i, photo in enumerate(photos[:10])
        ]
    )


def create_router() -> Router:
    router = admin_chat_router("stats-staff")
    router.message.register(stats, Command("stats"))
    return router
