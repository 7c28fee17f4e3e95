"""Deposits at the Telegram edge: the invoice after a held booking, Telegram's pre-checkout
question, the successful payment; in the admin chat, the card's "only with deposit" mark and
the staff's cancellation of a visit (late inside the cancel window). The rules are in
`bot/services/deposits.py`."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router, flags
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery

from bot.business import Business
from bot.buttons import BookingAct
from bot.rendering import Renderer
from bot.services.booking import ActOutcome, BookingService, BookResult
from bot.services.deposits import DepositService, PaidOutcome
from handlers.admin_chat import AdminChat
from handlers.callbacks import BookingCallback, CardAct, CardCallback
from handlers.filters import admin_chat_router
from handlers.masters import _actor, _day_view, _refuse

log = logging.getLogger("carebot.deposits")


async def hold_and_invoice(
    callback: CallbackQuery,
    result: BookResult,
    deposits: DepositService,
    render: Renderer,
    lang: str,
    business: Business,
    bot: Bot,
) -> None:
    """The time is held: say so in the booking's message, then send the invoice. An invoice
    Telegram refuses (a provider token revoked, an amount it does not take) lets the time go at
    once, and the customer is told deposits cannot be taken now."""
    assert result.booking is not None
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            render.text(
                lang,
                "deposit_hold",
                booking=result.booking,
                amount=result.deposit_minor,
                why=result.why,
                business=business,
            ),
            reply_markup=None,
        )
    invoice = await deposits.invoice(callback.from_user.id, result.booking.id, lang)
    try:
        if invoice is None:
            raise LookupError("no invoice for a hold just made")
        await bot.send_invoice(
            chat_id=invoice.chat_id,
            title=invoice.title,
            description=invoice.description,
            payload=invoice.payload,
            currency=invoice.currency,
            prices=[LabeledPrice(label=invoice.label, amount=invoice.amount_minor)],
            provider_token=invoice.provider_token,
        )
    except (TelegramAPIError, LookupError) as error:
        log.error("the deposit's invoice could not be sent; the time is let go: %s", error)
        await deposits.drop_hold(callback.from_user.id, result.booking.id)
        if isinstance(callback.message, Message):
            await callback.message.answer(
                render.text(lang, "deposit_unavailable", business=business)
            )


async def checkout(
    query: PreCheckoutQuery,
    deposits: DepositService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    """Telegram asks before charging: yes while the hold is theirs, else a polite no."""
    refusal = await deposits.checkout(
        query.from_user.id, query.invoice_payload, query.currency, query.total_amount
    )
    if refusal is None:
        await query.answer(ok=True)
    else:
        await query.answer(ok=False, error_message=render.label(lang, refusal, business=business))


async def paid(
    message: Message,
    deposits: DepositService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    """The money came. Confirmed: the confirmation goes through the outbox, with the visit's
    buttons. The time lost meanwhile: recorded as refund due, staff told, the customer answered."""
    payment = message.successful_payment
    assert payment is not None and message.from_user is not None
    result = await deposits.paid(
        message.from_user.id,
        payment.invoice_payload,
        payment.currency,
        payment.total_amount,
        payment.telegram_payment_charge_id,
        payment.provider_payment_charge_id,
    )
    if result.outcome is PaidOutcome.REFUND_DUE:
        await message.answer(
            render.text(
                lang,
                "deposit_late_paid",
                booking=result.booking,
                deposit=result.deposit,
                business=business,
            )
        )
    elif result.outcome is PaidOutcome.UNKNOWN:
        await message.answer(render.text(lang, "deposit_unknown", business=business))


@flags.callback_answer(disabled=True)  # answers the press itself, with an alert
async def toggle_mark(
    callback: CallbackQuery,
    callback_data: CardCallback,
    deposits: DepositService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
) -> None:
    """The card's "only with deposit": marks, or unmarks, the customer."""
    staff = admin_chat.staff_of(callback.from_user)
    marked = await deposits.toggle_mark(callback_data.customer_id, staff.id, staff.name)
    if marked is None:
        await callback.answer(render.label(staff_lang, "staff_customer_gone"), show_alert=True)
        return
    await callback.answer(
        render.label(staff_lang, "deposit_marked" if marked else "deposit_unmarked"),
        show_alert=True,
    )


@flags.callback_answer(disabled=True)  # answers the press itself, with an alert
async def staff_cancel(
    callback: CallbackQuery,
    callback_data: BookingCallback,
    booking: BookingService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    """The staff cancel a visit from the day's view (the customer called)."""
    result = await booking.staff_cancel(callback_data.id, _actor(callback, admin_chat))
    if await _refuse(callback, result, render, staff_lang):
        return
    assert result.outcome is ActOutcome.DONE and result.booking is not None
    await callback.answer(
        render.label(staff_lang, "visit_staff_cancelled", booking=result.booking), show_alert=True
    )
    if isinstance(callback.message, Message):  # the day's view as it is now
        text, markup = await _day_view(
            booking,
            render,
            staff_lang,
            list(business.masters),
            booking.finder.local_day(result.booking.starts_at),
            booking.today(),
            staff=True,
        )
        await callback.message.edit_text(text, reply_markup=markup)


@flags.callback_answer(disabled=True)  # answers the press itself, with an alert
async def refund_kept(
    callback: CallbackQuery,
    callback_data: BookingCallback,
    deposits: DepositService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    """Under "the deposit is kept": the staff refund it after all (by hand); recorded."""
    staff = admin_chat.staff_of(callback.from_user)
    changed, deposit = await deposits.refund_kept(callback_data.id, staff.id, staff.name)
    if deposit is None:
        await callback.answer(render.label(staff_lang, "stale_button"), show_alert=True)
        return
    label = "deposit_refund_recorded" if changed else "deposit_refund_already"
    await callback.answer(
        render.label(staff_lang, label, deposit=deposit, business=business), show_alert=True
    )
    if changed and isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)


def create_router() -> Router:
    router = Router(name="deposits")
    router.pre_checkout_query.register(checkout)
    router.message.register(paid, F.successful_payment, F.chat.type == ChatType.PRIVATE)
    admin = admin_chat_router("deposits-admin-chat")
    admin.callback_query.register(toggle_mark, CardCallback.filter(F.action == CardAct.DEPOSIT))
    admin.callback_query.register(
        staff_cancel, BookingCallback.filter(F.action == BookingAct.STAFF_CANCEL)
    )
    admin.callback_query.register(
        refund_kept, BookingCallback.filter(F.action == BookingAct.REFUND_DEPOSIT)
    )
    router.include_router(admin)
    return router
