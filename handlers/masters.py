"""Masters at work: joining by the owner's invite link, accepting or declining requests,
their day (/today, /tomorrow), closing visits (done → sale, or no-show), days off.

A master works in their private chat with the bot; the same buttons and commands work for
the staff in the admin chat (a request nobody answered is escalated there).
"""

from __future__ import annotations

from datetime import date, timedelta

from aiogram import Bot, F, Router, flags
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.deep_linking import create_start_link
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.business import Business, Master
from bot.buttons import BookingAct
from bot.db.models import ACTIVE_BOOKING
from bot.rendering import Renderer
from bot.services.booking import Actor, ActOutcome, ActResult, BookingService, BookingView
from bot.services.days import parse_day
from bot.services.staff import find_master
from handlers.admin_chat import AdminChat
from handlers.callbacks import BookingCallback
from handlers.filters import InAdminChat, admin_chat_router

MASTER_ACTIONS = (
    BookingAct.ACCEPT,
    BookingAct.DECLINE,
    BookingAct.DECLINE_NOW,
    BookingAct.DONE,
    BookingAct.NO_SHOW,
)
MASTER_COMMANDS = ("today", "tomorrow", "dayoff", "workday")
INVITE_PREFIX = "master_"


class DeclineReason(StatesGroup):
    text = State()


def _actor(callback: CallbackQuery, admin_chat: AdminChat) -> Actor:
    message = callback.message
    if isinstance(message, Message) and admin_chat.is_here(message.chat.id):
        return Actor(
            callback.from_user.id, admin_chat.staff_of(callback.from_user).name, staff=True
        )
    return Actor(callback.from_user.id, callback.from_user.full_name)


async def _refuse(callback: CallbackQuery, result: ActResult, render: Renderer, lang: str) -> bool:
    """Answer a press that changes nothing; True when the caller should stop."""
    if result.outcome is ActOutcome.DONE:
        return False
    label = {
        ActOutcome.NOT_YOURS: "booking_not_yours",
        ActOutcome.ALREADY: "booking_already_decided",
        ActOutcome.TOO_EARLY: "visit_too_early",
    }.get(result.outcome, "stale_button")
    context = {"booking": result.booking} if label != "stale_button" else {}
    await callback.answer(render.label(lang, label, **context), show_alert=True)
    return True


# ---- joining ----------------------------------------------------------------------------------


async def invite(
    message: Message,
    command: CommandObject,
    bot: Bot,
    booking: BookingService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    assert message.from_user is not None
    master = business.master(find_master(business, command.args or ""))
    if master is None:
        await message.reply(render.text(staff_lang, "master_invite_usage", business=business))
        return
    staff = admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature)
    token = await booking.invite(master.id, staff.name)
    link = await create_start_link(bot, INVITE_PREFIX + token)
    await message.reply(render.text(staff_lang, "master_invite", master=master, link=link))


async def join(
    message: Message, command: CommandObject, booking: BookingService, render: Renderer, lang: str
) -> None:
    assert message.from_user is not None and command.args is not None
    master = await booking.join(message.from_user.id, command.args.removeprefix(INVITE_PREFIX))
    await message.answer(
        render.text(lang, "master_joined" if master else "master_invite_invalid", master=master)
    )


# ---- requests ---------------------------------------------------------------------------------


