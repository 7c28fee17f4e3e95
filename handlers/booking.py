"""The customer books a visit: /book or the menu → service → master (or any) → day → time →
confirm; a slot from a due-offer books at once. Then their visit's buttons: confirm, move, cancel.

Every step edits the same message, and all state travels in the buttons' callback data, so
a conversation survives a restart and an old message's button is re-checked, never trusted.
"""

from __future__ import annotations

from datetime import date

from aiogram import Bot, F, Router, flags
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.business import Business
from bot.buttons import BookingAct
from bot.rendering import Renderer
from bot.services.booking import ActOutcome, BookingService, BookingView, BookOutcome
from bot.services.customers import CustomerView
from bot.services.cycles import CycleService
from bot.services.deposits import DepositService
from handlers.callbacks import (
    BookingCallback,
    BookMenu,
    BookStep,
    CycleAct,
    CycleCallback,
    MenuAct,
    MenuCallback,
    SlotAct,
    SlotCallback,
    day_code,
    day_of,
    from_minutes,
)
from handlers.deposits import hold_and_invoice
from handlers.keyboards import add_rows, show_step
from handlers.waitlist import join_button

CUSTOMER_ACTIONS = (
    BookingAct.CONFIRM,
    BookingAct.CANCEL,
    BookingAct.CANCEL_YES,
    BookingAct.KEEP,
    BookingAct.RESCHEDULE,
)


def _days_keyboard(
    render: Renderer, lang: str, days: list[date], service_id: str, master_id: str, replaces: int
) -> InlineKeyboardBuilder:
    """The days that have free time, three a row; each opens that day's times."""
    builder = InlineKeyboardBuilder()
    for day in days:
        builder.button(
            text=render.label(lang, "day_button", day=day),
            callback_data=BookMenu(
                step=BookStep.TIMES,
                service=service_id,
                master=master_id,
                day=day_code(day),
                replaces=replaces,
            ),
        )
    builder.adjust(3)
    return builder


def _back(render: Renderer, lang: str, target: BookMenu) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=render.label(lang, "back"), callback_data=target.pack())


