"""Bring a friend at the edge: the personal link and its share button under /card, and the
staff's `/referrals [period]` in the admin chat (who brought whom: `bot.services.referrals`)."""

from __future__ import annotations

from urllib.parse import urlencode

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.deep_linking import create_start_link
from markupsafe import Markup

from bot.business import Business
from bot.rendering import Renderer
from bot.services.referrals import PAYLOAD, ReferralService
from bot.telegram_text import TEXT_LIMIT, truncate_html
from handlers.filters import admin_chat_router
from handlers.staff import staff_only

SHARE_URL = "https://t.me/share/url?"  # Telegram's share dialog: pick a chat, the text is ready


async def invitation(
    bot: Bot,
    customer_id: int,
    referrals: ReferralService,
    render: Renderer,
    lang: str,
    business: Business,
) -> tuple[Markup, InlineKeyboardMarkup | None]:
    """The /card's part about bringing a friend (empty when the program is off) and its share
    button, which opens Telegram's share dialog with the link and a ready text."""
    if not referrals.enabled:
        return Markup(""), None
    link = await create_start_link(bot, PAYLOAD + await referrals.token(customer_id))
    rules = business.loyalty.referral
    text = render.label(lang, "referral_share_text", business=business, bonus=rules.friend_bonus)
    share = InlineKeyboardButton(
        text=render.label(lang, "referral_share"),
        url=SHARE_URL + urlencode({"url": link, "text": text}),
    )
    part = render.text(lang, "referral_card", rules=rules, link=link)
    return Markup("\n\n") + part, InlineKeyboardMarkup(inline_keyboard=[[share]])


async def referrals_top(
    message: Message,
    command: CommandObject,
    referrals: ReferralService,
    render: Renderer,
    staff_lang: str,
) -> None:
    period = referrals.period(command.args)
    if period is None:
        await message.reply(
            render.text(staff_lang, "referrals_staff", usage=True, value=command.args or "")
        )
        return
    text = render.text(
        staff_lang,
        "referrals_staff",
        usage=False,
        period=period,
        referrers=await referrals.top(period),
        enabled=referrals.enabled,
    )
    await message.reply(truncate_html(text, TEXT_LIMIT))


def create_router() -> Router:
    router = Router(name="referrals")
    admin = admin_chat_router("referrals-admin-chat")
    admin.message.register(referrals_top, Command("referrals"))
    elsewhere = Router(name="referrals-elsewhere")
    elsewhere.message.register(staff_only, Command("referrals"))
    router.include_routers(admin, elsewhere)
    return router
