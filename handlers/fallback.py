"""Last router: stale or forged buttons, and commands nobody knows (everything else a customer
writes goes to the care chat)."""

from __future__ import annotations

from aiogram import F, Router, flags
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.rendering import Renderer
from bot.services.customers import CustomerView
from handlers.keyboards import main_menu


@flags.callback_answer(pre=False)  # answered after it, with the alert it sets
async def stale_button(
    callback: CallbackQuery, callback_answer: CallbackAnswer, render: Renderer, lang: str
) -> None:
    """A button from an old message, or callback data we never made: answer, change nothing."""
    callback_answer.text, callback_answer.show_alert = render.label(lang, "stale_button"), True


async def unexpected_message(
    message: Message, customer: CustomerView | None, render: Renderer, lang: str
) -> None:
    if customer is None or not customer.onboarded:
        await message.answer(render.text(lang, "not_registered"))
        return
    await message.answer(
        render.text(lang, "menu_hint", name=customer.name), reply_markup=main_menu(render, lang)
    )


def create_router() -> Router:
    router = Router(name="fallback")
    router.callback_query.register(stale_button)
    router.message.register(unexpected_message, F.chat.type == ChatType.PRIVATE)
    return router