def _services_view(
    render: Renderer, lang: str, business: Business, upcoming: list, replaces: int = 0
) -> tuple[str, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    for visit in upcoming:
        for action in (BookingAct.RESCHEDULE, BookingAct.CANCEL):
            builder.button(
                text=render.label(lang, f"visit_{action}_short", booking=visit),
                callback_data=BookingCallback(action=action, id=visit.id),
            )
    for service in business.services:
        builder.button(
            text=render.label(lang, "service_button", service=service, business=business),
            callback_data=BookMenu(step=BookStep.MASTERS, service=service.id, replaces=replaces),
        )
    builder.adjust(*([2] * len(upcoming)), *([1] * len(business.services)))
    return str(
        render.text(lang, "booking_services", upcoming=upcoming, business=business)
    ), builder.as_markup()


async def book_command(
    message: Message,
    customer: CustomerView | None,
    booking: BookingService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    assert message.from_user is not None
    if customer is None or not customer.onboarded:
        await message.answer(render.text(lang, "not_registered"))
        return
    text, markup = _services_view(
        render, lang, business, await booking.upcoming(message.from_user.id)
    )
    await message.answer(text, reply_markup=markup)


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def book_button(
    callback: CallbackQuery,
    customer: CustomerView | None,
    booking: BookingService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    if customer is None or not customer.onboarded:
        await callback.answer(render.label(lang, "register_first"), show_alert=True)
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        text, markup = _services_view(
            render, lang, business, await booking.upcoming(callback.from_user.id)
        )
        await callback.message.answer(text, reply_markup=markup)


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def menu_step(
    callback: CallbackQuery,
    callback_data: BookMenu,
    customer: CustomerView | None,
    booking: BookingService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    if customer is None or not customer.onboarded:
        await callback.answer(render.label(lang, "register_first"), show_alert=True)
        return
    data = callback_data
    service = business.service(data.service)
    if data.step is BookStep.SERVICES or service is None:
        if data.step is not BookStep.SERVICES:  # a service the business no longer offers
            await callback.answer(render.label(lang, "stale_button"), show_alert=True)
            return
        text, markup = _services_view(
            render, lang, business, await booking.upcoming(callback.from_user.id), data.replaces
        )
        await show_step(callback, text, markup)
        return
    masters = business.masters_of(service)
    if data.master and business.master(data.master) not in masters:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    if data.step is BookStep.MASTERS and len(masters) > 1:
        builder = InlineKeyboardBuilder()
        builder.button(
            text=render.label(lang, "any_master"),
            callback_data=BookMenu(step=BookStep.DAYS, service=service.id, replaces=data.replaces),
        )
        for master in masters:
            builder.button(
                text=master.name,
                callback_data=BookMenu(
                    step=BookStep.DAYS, service=service.id, master=master.id, replaces=data.replaces
                ),
            )
        builder.adjust(1)
        builder.row(_back(render, lang, BookMenu(step=BookStep.SERVICES, replaces=data.replaces)))
        await show_step(
            callback,
            str(render.text(lang, "booking_masters", service=service)),
            builder.as_markup(),
        )
        return
    master_id = data.master or (masters[0].id if len(masters) == 1 else "")
    if data.step in (BookStep.MASTERS, BookStep.DAYS):
        days = await booking.days_with_slots(service.id, master_id or None)
        builder = _days_keyboard(render, lang, days, service.id, master_id, data.replaces)
        if business.waitlist.enabled and not data.replaces:  # no day fits: wait for one
            builder.row(join_button(render, lang, service.id, master_id))
        builder.row(
            _back(
                render,
                lang,
                BookMenu(
                    step=BookStep.MASTERS if len(masters) > 1 else BookStep.SERVICES,
                    service=service.id,
                    replaces=data.replaces,
                ),
            )
        )
        await show_step(
            callback,
            str(
                render.text(
                    lang,
                    "booking_days",
                    service=service,
                    master=business.master(master_id),
                    days=days,
                )
            ),
            builder.as_markup(),
        )
        return
    chosen = day_of(data.day)
    if data.step is not BookStep.TIMES or chosen is None:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    slots = await booking.slots_on(service.id, master_id or None, chosen)
    builder = add_rows(
        InlineKeyboardBuilder(),
        booking.slot_keyboard(
            lang,
            service.id,
            slots,
            ask_first=True,
            replaces=data.replaces,
            show_master=not master_id,
        ),
    )
    if business.waitlist.enabled and not data.replaces:  # no time fits: wait for one
        builder.row(join_button(render, lang, service.id, master_id, chosen))
    builder.row(
        _back(
            render,
            lang,
            BookMenu(
                step=BookStep.DAYS, service=service.id, master=master_id, replaces=data.replaces
            ),
        )
    )
    await show_step(
        callback,
        str(
            render.text(
                lang,
                "booking_times",
                service=service,
                day=chosen,
                slots=slots,
                master=business.master(master_id),
            )
        ),
        builder.as_markup(),
    )


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def slot_tapped(
    callback: CallbackQuery,
    callback_data: SlotCallback,
    booking: BookingService,
    deposits: DepositService,
    render: Renderer,
    lang: str,
    business: Business,
    bot: Bot,
) -> None:
    data = callback_data
    service, master = business.service(data.service), business.master(data.master)
    at = from_minutes(data.at)  # None: forged, no slot is ever at such a time
    if service is None or master is None or at is None:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    if data.action is SlotAct.PICK:  # the menu asks before booking
        builder = InlineKeyboardBuilder()
        builder.button(
            text=render.label(lang, "booking_confirm"),
            callback_data=SlotCallback(
                action=SlotAct.BOOK,
                service=service.id,
                master=master.id,
                at=data.at,
                replaces=data.replaces,
            ),
        )
        builder.button(
            text=render.label(lang, "back"),
            callback_data=BookMenu(
                step=BookStep.DAYS, service=service.id, master=master.id, replaces=data.replaces
            ),
        )
        builder.adjust(1)
        await show_step(
            callback,
            str(
                render.text(
                    lang,
                    "booking_confirm_ask",
                    service=service,
                    master=master,
                    at=at,
                    business=business,
                    replaces=data.replaces,
                )
            ),
            builder.as_markup(),
        )
        return
    result = await booking.book(
        callback.from_user.id,
        service.id,
        master.id,
        at,
        source="offer" if data.action is SlotAct.OFFER else "menu",
        replaces=data.replaces,
    )
    if result.outcome is BookOutcome.BOOKED:
        await show_step(
            callback, str(render.text(lang, "booking_requested", booking=result.booking)), None
        )
        return
    if result.outcome is BookOutcome.HELD:  # a deposit first: the invoice
        await hold_and_invoice(callback, result, deposits, render, lang, business, bot)
        return
    if result.outcome is BookOutcome.CLOSED:  # a move inside the cancel window
        await _closed(callback, render, lang, business, result.booking)
        return
    if result.outcome is BookOutcome.ALREADY:
        await callback.answer(
            render.label(lang, "booking_already", booking=result.booking), show_alert=True
        )
        return
    if result.outcome is BookOutcome.NOT_CUSTOMER:
        await callback.answer(render.label(lang, "register_first"), show_alert=True)
        return
    if result.outcome is BookOutcome.INVALID:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    # Taken a moment ago, or too late now: say so and show what is free instead.
    day = booking.finder.local_day(at)
    slots = await booking.slots_on(service.id, None, day) or []
    builder = add_rows(
        InlineKeyboardBuilder(),
        [
            *booking.slot_keyboard(
                lang, service.id, slots[:12], ask_first=True, replaces=data.replaces
            ),
            [booking.other_time_button(lang, service.id, data.replaces)],
        ],
    )
    await show_step(
        callback,
        str(render.text(lang, f"booking_{result.outcome.value}", day=day, slots=slots)),
        builder.as_markup(),
    )


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def visit_action(
    callback: CallbackQuery,
    callback_data: BookingCallback,
    booking: BookingService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    """The customer's buttons on their visit: confirm they come, move it, cancel it."""
    action, user = callback_data.action, callback.from_user.id
    visit = await booking.customer_view(user, callback_data.id)
    if visit is None:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    if action is BookingAct.CONFIRM:
        result = await booking.confirm_attendance(user, visit.id)
        if result.outcome is not ActOutcome.DONE:
            await callback.answer(render.label(lang, "visit_not_active"), show_alert=True)
            return
        await callback.answer(render.label(lang, "visit_confirmed_popup"))
        if isinstance(callback.message, Message):
            builder = InlineKeyboardBuilder()
            for then in (BookingAct.RESCHEDULE, BookingAct.CANCEL):
                builder.button(
                    text=render.label(lang, f"visit_{then}"),
                    callback_data=BookingCallback(action=then, id=visit.id),
                )
            await callback.message.edit_reply_markup(reply_markup=builder.as_markup())
        return
    if not booking.is_active(visit):
        await callback.answer(render.label(lang, "visit_not_active"), show_alert=True)
        return
    if action is not BookingAct.KEEP and booking.closed(visit.starts_at):
        await _closed(callback, render, lang, business, visit)
        return
    if action is BookingAct.CANCEL:
        builder = InlineKeyboardBuilder()
        builder.button(
            text=render.label(lang, "visit_cancel_yes"),
            callback_data=BookingCallback(action=BookingAct.CANCEL_YES, id=visit.id),
        )
        builder.button(
            text=render.label(lang, "visit_keep"),
            callback_data=BookingCallback(action=BookingAct.KEEP, id=visit.id),
        )
        await callback.answer()
        if isinstance(callback.message, Message):
            await callback.message.answer(
                render.text(lang, "visit_cancel_ask", booking=visit),
                reply_markup=builder.as_markup(),
            )
    elif action is BookingAct.KEEP:
        await show_step(callback, str(render.text(lang, "visit_kept", booking=visit)), None)
    elif action is BookingAct.CANCEL_YES:
        result = await booking.cancel(user, visit.id)
        if result.outcome is not ActOutcome.DONE:
            await callback.answer(render.label(lang, "visit_not_active"), show_alert=True)
            return
        builder = InlineKeyboardBuilder()
        builder.button(
            text=render.label(lang, "book_again"),
            callback_data=BookMenu(step=BookStep.MASTERS, service=visit.service_id),
        )
        await show_step(
            callback, str(render.text(lang, "visit_cancelled", booking=visit)), builder.as_markup()
        )
    elif action is BookingAct.RESCHEDULE:
        await callback.answer()
        days = await booking.days_with_slots(visit.service_id, visit.master_id)
        builder = _days_keyboard(render, lang, days, visit.service_id, visit.master_id, visit.id)
        builder.row(
            InlineKeyboardButton(
                text=render.label(lang, "other_master"),
                callback_data=BookMenu(
                    step=BookStep.MASTERS, service=visit.service_id, replaces=visit.id
                ).pack(),
            )
        )
        if isinstance(callback.message, Message):
            await callback.message.answer(
                render.text(lang, "visit_reschedule_days", booking=visit, days=days),
                reply_markup=builder.as_markup(),
            )


async def _closed(
    callback: CallbackQuery,
    render: Renderer,
    lang: str,
    business: Business,
    visit: BookingView | None,
) -> None:
    """Inside the cancel window: no cancel or move in the bot; call us (the business's phone)."""
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(
            render.text(lang, "visit_closed_call", booking=visit, business=business)
        )


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def not_now(
    callback: CallbackQuery,
    callback_data: CycleCallback,
    cycles: CycleService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    next_due = await cycles.postpone(
        callback.from_user.id, callback_data.service, callback_data.round
    )
    if next_due is None:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    await show_step(
        callback,
        str(render.text(lang, "offer_postponed", service=business.service(callback_data.service))),
        None,
    )


def create_router() -> Router:
    router = Router(name="booking")
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)
    router.message.register(book_command, Command("book"))
    router.callback_query.register(book_button, MenuCallback.filter(F.action == MenuAct.BOOK))
    router.callback_query.register(menu_step, BookMenu.filter())
    router.callback_query.register(slot_tapped, SlotCallback.filter())
    router.callback_query.register(
        visit_action, BookingCallback.filter(F.action.in_(set(CUSTOMER_ACTIONS)))
    )
    router.callback_query.register(not_now, CycleCallback.filter(F.action == CycleAct.LATER))
    return router
