"""A customer's coupons: /mycoupons, the menu button, and "show coupon" buttons."""

from __future__ import annotations

from aiogram import F, Router, flags
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.business import Business
from bot.rendering import Renderer
from bot.services.customers import CustomerService
from handlers.callbacks import CouponCallback, MenuAct, MenuCallback


async def _send_coupons(
    message: Message,
    tg_user_id: int,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    coupons = await customers.active_coupons(tg_user_id)
    await message.answer(render.text(lang, "my_coupons", coupons=coupons, business=business))


async def my_coupons(
    message: Message, customers: CustomerService, render: Renderer, lang: str, business: Business
) -> None:
    assert message.from_user is not None
    await _send_coupons(message, message.from_user.id, customers, render, lang, business)


async def my_coupons_button(
    callback: CallbackQuery,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    if isinstance(callback.message, Message):
        await _send_coupons(
            callback.message, callback.from_user.id, customers, render, lang, business
        )


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def show_coupon(
    callback: CallbackQuery,
    callback_data: CouponCallback,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    coupon = await customers.coupon(callback.from_user.id, callback_data.id)
    if coupon is None:  # someone else's id, an erased customer, or forged data
        await callback.answer(render.label(lang, "coupon_unknown"), show_alert=True)
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(
            render.text(lang, "coupon_card", coupon=coupon, business=business)
        )


def create_router() -> Router:
    router = Router(name="coupons")
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(my_coupons, Command("mycoupons"))
    router.callback_query.register(
        my_coupons_button, MenuCallback.filter(F.action == MenuAct.COUPONS)
    )
    router.callback_query.register(show_coupon, CouponCallback.filter())
    return router
