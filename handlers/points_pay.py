"""Paying with points at the edge: staff's "pay with points" under /sale's answer (and
`/sale … points:N`, through `ask_points`), and the customer's Confirm / Decline in their chat.
The rules are bot/services/points_pay.py's."""

from __future__ import annotations

from aiogram import F, Router, flags
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message

from bot.business import Business
from bot.rendering import Renderer
from bot.services.customers import CustomerView
from bot.services.points_pay import AnswerOutcome, PointsPayService
from bot.services.staff import Staff, UsageError
from bot.telegram_text import TEXT_LIMIT, truncate_html
from handlers.admin_chat import AdminChat
from handlers.callbacks import PayPoints, PointsAct, PointsAnswerCallback
from handlers.filters import admin_chat_router


async def ask_points(
    message: Message,
    staff: Staff,
    purchase_id: int,
    points: int | None,
    points_pay: PointsPayService,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    """Ask the sale's customer; staff get what was asked, or why it cannot be."""
    try:
        asked = await points_pay.ask(staff, purchase_id, points)
    except UsageError as error:
        text = render.text(staff_lang, "points_pay_refused", reason=error.reason, **error.details)
        await message.answer(truncate_html(text, TEXT_LIMIT))
        return
    await message.answer(
        render.text(staff_lang, "points_pay_asked", asked=asked, business=business)
    )


async def pay_button(
    callback: CallbackQuery,
    callback_data: PayPoints,
    points_pay: PointsPayService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    if not isinstance(callback.message, Message):
        return
    await ask_points(
        callback.message,
        admin_chat.staff_of(callback.from_user),
        callback_data.purchase_id,
        None,
        points_pay,
        render,
        staff_lang,
        business,
    )


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edit)
async def answer_button(
    callback: CallbackQuery,
    callback_data: PointsAnswerCallback,
    customer: CustomerView | None,
    points_pay: PointsPayService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    if customer is None:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    answer = await points_pay.answer(
        customer.id, callback_data.id, callback_data.action is PointsAct.CONFIRM
    )
    if answer.outcome in (AnswerOutcome.STALE, AnswerOutcome.ALREADY):
        await callback.answer(render.label(lang, f"points_{answer.outcome}"), show_alert=True)
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            render.text(lang, "points_answer", answer=answer, business=business)
        )


def create_router() -> Router:
    router = Router(name="points-pay")
    private = Router(name="points-pay-private")
    private.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)
    private.callback_query.register(answer_button, PointsAnswerCallback.filter())
    admin = admin_chat_router("points-pay-admin-chat")
    admin.callback_query.register(pay_button, PayPoints.filter())
    router.include_routers(private, admin)
    return router