def _decided_text(render: Renderer, lang: str, visit: BookingView | None) -> str:
    return str(render.text(lang, "booking_decided", booking=visit))


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def accept(
    callback: CallbackQuery,
    callback_data: BookingCallback,
    booking: BookingService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
) -> None:
    result = await booking.decide(callback_data.id, _actor(callback, admin_chat), accept=True)
    if await _refuse(callback, result, render, staff_lang):
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            _decided_text(render, staff_lang, result.booking), reply_markup=None
        )


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def decline(
    callback: CallbackQuery,
    callback_data: BookingCallback,
    state: FSMContext,
    booking: BookingService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
) -> None:
    """In the master's chat, ask for a reason the customer will see (or none); in the admin
    chat, decline at once."""
    actor = _actor(callback, admin_chat)
    if actor.staff or callback_data.action is BookingAct.DECLINE_NOW:
        await state.clear()
        result = await booking.decide(callback_data.id, actor, accept=False)
        if await _refuse(callback, result, render, staff_lang):
            return
        await callback.answer()
        if isinstance(callback.message, Message):
            await callback.message.edit_text(
                _decided_text(render, staff_lang, result.booking), reply_markup=None
            )
        return
    allowed = await booking.may_decide(callback_data.id, actor)
    if await _refuse(callback, allowed, render, staff_lang):
        return
    await callback.answer()
    builder = InlineKeyboardBuilder()
    builder.button(
        text=render.label(staff_lang, "decline_no_reason"),
        callback_data=BookingCallback(action=BookingAct.DECLINE_NOW, id=callback_data.id),
    )
    if isinstance(callback.message, Message):
        await callback.message.answer(
            render.text(staff_lang, "decline_reason_ask", booking=allowed.booking),
            reply_markup=builder.as_markup(),
        )
        await state.set_state(DeclineReason.text)
        await state.set_data(
            {"booking_id": callback_data.id, "request_id": callback.message.message_id}
        )


async def decline_reason(
    message: Message,
    state: FSMContext,
    bot: Bot,
    booking: BookingService,
    render: Renderer,
    staff_lang: str,
) -> None:
    assert message.from_user is not None
    data = await state.get_data()
    await state.clear()
    actor = Actor(message.from_user.id, message.from_user.full_name)
    result = await booking.decide(int(data["booking_id"]), actor, accept=False, reason=message.text)
    if result.outcome is not ActOutcome.DONE:
        await message.answer(
            render.label(staff_lang, "booking_already_decided", booking=result.booking)
        )
        return
    await bot.edit_message_text(
        _decided_text(render, staff_lang, result.booking),
        chat_id=message.chat.id,
        message_id=int(data["request_id"]),
        reply_markup=None,
    )
    await message.answer(render.text(staff_lang, "decline_sent", booking=result.booking))


# ---- the day ----------------------------------------------------------------------------------


