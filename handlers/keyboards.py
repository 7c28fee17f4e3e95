"""Keyboards shared by several conversations, and the one place the core's buttons (intents,
`bot.buttons`) become Telegram's inline keyboards, packed with the callback-data factories."""

from __future__ import annotations

from functools import singledispatch
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot import buttons as b
from bot.rendering import Renderer
from handlers.callbacks import (
    BookFromBroadcast,
    BookingCallback,
    BookMenu,
    BookStep,
    BroadcastAct,
    BroadcastAction,
    CouponCallback,
    CycleAct,
    CycleCallback,
    MenuAct,
    MenuCallback,
    PointsAct,
    PointsAnswerCallback,
    SlotAct,
    SlotCallback,
    SurveyCallback,
    UnsubscribeCallback,
    WaitAct,
    WaitlistCallback,
    to_minutes,
)


@singledispatch
def callback_of(intent: b.Intent) -> CallbackData:
    """The callback data a button with this intent carries."""
    raise TypeError(f"no callback data for {intent!r}")


@callback_of.register
def _(intent: b.BookSlot) -> CallbackData:
    return SlotCallback(
        action=SlotAct.PICK if intent.ask_first else SlotAct.OFFER,
        service=intent.service,
        master=intent.master,
        at=to_minutes(intent.at),
        replaces=intent.replaces,
    )


@callback_of.register
def _(intent: b.BookService) -> CallbackData:
    return BookMenu(step=BookStep.MASTERS, service=intent.service, replaces=intent.replaces)


@callback_of.register
def _(intent: b.OpenBooking) -> CallbackData:
    return BookFromBroadcast()


@callback_of.register
def _(intent: b.BookingAction) -> CallbackData:
    return BookingCallback(action=intent.action, id=intent.id)


@callback_of.register
def _(intent: b.PostponeCycle) -> CallbackData:
    return CycleCallback(action=CycleAct.LATER, service=intent.service, round=intent.round)


@callback_of.register
def _(intent: b.Unsubscribe) -> CallbackData:
    return UnsubscribeCallback()


@callback_of.register
def _(intent: b.BroadcastReport) -> CallbackData:
    return BroadcastAction(action=BroadcastAct.REPORT, id=intent.id)


@callback_of.register
def _(intent: b.StopBroadcast) -> CallbackData:
    return BroadcastAction(action=BroadcastAct.CANCEL, id=intent.id)


@callback_of.register
def _(intent: b.ShowCoupons) -> CallbackData:
    return MenuCallback(action=MenuAct.COUPONS)


@callback_of.register
def _(intent: b.SurveyScore) -> CallbackData:
    return SurveyCallback(id=intent.survey_id, score=intent.score)


@callback_of.register
def _(intent: b.AnswerPoints) -> CallbackData:
    act = PointsAct.CONFIRM if intent.confirm else PointsAct.DECLINE
    return PointsAnswerCallback(action=act, id=intent.request_id)


@callback_of.register
def _(intent: b.TakeWaitlistOffer) -> CallbackData:
    return WaitlistCallback(action=WaitAct.TAKE, id=intent.offer_id)


def button(item: b.Button) -> InlineKeyboardButton:
    if isinstance(item.intent, b.OpenUrl):
        return InlineKeyboardButton(text=item.text, url=item.intent.url)
    return InlineKeyboardButton(text=item.text, callback_data=callback_of(item.intent).pack())


def add_rows(builder: InlineKeyboardBuilder, keyboard: b.Keyboard) -> InlineKeyboardBuilder:
    """The core's rows of buttons, added to a keyboard the handler goes on building."""
    for row in keyboard:
        builder.row(*(button(item) for item in row))
    return builder


def keyboard_markup(keyboard: b.Keyboard | None) -> InlineKeyboardMarkup | None:
    """A keyboard a service returned, as Telegram's inline keyboard (None for no buttons)."""
    if not keyboard:
        return None
    return add_rows(InlineKeyboardBuilder(), keyboard).as_markup()


def stored_markup(stored: dict[str, Any] | None) -> InlineKeyboardMarkup | None:
    """The buttons an outbox row stores, at send time. Rows written before intents existed hold
    Telegram's own JSON (`{"inline_keyboard": …}`): those are sent as they are."""
    if not stored:
        return None
    if not b.is_intents(stored):
        return InlineKeyboardMarkup.model_validate(stored)
    return keyboard_markup(b.load(stored))


async def show_step(
    callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None
) -> None:
    """A menu's next step (booking's, the waitlist's): the press answered, and the menu's message
    edited in place into `text` with its buttons."""
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(text, reply_markup=markup)


def main_menu(render: Renderer, lang: str, coupon_id: int | None = None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if coupon_id is not None:
        builder.button(
            text=render.label(lang, "show_coupon"), callback_data=CouponCallback(id=coupon_id)
        )
    builder.button(text=render.label(lang, "book"), callback_data=MenuCallback(action=MenuAct.BOOK))
    builder.button(
        text=render.label(lang, "my_coupons"), callback_data=MenuCallback(action=MenuAct.COUPONS)
    )
    builder.button(
        text=render.label(lang, "profile"), callback_data=MenuCallback(action=MenuAct.PROFILE)
    )
    builder.adjust(1)
    return builder.as_markup()
