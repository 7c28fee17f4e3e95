"""/stats campaigns [period] in the admin chat: what each automatic message and broadcast
brought against its control group, and the two variants against each other
(`bot.services.campaign_results`); "make B the default" under a campaign whose variant is
significantly better.

Its router goes just before /stats's own: a /stats whose first word is not "campaigns" passes on
to the others. Anyone but the staff in the admin chat passes on too, and is refused by the staff
router as /stats is; a forged or stale tap on the button is answered and changes nothing.
"""

from __future__ import annotations

from datetime import date

from aiogram import Router, flags
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.business import Business
from bot.rendering import Renderer
from bot.services.campaign_results import CampaignResultsService
from bot.services.stats import Period
from bot.telegram_text import TEXT_LIMIT, truncate_html
from handlers.admin_chat import AdminChat
from handlers.callbacks import CampaignName, CampaignWinnerCallback, WinnerArm
from handlers.filters import StatsSection, admin_chat_router

WORDS = {"campaigns": "campaigns", "кампании": "campaigns"}  # the first word after /stats


def _day(value: date) -> int:
    return value.year * 10000 + value.month * 100 + value.day


def _from_day(value: int) -> date | None:
    try:
        return date(value // 10000, value // 100 % 100, value % 100)
    except ValueError:
        return None


async def campaigns_report(
    message: Message,
    period_text: str,
    campaign_results: CampaignResultsService,
    business: Business,
    render: Renderer,
    staff_lang: str,
) -> None:
    period = campaign_results.period(period_text)
    if period is None:
        await message.reply(
            render.text(staff_lang, "stats_campaigns", usage=True, value=period_text)
        )
        return
    results = await campaign_results.results(period)
    winners = await campaign_results.winners()
    keyboard = InlineKeyboardBuilder()
    for result in results:
        arm = campaign_results.can_choose(result, winners)
        if arm is None:
            continue
        keyboard.button(
            text=render.label(
                staff_lang, "campaign_make_default", arm=arm.upper(), campaign=result.campaign
            ),
            callback_data=CampaignWinnerCallback(
                campaign=CampaignName(result.campaign),
                arm=WinnerArm(arm),
                first=_day(period.first_day),
                last=_day(period.last_day),
            ),
        )
    keyboard.adjust(1)
    text = render.text(
        staff_lang,
        "stats_campaigns",
        usage=False,
        period=period,
        results=results,
        winners=winners,
        window_days=campaign_results.window_days,
        currency=business.currency,
    )
    markup: InlineKeyboardMarkup | None = keyboard.as_markup() if keyboard.buttons else None
    await message.answer(truncate_html(text, TEXT_LIMIT), reply_markup=markup)


@flags.callback_answer(disabled=True)  # answers the press itself, with an alert
async def make_default(
    callback: CallbackQuery,
    callback_data: CampaignWinnerCallback,
    campaign_results: CampaignResultsService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
) -> None:
    first, last = _from_day(callback_data.first), _from_day(callback_data.last)
    by = admin_chat.staff_of(callback.from_user).name
    if (
        first is None
        or last is None
        or first > last
        or not await campaign_results.make_default(
            callback_data.campaign, callback_data.arm, by, Period(first, last)
        )
    ):
        await callback.answer(render.label(staff_lang, "campaign_not_changed"), show_alert=True)
        return
    await callback.answer(
        render.label(
            staff_lang,
            "campaign_default_made",
            arm=callback_data.arm.upper(),
            campaign=callback_data.campaign,
        ),
        show_alert=True,
    )
    if isinstance(callback.message, Message) and callback.message.reply_markup is not None:
        rows = [
            [button for button in row if button.callback_data != callback.data]
            for row in callback.message.reply_markup.inline_keyboard
        ]
        rows = [row for row in rows if row]
        await callback.message.edit_reply_markup(
            reply_markup=InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
        )


def create_router() -> Router:
    router = admin_chat_router("stats-campaigns")
    router.message.register(campaigns_report, Command("stats"), StatsSection(WORDS))
    router.callback_query.register(make_default, CampaignWinnerCallback.filter())
    return router
