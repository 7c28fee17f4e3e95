"""Cancelling a mistaken sale in the admin chat: "Cancel sale" under /sale's answer, or
`/unsale <number>` (the number /sale's answer shows), then a confirmation; the rules are
bot/services/sale_cancel.py's. A stale, forged or second tap is answered and changes nothing."""

from __future__ import annotations

from aiogram import Router, flags
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.business import Business
from bot.rendering import Renderer
from bot.services.sale_cancel import (
    CANCEL_WITHIN,
    CancelOutcome,
    SaleCancel,
    SaleCancelService,
    purchase_number,
)
from bot.services.staff import UsageError
from handlers.admin_chat import AdminChat
from handlers.callbacks import UnsaleAct, UnsaleCallback
from handlers.filters import admin_chat_router

TEMPLATE = "staff_unsale"


def confirm_keyboard(render: Renderer, lang: str, purchase_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for action, label in ((UnsaleAct.YES, "staff_unsale_yes"), (UnsaleAct.NO, "staff_unsale_no")):
        builder.button(
            text=render.label(lang, label),
            callback_data=UnsaleCallback(action=action, purchase_id=purchase_id),
        )
    builder.adjust(2)
    return builder.as_markup()


def _text(
    render: Renderer, lang: str, found: SaleCancel, business: Business, *, kept: bool = False
) -> str:
    return render.text(
        lang, TEMPLATE, found=found, business=business, days=CANCEL_WITHIN.days, kept=kept
    )


async def _ask(
    message: Message, found: SaleCancel, render: Renderer, lang: str, business: Business
) -> None:
    """The confirmation (a reply to the sale's answer or the command), or why it cannot be."""
    await message.reply(
        _text(render, lang, found, business),
        reply_markup=(
            confirm_keyboard(render, lang, found.purchase_id)
            if found.outcome is CancelOutcome.ASK
            else None
        ),
    )


async def unsale(
    message: Message,
    command: CommandObject,
    sale_cancel: SaleCancelService,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    number = purchase_number(command.args or "")
    if number is None:
        raise UsageError("unsale_usage", days=CANCEL_WITHIN.days)  # answered by `usage_error`
    await _ask(message, await sale_cancel.preview(number), render, staff_lang, business)


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def unsale_button(
    callback: CallbackQuery,
    callback_data: UnsaleCallback,
    sale_cancel: SaleCancelService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    message = callback.message if isinstance(callback.message, Message) else None
    purchase_id, action = callback_data.purchase_id, callback_data.action
    if action is UnsaleAct.NO:
        await callback.answer()
        if message is not None and message.reply_markup is not None:  # not edited already
            kept = SaleCancel(CancelOutcome.ASK, purchase_id)
            await message.edit_text(_text(render, staff_lang, kept, business, kept=True))
        return
    if action is UnsaleAct.ASK:
        found = await sale_cancel.preview(purchase_id)
    else:
        try:
            found = await sale_cancel.cancel(admin_chat.staff_of(callback.from_user), purchase_id)
        except UsageError:  # refused (a package's visits used): `usage_error` edits in why
            await callback.answer()  # the press is ours to answer (the flag), or it spins
            raise
    if found.outcome is CancelOutcome.NOT_FOUND:
        await callback.answer(render.label(staff_lang, "staff_unsale_gone"), show_alert=True)
        return
    if found.outcome is CancelOutcome.ALREADY:  # a second tap, or another staff member first
        await callback.answer(
            render.label(staff_lang, "staff_unsale_already", found=found), show_alert=True
        )
        if action is UnsaleAct.YES and message is not None and message.reply_markup is not None:
            await message.edit_reply_markup(reply_markup=None)
        return
    await callback.answer()
    if message is None:
        return
    if action is UnsaleAct.ASK:
        await _ask(message, found, render, staff_lang, business)
    else:
        await message.edit_text(_text(render, staff_lang, found, business))


def create_router() -> Router:
    router = admin_chat_router("sale-cancel-staff")
    router.message.register(unsale, Command("unsale"))
    router.callback_query.register(unsale_button, UnsaleCallback.filter())
    return router
