"""Callback data factories and keyboards shared by several conversations."""
from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import Number
from bot.rendering import Renderer


class MenuCallback(CallbackData, prefix="menu"):
    action: str  # "book" | "coupons" | "profile"


class CouponCallback(CallbackData, prefix="coupon"):
    id: Number


def main_menu(render: Renderer, lang: str, coupon_id: int | None = None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if coupon_id is not None:
        builder.button(text=render.label(lang, "show_coupon"), callback_data=CouponCallback(id=coupon_id))
    builder.button(text=render.label(lang, "book"), callback_data=MenuCallback(action="book"))
    builder.button(text=render.label(lang, "my_coupons"), callback_data=MenuCallback(action="coupons"))
    builder.button(text=render.label(lang, "profile"), callback_data=MenuCallback(action="profile"))
    builder.adjust(1)
    return builder.as_markup()
