"""The weekly digest's delivery (`bot.services.digest`): the outbox sender hands its row here,
and the numbers are gathered and the chart drawn (in a worker thread) when it goes, then sent to
the admin chat as one photo with the digest as its caption (one message of the group's 20 a
minute). Telegram's errors leave as the core's, so the sender retries, waits or gives up as for
any row."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BufferedInputFile

from bot.outbox.sender import Done, OutboxSender, Ready
from bot.services.digest import TEMPLATE, StatsDigest
from bot.telegram_text import CAPTION_LIMIT, TEXT_LIMIT, truncate_html
from handlers.outbox_client import deliverer


class StatsDigestDelivery:
    def __init__(self, bot: Bot, digest: StatsDigest) -> None:
        self.bot = bot
        self.digest = digest

    def register(self, sender: OutboxSender) -> None:
        sender.deliverers[TEMPLATE] = deliverer(self.deliver)

    async def deliver(self, item: Ready, done: Done) -> None:
        text, chart = await self.digest.message(item.data)
        if chart is None:
            sent = await self.bot.send_message(item.chat_id, truncate_html(text, TEXT_LIMIT))
        else:
            sent = await self.bot.send_photo(
                item.chat_id,
                BufferedInputFile(chart.png, f"{chart.name}.png"),
                caption=truncate_html(text, CAPTION_LIMIT),
            )
        await done(item.row_ids, sent.message_id)