async def _day_view(
    booking: BookingService,
    render: Renderer,
    lang: str,
    masters: list[Master],
    day: date,
    today: date,
    *,
    staff: bool = False,
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The day's visits; today's and past ones with done / no-show. In the admin chat, with the
    cancel window on ([deposits]), the visits ahead also get the staff's cancel (the customer
    called: bot/services/deposits.py)."""
    visits = await booking.schedule([m.id for m in masters], day)
    builder = InlineKeyboardBuilder()
    closable = [v for v in visits if v.state in ACTIVE_BOOKING] if day <= today else []
    cancellable = (
        [v for v in visits if booking.is_active(v)]
        if staff and booking.business.deposits.on
        else []
    )
    sizes: list[int] = []
    for visit in closable:
        builder.button(
            text=render.label(lang, "visit_done", booking=visit),
            callback_data=BookingCallback(action=BookingAct.DONE, id=visit.id),
        )
        builder.button(
            text=render.label(lang, "visit_no_show", booking=visit),
            callback_data=BookingCallback(action=BookingAct.NO_SHOW, id=visit.id),
        )
        sizes.append(2)
    for visit in cancellable:
        builder.button(
            text=render.label(lang, "visit_staff_cancel", booking=visit),
            callback_data=BookingCallback(action=BookingAct.STAFF_CANCEL, id=visit.id),
        )
        sizes.append(1)
    builder.adjust(*sizes)
    text = render.text(
        lang, "master_day", visits=visits, day=day, masters=masters, many=len(masters) > 1
    )
    return str(text), builder.as_markup() if sizes else None


async def _whose_day(
    message: Message, booking: BookingService, admin_chat: AdminChat, business: Business
) -> list[Master] | None:
    """The master's own bookings in their chat; every master's in the admin chat."""
    assert message.from_user is not None
    if admin_chat.is_here(message.chat.id):
        return list(business.masters)
    if message.chat.type != ChatType.PRIVATE:
        return None
    master = await booking.master_of(message.from_user.id)
    return [master] if master else None


async def day_command(
    message: Message,
    command: CommandObject,
    booking: BookingService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    lang: str,
    business: Business,
) -> None:
    masters = await _whose_day(message, booking, admin_chat, business)
    if masters is None:
        await message.answer(render.text(lang, "masters_only"))
        return
    today = booking.today()
    day = today + timedelta(days=1 if command.command == "tomorrow" else 0)
    text, markup = await _day_view(
        booking, render, staff_lang, masters, day, today, staff=admin_chat.is_here(message.chat.id)
    )
    await message.answer(text, reply_markup=markup)


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def close_visit(
    callback: CallbackQuery,
    callback_data: BookingCallback,
    booking: BookingService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    actor = _actor(callback, admin_chat)
    result = await booking.close(
        callback_data.id, actor, done=callback_data.action is BookingAct.DONE
    )
    if await _refuse(callback, result, render, staff_lang):
        return
    assert result.booking is not None
    await callback.answer(
        render.label(staff_lang, "visit_closed", booking=result.booking, business=business)
    )
    if isinstance(callback.message, Message):
        masters = (
            list(business.masters)
            if actor.staff
            else [m for m in business.masters if m.id == result.booking.master_id]
        )
        today = booking.today()
        text, markup = await _day_view(
            booking,
            render,
            staff_lang,
            masters,
            booking.finder.local_day(result.booking.starts_at),
            today,
            staff=actor.staff,
        )
        await callback.message.edit_text(text, reply_markup=markup)


async def day_off(
    message: Message,
    command: CommandObject,
    booking: BookingService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    lang: str,
    business: Business,
) -> None:
    """/dayoff 25.11 (a master, for themselves) or /dayoff anna 25.11 (staff, in the admin chat);
    /workday takes a day off back the same way (its times go to the waitlist)."""
    assert message.from_user is not None
    args = (command.args or "").split()
    in_admin = admin_chat.is_here(message.chat.id)
    if in_admin:
        master = (
            business.master(find_master(business, " ".join(args[:-1]))) if len(args) >= 2 else None
        )
        by = admin_chat.staff_of(
            message.from_user, message.sender_chat, message.author_signature
        ).name
    else:
        master = (
            await booking.master_of(message.from_user.id)
            if message.chat.type == ChatType.PRIVATE
            else None
        )
        if master is None:
            await message.answer(render.text(lang, "masters_only"))
            return
        by = message.from_user.full_name
    today = booking.today()
    day = parse_day(args[-1], today) if args else None
    if master is None or day is None:
        await message.answer(
            render.text(staff_lang, "dayoff_usage", in_admin=in_admin, business=business)
        )
        return
    if command.command == "workday":
        back = await booking.day_back(master.id, day)
        await message.answer(
            render.text(staff_lang, "dayoff_back", master=master, day=day, back=back)
        )
        return
    added, booked = await booking.day_off(master.id, day, by)
    await message.answer(
        render.text(staff_lang, "dayoff_set", master=master, day=day, added=added, booked=booked)
    )


def create_router() -> Router:
    router = Router(name="masters")
    router.message.register(
        join,
        CommandStart(deep_link=True, magic=F.args.startswith(INVITE_PREFIX)),
        F.chat.type == ChatType.PRIVATE,
    )
    admin = admin_chat_router("masters-admin-chat")
    admin.message.register(invite, Command("invite_master"))
    admin.message.register(day_command, Command("today", "tomorrow"))
    admin.message.register(day_off, Command("dayoff", "workday"))
    private = Router(name="masters-private")
    private.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)
    private.message.register(
        decline_reason, DeclineReason.text, F.text, F.chat.type == ChatType.PRIVATE
    )
    for part in (admin, private):
        part.callback_query.register(accept, BookingCallback.filter(F.action == BookingAct.ACCEPT))
        part.callback_query.register(
            decline,
            BookingCallback.filter(F.action.in_({BookingAct.DECLINE, BookingAct.DECLINE_NOW})),
        )
        part.callback_query.register(
            close_visit, BookingCallback.filter(F.action.in_({BookingAct.DONE, BookingAct.NO_SHOW}))
        )
    router.include_routers(admin, private)
    # A master's own chat (and any other chat, to say "for masters"); in the admin chat only the
    # staff, through `admin` (a router's own handlers are tried before its sub-routers').
    router.message.register(day_command, Command("today", "tomorrow"), ~InAdminChat())
    router.message.register(day_off, Command("dayoff", "workday"), ~InAdminChat())
    return router
