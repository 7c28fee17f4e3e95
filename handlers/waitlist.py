"""The waitlist: `/waitlist` lists the customer's entries (a button to leave each, one to join);
joining is service → master (or any) → days → time of day, also entered from /book's days and
times views; a freed time's offer has a "book it" button. State travels in the buttons' data
and is checked again by the service, never trusted."""

from __future__ import annotations

from datetime import date, timedelta

from aiogram import Bot, F, Router, flags
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.business import Business
from bot.rendering import Renderer
from bot.services.customers import CustomerView
from bot.services.deposits import DepositService
from bot.services.waitlist import DayPart, JoinOutcome, TakeOutcome, WaitlistService
from handlers.callbacks import WaitAct, WaitlistCallback, WaitMenu, WaitStep, day_code, day_of
from handlers.deposits import hold_and_invoice
from handlers.keyboards import show_step

RANGES = (1, 3, 7, 14)  # the day ranges offered, from today (capped by how far one can book)


def join_button(
    render: Renderer, lang: str, service_id: str, master_id: str, day: date | None = None
) -> InlineKeyboardButton:
    """/book's "wait for a time" button: from the days view (days to choose), or from one day's
    times (that day; the time of day to choose)."""
    data = (
        WaitMenu(step=WaitStep.DAYS, service=service_id, master=master_id)
        if day is None
        else WaitMenu(
            step=WaitStep.TIME,
            service=service_id,
            master=master_id,
            first=day_code(day),
            last=day_code(day),
        )
    )
    return InlineKeyboardButton(text=render.label(lang, "waitlist_join"), callback_data=data.pack())


async def _list_view(
    waitlist: WaitlistService, render: Renderer, lang: str, tg_user_id: int
) -> tuple[str, InlineKeyboardMarkup]:
    entries = await waitlist.entries(tg_user_id)
    builder = InlineKeyboardBuilder()
    for entry in entries:
        builder.button(
            text=render.label(lang, "waitlist_leave", entry=entry),
            callback_data=WaitlistCallback(action=WaitAct.LEAVE, id=entry.id),
        )
    builder.button(
        text=render.label(lang, "waitlist_add"), callback_data=WaitMenu(step=WaitStep.SERVICES)
    )
    builder.adjust(1)
    return str(render.text(lang, "waitlist_list", entries=entries)), builder.as_markup()


async def waitlist_command(
    message: Message,
    customer: CustomerView | None,
    waitlist: WaitlistService,
    render: Renderer,
    lang: str,
) -> None:
    assert message.from_user is not None
    if customer is None or not customer.onboarded:
        await message.answer(render.text(lang, "not_registered"))
        return
    if not waitlist.enabled:
        await message.answer(render.text(lang, "waitlist_off"))
        return
    text, markup = await _list_view(waitlist, render, lang, message.from_user.id)
    await message.answer(text, reply_markup=markup)


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def menu_step(
    callback: CallbackQuery,
    callback_data: WaitMenu,
    customer: CustomerView | None,
    waitlist: WaitlistService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    if customer is None or not customer.onboarded:
        await callback.answer(render.label(lang, "register_first"), show_alert=True)
        return
    if not waitlist.enabled:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    data, user = callback_data, callback.from_user.id
    if data.step is WaitStep.LIST:
        await show_step(callback, *await _list_view(waitlist, render, lang, user))
        return
    if data.step is WaitStep.SERVICES:
        builder = InlineKeyboardBuilder()
        for offered in business.services:
            builder.button(
                text=render.label(lang, "service_button", service=offered, business=business),
                callback_data=WaitMenu(step=WaitStep.MASTERS, service=offered.id),
            )
        builder.adjust(1)
        await show_step(callback, str(render.text(lang, "waitlist_services")), builder.as_markup())
        return
    service = business.service(data.service)
    masters = business.masters_of(service) if service else []
    master = business.master(data.master) if data.master else None
    if service is None or (data.master and master not in masters):
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    if data.step is WaitStep.MASTERS and len(masters) > 1:
        builder = InlineKeyboardBuilder()
        builder.button(
            text=render.label(lang, "any_master"),
            callback_data=WaitMenu(step=WaitStep.DAYS, service=service.id),
        )
        for one in masters:
            builder.button(
                text=one.name,
                callback_data=WaitMenu(step=WaitStep.DAYS, service=service.id, master=one.id),
            )
        builder.adjust(1)
        await show_step(
            callback,
            str(render.text(lang, "waitlist_masters", service=service)),
            builder.as_markup(),
        )
        return
    if master is None and len(masters) == 1:
        master = masters[0]
    master_id = master.id if master else ""
    if data.step in (WaitStep.MASTERS, WaitStep.DAYS):
        today, last = waitlist.today(), waitlist.last_day()
        builder = InlineKeyboardBuilder()
        for count in RANGES:
            end = min(today + timedelta(days=count - 1), last)
            builder.button(
                text=render.label(lang, "waitlist_range", days=count, first=today, last=end),
                callback_data=WaitMenu(
                    step=WaitStep.TIME,
                    service=service.id,
                    master=master_id,
                    first=day_code(today),
                    last=day_code(end),
                ),
            )
            if end == last:
                break
        builder.adjust(2)
        await show_step(
            callback,
            str(render.text(lang, "waitlist_days", service=service, master=master)),
            builder.as_markup(),
        )
        return
    first, last_day = day_of(data.first), day_of(data.last)
    if first is None or last_day is None:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    if data.step is WaitStep.TIME:
        builder = InlineKeyboardBuilder()
        for part in DayPart:
            builder.button(
                text=render.label(lang, f"waitlist_part_{part.name.lower()}"),
                callback_data=WaitMenu(
                    step=WaitStep.JOIN,
                    service=service.id,
                    master=master_id,
                    first=data.first,
                    last=data.last,
                    part=part,
                ),
            )
        builder.adjust(1)
        await show_step(
            callback,
            str(
                render.text(
                    lang,
                    "waitlist_time",
                    service=service,
                    master=master,
                    first=first,
                    last=last_day,
                )
            ),
            builder.as_markup(),
        )
        return
    result = await waitlist.join(user, service.id, master_id or None, first, last_day, data.part)
    if result.outcome in (JoinOutcome.INVALID, JoinOutcome.OFF):
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    if result.outcome is JoinOutcome.NOT_CUSTOMER:
        await callback.answer(render.label(lang, "register_first"), show_alert=True)
        return
    builder = InlineKeyboardBuilder()
    builder.button(
        text=render.label(lang, "waitlist_mine"), callback_data=WaitMenu(step=WaitStep.LIST)
    )
    await show_step(
        callback,
        str(
            render.text(
                lang,
                f"waitlist_{result.outcome.value}",
                entry=result.entry,
                limit=business.waitlist.max_entries,
            )
        ),
        builder.as_markup(),
    )


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def entry_action(
    callback: CallbackQuery,
    callback_data: WaitlistCallback,
    waitlist: WaitlistService,
    deposits: DepositService,
    render: Renderer,
    lang: str,
    business: Business,
    bot: Bot,
) -> None:
    user = callback.from_user.id
    if callback_data.action is WaitAct.LEAVE:
        if not await waitlist.leave(user, callback_data.id):
            await callback.answer(render.label(lang, "stale_button"), show_alert=True)
            return
        await callback.answer(render.label(lang, "waitlist_left"))
        if isinstance(callback.message, Message):
            text, markup = await _list_view(waitlist, render, lang, user)
            await callback.message.edit_text(text, reply_markup=markup)
        return
    result = await waitlist.take(user, callback_data.id)
    if result.outcome is TakeOutcome.BOOKED:
        await show_step(
            callback, str(render.text(lang, "booking_requested", booking=result.booking)), None
        )
    elif result.outcome is TakeOutcome.HELD and result.held is not None:  # a deposit first
        await hold_and_invoice(callback, result.held, deposits, render, lang, business, bot)
    elif result.outcome is TakeOutcome.GONE:
        if isinstance(callback.message, Message) and callback.message.reply_markup:
            await show_step(callback, str(render.text(lang, "waitlist_gone")), None)
        else:  # told already (a second tap on an old copy of the offer)
            await callback.answer(render.label(lang, "waitlist_gone_short"), show_alert=True)
    elif result.outcome is TakeOutcome.ALREADY:
        await callback.answer(
            render.label(lang, "waitlist_have_visit", booking=result.booking), show_alert=True
        )
    elif result.outcome is TakeOutcome.NOT_CUSTOMER:
        await callback.answer(render.label(lang, "register_first"), show_alert=True)
    else:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)


def create_router() -> Router:
    router = Router(name="waitlist")
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)
    router.message.register(waitlist_command, Command("waitlist"))
    router.callback_query.register(menu_step, WaitMenu.filter())
    router.callback_query.register(entry_action, WaitlistCallback.filter())
    return router
