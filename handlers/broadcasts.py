"""/broadcast in the admin chat: content → buttons → coupon → segment → preview → send now,
schedule or cancel; then a progress message with a cancel button and a report. Also /sleeping.

The wizard is an FSM of the staff member who started it; each of their answers must reply to
the bot's question (or reply to nothing), so the care chat's replies to customers go on.
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiogram import Bot, F, Router, flags
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter, or_f
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, ForceReply, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.keyboard import InlineKeyboardBuilder
from markupsafe import Markup

from bot.business import Business
from bot.clock import Clock
from bot.db.models import ConsentVia
from bot.rendering import Renderer
from bot.services.broadcasts import BroadcastService, Progress
from bot.services.customers import CustomerService
from bot.services.days import parse_day, parse_moment
from bot.services.segments import KINDS, Condition
from bot.services.sleeping import SleepingService
from bot.telegram_text import visible_len
from handlers.admin_chat import AdminChat
from handlers.booking import book_button
from handlers.callbacks import (
    BookFromBroadcast,
    BroadcastAct,
    BroadcastAction,
    UnsubscribeCallback,
    WizardAct,
    WizardCallback,
)
from handlers.filters import AnswersPrompt, NotCommand, admin_chat_router
from handlers.keyboards import keyboard_markup

log = logging.getLogger("carebot")

MAX_BUTTONS = 5
_BUTTON = re.compile(r"^(.{1,40}?)\s*[|—-]\s*(https?://\S+)$")
_COUPON = re.compile(
    r"^(\d{1,6})\s*(%|₽|р\.?|руб\w*|rub)?\s+(?:до|until|till|to)\s+(\S+)$", re.IGNORECASE
)
SIMPLE_SEGMENTS = ("all", "new", "regular", "birthday_month", "sleeping")


class BroadcastWizard(StatesGroup):
    content = State()
    buttons = State()
    coupon = State()
    segment = State()
    segment_date = State()
    confirm = State()
    schedule = State()


@dataclass(frozen=True)
class SampleCoupon:
    """What the preview shows in place of each recipient's own code."""

    code: str
    percent: int | None
    amount: int | None
    valid_until: date


def _choices(render: Renderer, lang: str, *choices: tuple[str, WizardAct]) -> InlineKeyboardMarkup:
    """The wizard's answers, one a row: (label key, action)."""
    builder = InlineKeyboardBuilder()
    for label, action in choices:
        builder.button(text=render.label(lang, label), callback_data=WizardCallback(action=action))
    builder.adjust(1)
    return builder.as_markup()


async def _ask(
    message: Message, state: FSMContext, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """A question the staff member answers by replying (ForceReply opens the reply for them)."""
    prompt = await message.answer(text, reply_markup=markup or ForceReply(selective=True))
    await state.update_data(prompt_id=prompt.message_id)


async def start(message: Message, state: FSMContext, render: Renderer, staff_lang: str) -> None:
    await state.clear()
    await state.set_state(BroadcastWizard.content)
    await _ask(message, state, str(render.text(staff_lang, "broadcast_ask_content")))


def _content_of(message: Message) -> dict[str, Any] | None:
    """The owner's message as we will send it: its HTML, and the file of a photo, video or GIF."""
    if message.photo:
        return {"kind": "photo", "file_id": message.photo[-1].file_id, "html": message.html_text}
    for kind in ("video", "animation"):
        media = getattr(message, kind)
        if media is not None:
            return {"kind": kind, "file_id": media.file_id, "html": message.html_text}
    if message.text:
        return {"kind": "text", "html": message.html_text}
    return None


async def content(
    message: Message,
    state: FSMContext,
    broadcasts: BroadcastService,
    render: Renderer,
    staff_lang: str,
) -> None:
    found = _content_of(message)
    # measured as Telegram does (UTF-16 units of the text shown), with room for a coupon line
    limit = broadcasts.content_limit(found["kind"] if found else "text")
    if (
        found is None
        or visible_len(found["html"]) > limit
        or (found["kind"] == "text" and not found["html"].strip())
    ):
        await _ask(
            message,
            state,
            str(render.text(staff_lang, "broadcast_bad_content", found=found, limit=limit)),
        )
        return
    await state.update_data(content=found)
    await state.set_state(BroadcastWizard.buttons)
    choices = _choices(
        render,
        staff_lang,
        ("broadcast_book_button", WizardAct.BOOK),
        ("broadcast_no_buttons", WizardAct.NO_BUTTONS),
        ("staff_cancel", WizardAct.CANCEL),
    )
    await _ask(message, state, str(render.text(staff_lang, "broadcast_ask_buttons")), choices)


def parse_buttons(text: str) -> list[dict[str, Any]] | None:
    """Lines "Text | https://link" (or "записаться" for the booking button); None if one is wrong."""
    buttons: list[dict[str, Any]] = []
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        if line.casefold() in ("записаться", "book", "📅 записаться"):
            buttons.append({"book": True})
        elif match := _BUTTON.match(line):
            buttons.append({"text": match[1].strip(), "url": match[2]})
        else:
            return None
    return buttons if 0 < len(buttons) <= MAX_BUTTONS else None


async def _to_coupon(
    message: Message, state: FSMContext, render: Renderer, staff_lang: str
) -> None:
    await state.set_state(BroadcastWizard.coupon)
    choices = _choices(
        render,
        staff_lang,
        ("broadcast_no_coupon", WizardAct.NO_COUPON),
        ("staff_cancel", WizardAct.CANCEL),
    )
    await _ask(message, state, str(render.text(staff_lang, "broadcast_ask_coupon")), choices)


async def buttons_typed(
    message: Message, state: FSMContext, render: Renderer, staff_lang: str
) -> None:
    buttons = parse_buttons(message.text or "")
    if buttons is None:
        await _ask(
            message, state, str(render.text(staff_lang, "broadcast_bad_buttons", limit=MAX_BUTTONS))
        )
        return
    await state.update_data(buttons=buttons)
    await _to_coupon(message, state, render, staff_lang)


async def buttons_chosen(
    callback: CallbackQuery,
    callback_data: WizardCallback,
    state: FSMContext,
    render: Renderer,
    staff_lang: str,
) -> None:
    await state.update_data(
        buttons=[{"book": True}] if callback_data.action is WizardAct.BOOK else []
    )
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)
        await _to_coupon(callback.message, state, render, staff_lang)


def parse_coupon(text: str, today: date) -> dict[str, Any] | None:
    """ "10% до 31.12" or "500 до 31.12": a value and the last day it is valid."""
    match = _COUPON.match(text.strip())
    if not match:
        return None
    value, unit, day = int(match[1]), (match[2] or "").strip(), parse_day(match[3], today)
    if day is None or value <= 0 or (unit == "%" and value > 100):
        return None
    return (
        {"percent": value, "last_day": day.isoformat()}
        if unit == "%"
        else {"amount": value, "last_day": day.isoformat()}
    )


async def coupon_typed(
    message: Message,
    state: FSMContext,
    broadcasts: BroadcastService,
    render: Renderer,
    staff_lang: str,
) -> None:
    coupon = parse_coupon(message.text or "", broadcasts.today())
    if coupon is None:
        await _ask(message, state, str(render.text(staff_lang, "broadcast_bad_coupon")))
        return
    await state.update_data(coupon=coupon)
    await _show_segment(message, state, broadcasts, render, staff_lang, edit=False)


async def no_coupon(
    callback: CallbackQuery,
    state: FSMContext,
    broadcasts: BroadcastService,
    render: Renderer,
    staff_lang: str,
) -> None:
    await state.update_data(coupon=None)
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)
        await _show_segment(callback.message, state, broadcasts, render, staff_lang, edit=False)


# ---- the segment ---------------------------------------------------------------------------


def _conditions(data: dict[str, Any]) -> list[Condition]:
    return [Condition.of(c) for c in data.get("segment") or [{"kind": "all"}]]


def _segment_keyboard(
    render: Renderer, lang: str, count: int, picking: str = "", business: Business | None = None
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if picking and business is not None:  # which service or master
        options = business.services if picking == "service" else business.masters
        for option in options:
            builder.button(
                text=option.name,
                callback_data=WizardCallback(action=WizardAct.PICK, value=f"{picking}.{option.id}"),
            )
        builder.button(
            text=render.label(lang, "back"), callback_data=WizardCallback(action=WizardAct.BACK)
        )
        builder.adjust(1)
        return builder.as_markup()
    for kind in KINDS:
        builder.button(
            text=render.label(lang, f"segment_{kind}"),
            callback_data=WizardCallback(action=WizardAct.SEG, value=kind),
        )
    builder.button(
        text=render.label(lang, "segment_done", count=count),
        callback_data=WizardCallback(action=WizardAct.DONE),
    )
    builder.button(
        text=render.label(lang, "staff_cancel"),
        callback_data=WizardCallback(action=WizardAct.CANCEL),
    )
    builder.adjust(3, 2, 2, 2, 1, 1)
    return builder.as_markup()


async def _show_segment(
    message: Message,
    state: FSMContext,
    broadcasts: BroadcastService,
    render: Renderer,
    lang: str,
    *,
    edit: bool,
    picking: str = "",
) -> None:
    await state.set_state(BroadcastWizard.segment)
    conditions = _conditions(await state.get_data())
    count = await broadcasts.count(conditions)
    text = str(
        render.text(
            lang,
            "broadcast_segment",
            conditions=conditions,
            count=count,
            business=broadcasts.business,
            picking=picking,
        )
    )
    markup = _segment_keyboard(render, lang, count, picking, broadcasts.business)
    if edit:
        await message.edit_text(text, reply_markup=markup)
    else:
        await message.answer(text, reply_markup=markup)


def _with(conditions: list[Condition], new: Condition) -> list[dict[str, str]]:
    """Conditions combine with AND; "everyone" starts over; one condition of each kind."""
    if new.kind == "all":
        return [new.as_json()]
    kept = [c for c in conditions if c.kind not in ("all", new.kind)]
    return [c.as_json() for c in [*kept, new]]


async def segment_chosen(
    callback: CallbackQuery,
    callback_data: WizardCallback,
    state: FSMContext,
    broadcasts: BroadcastService,
    render: Renderer,
    staff_lang: str,
) -> None:
    if not isinstance(callback.message, Message):
        return
    data = await state.get_data()
    action, value = callback_data.action, callback_data.value
    if action is WizardAct.SEG and value in ("service", "master"):
        await _show_segment(
            callback.message, state, broadcasts, render, staff_lang, edit=True, picking=value
        )
        return
    if action is WizardAct.SEG and value in ("visited_before", "visited_after"):
        await state.set_state(BroadcastWizard.segment_date)
        await state.update_data(date_kind=value)
        await _ask(
            callback.message, state, str(render.text(staff_lang, "broadcast_ask_date", kind=value))
        )
        return
    if action is WizardAct.SEG and value in SIMPLE_SEGMENTS:
        await state.update_data(segment=_with(_conditions(data), Condition(value)))
    elif action is WizardAct.PICK and "." in value:
        kind, item = value.split(".", 1)
        known = (
            broadcasts.business.service(item)
            if kind == "service"
            else broadcasts.business.master(item)
        )
        if kind in ("service", "master") and known is not None:
            await state.update_data(segment=_with(_conditions(data), Condition(kind, item)))
    await _show_segment(callback.message, state, broadcasts, render, staff_lang, edit=True)


async def segment_date(
    message: Message,
    state: FSMContext,
    broadcasts: BroadcastService,
    render: Renderer,
    staff_lang: str,
) -> None:
    data = await state.get_data()
    day = parse_day(message.text or "", broadcasts.today(), past=True)
    if day is None:
        await _ask(message, state, str(render.text(staff_lang, "broadcast_bad_date")))
        return
    await state.update_data(
        segment=_with(_conditions(data), Condition(str(data["date_kind"]), day.isoformat()))
    )
    await _show_segment(message, state, broadcasts, render, staff_lang, edit=False)


# ---- preview and confirmation -------------------------------------------------------------------


async def preview(
    bot: Bot,
    chat_id: int,
    data: dict[str, Any],
    broadcasts: BroadcastService,
    render: Renderer,
    lang: str,
) -> None:
    """The message exactly as a customer will get it (a sample code in place of their own)."""
    coupon = data.get("coupon")
    sample = (
        SampleCoupon(
            "ABCD2345",
            coupon.get("percent"),
            coupon.get("amount"),
            date.fromisoformat(coupon["last_day"]),
        )
        if coupon
        else None
    )
    text = str(
        render.text(
            lang,
            "broadcast",
            content=Markup(data["content"]["html"]),
            coupon=sample,
            business=broadcasts.business,
        )
    )
    markup = keyboard_markup(broadcasts.keyboard(data.get("buttons") or [], lang))
    kind = data["content"]["kind"]
    if kind == "text":
        await bot.send_message(chat_id, text, reply_markup=markup)
    elif kind == "photo":
        await bot.send_photo(chat_id, data["content"]["file_id"], caption=text, reply_markup=markup)
    elif kind == "video":
        await bot.send_video(chat_id, data["content"]["file_id"], caption=text, reply_markup=markup)
    else:
        await bot.send_animation(
            chat_id, data["content"]["file_id"], caption=text, reply_markup=markup
        )


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def segment_done(
    callback: CallbackQuery,
    state: FSMContext,
    bot: Bot,
    broadcasts: BroadcastService,
    render: Renderer,
    staff_lang: str,
) -> None:
    data = await state.get_data()
    conditions = _conditions(data)
    count = await broadcasts.count(conditions)
    if not count:
        await callback.answer(render.label(staff_lang, "broadcast_nobody"), show_alert=True)
        return
    await callback.answer()
    if not isinstance(callback.message, Message):
        return
    await callback.message.edit_reply_markup(reply_markup=None)
    await preview(bot, callback.message.chat.id, data, broadcasts, render, staff_lang)
    await state.set_state(BroadcastWizard.confirm)
    actions = (WizardAct.SEND, WizardAct.SCHEDULE, WizardAct.CANCEL)
    choices = _choices(render, staff_lang, *((f"broadcast_{action}", action) for action in actions))
    await callback.message.answer(
        render.text(
            staff_lang,
            "broadcast_summary",
            count=count,
            conditions=conditions,
            business=broadcasts.business,
            waits_until=broadcasts.waits_until(broadcasts.clock.now()),
            data=data,
        ),
        reply_markup=choices,
    )


def progress_keyboard(
    render: Renderer, lang: str, progress: Progress
) -> InlineKeyboardMarkup | None:
    if progress.finished:
        return None
    builder = InlineKeyboardBuilder()
    builder.button(
        text=render.label(lang, "broadcast_stop"),
        callback_data=BroadcastAction(action=BroadcastAct.CANCEL, id=progress.id),
    )
    return builder.as_markup()


async def _launch(
    message: Message,
    state: FSMContext,
    broadcasts: BroadcastService,
    render: Renderer,
    lang: str,
    starts_at: Any,
    by: str,
) -> None:
    data = await state.get_data()
    await state.clear()
    broadcast_id = await broadcasts.create(
        by=by,
        content=data["content"],
        buttons=data.get("buttons") or [],
        coupon=data.get("coupon"),
        conditions=_conditions(data),
        starts_at=starts_at,
        progress_chat_id=message.chat.id,
    )
    progress = Progress(
        broadcast_id, "scheduled", await broadcasts.count(_conditions(data)), starts_at=starts_at
    )
    sent = await message.answer(
        render.text(
            lang,
            "broadcast_progress",
            progress=progress,
            waits_until=broadcasts.waits_until(starts_at or broadcasts.clock.now()),
            scheduled=starts_at is not None,
            cancelled_by=None,
        ),
        reply_markup=progress_keyboard(render, lang, progress),
    )
    await broadcasts.set_progress_message(broadcast_id, sent.chat.id, sent.message_id)


async def confirm(
    callback: CallbackQuery,
    callback_data: WizardCallback,
    state: FSMContext,
    broadcasts: BroadcastService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
) -> None:
    if not isinstance(callback.message, Message):
        return
    await callback.message.edit_reply_markup(reply_markup=None)
    if callback_data.action is WizardAct.SCHEDULE:
        await state.set_state(BroadcastWizard.schedule)
        await _ask(callback.message, state, str(render.text(staff_lang, "broadcast_ask_schedule")))
        return
    await _launch(
        callback.message,
        state,
        broadcasts,
        render,
        staff_lang,
        None,
        admin_chat.staff_of(callback.from_user).name,
    )


async def schedule_typed(
    message: Message,
    state: FSMContext,
    broadcasts: BroadcastService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
) -> None:
    assert message.from_user is not None
    now = broadcasts.clock.now()
    moment = parse_moment(message.text or "", broadcasts.today(), broadcasts.tz)
    if moment is None or moment <= now:
        await _ask(message, state, str(render.text(staff_lang, "broadcast_bad_schedule")))
        return
    await _launch(
        message,
        state,
        broadcasts,
        render,
        staff_lang,
        moment,
        admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature).name,
    )


async def wizard_cancel(
    callback: CallbackQuery, state: FSMContext, render: Renderer, staff_lang: str
) -> None:
    await state.clear()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            render.text(staff_lang, "broadcast_wizard_cancelled"), reply_markup=None
        )


@flags.callback_answer(pre=False)  # answered after it, with the alert it sets
async def wizard_stale(
    callback: CallbackQuery, callback_answer: CallbackAnswer, render: Renderer, staff_lang: str
) -> None:
    """A wizard button from another step, an old wizard or another staff member's wizard."""
    callback_answer.text, callback_answer.show_alert = (
        render.label(staff_lang, "stale_button"),
        True,
    )


# ---- a running broadcast ------------------------------------------------------------------------


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def stop_broadcast(
    callback: CallbackQuery,
    callback_data: BroadcastAction,
    broadcasts: BroadcastService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
) -> None:
    by = admin_chat.staff_of(callback.from_user).name
    if not await broadcasts.cancel(callback_data.id, by):
        await callback.answer(render.label(staff_lang, "broadcast_not_running"), show_alert=True)
        return
    await callback.answer()
    progress = await broadcasts.progress(callback_data.id)
    if isinstance(callback.message, Message) and progress is not None:
        await callback.message.edit_text(
            render.text(
                staff_lang,
                "broadcast_progress",
                progress=progress,
                waits_until=None,
                scheduled=False,
                cancelled_by=by,
            ),
            reply_markup=None,
        )


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def refresh_report(
    callback: CallbackQuery,
    callback_data: BroadcastAction,
    broadcasts: BroadcastService,
    render: Renderer,
    staff_lang: str,
) -> None:
    progress = await broadcasts.progress(callback_data.id)
    if progress is None:
        await callback.answer(render.label(staff_lang, "stale_button"), show_alert=True)
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        text = str(render.text(staff_lang, "broadcast_report", progress=progress))
        if text != callback.message.html_text:
            await callback.message.edit_text(
                text, reply_markup=keyboard_markup(broadcasts.report_keyboard(progress.id))
            )


async def sleeping_stats(
    message: Message, sleeping: SleepingService, render: Renderer, staff_lang: str
) -> None:
    await message.answer(
        render.text(
            staff_lang, "sleeping_stats", stats=await sleeping.stats(), settings=sleeping.settings
        )
    )


# ---- the customer's buttons under a broadcast (the unsubscribe one is under every offer) -------


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def unsubscribe(
    callback: CallbackQuery, customers: CustomerService, render: Renderer, lang: str
) -> None:
    changed = await customers.set_marketing(callback.from_user.id, False, ConsentVia.UNSUBSCRIBE)
    await callback.answer(render.label(lang, "unsubscribed"), show_alert=True)
    if changed and isinstance(callback.message, Message):
        await callback.message.answer(render.text(lang, "marketing_off", changed=True))


class ProgressBoard:
    """Starts broadcasts whose time came at once (not at the next planner run) and keeps each
    one's progress message in the admin chat up to date. These are edits of the staff's own
    message, every few seconds at most, not messages to anyone: they bypass the outbox."""

    def __init__(
        self, bot: Bot, broadcasts: BroadcastService, render: Renderer, lang: str, clock: Clock
    ) -> None:
        self.bot = bot
        self.broadcasts = broadcasts
        self.render = render
        self.lang = lang
        self.clock = clock
        self._shown: dict[int, str] = {}

    async def refresh(self) -> None:
        await self.broadcasts.queue_due()
        for progress, chat_id, message_id in await self.broadcasts.watch():
            text = str(
                self.render.text(
                    self.lang,
                    "broadcast_progress",
                    progress=progress,
                    scheduled=False,
                    cancelled_by=None,
                    waits_until=self.broadcasts.waits_until(self.clock.now()),
                )
            )
            if self._shown.get(progress.id) != text:
                self._shown[progress.id] = text
                with suppress(TelegramBadRequest):  # the message was deleted meanwhile
                    await self.bot.edit_message_text(
                        text,
                        chat_id=chat_id,
                        message_id=message_id,
                        reply_markup=progress_keyboard(self.render, self.lang, progress),
                    )

    async def run(self, stop: asyncio.Event, every: float) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:
                log.exception("broadcast watch failed; retrying shortly")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


def create_router() -> Router:
    router = Router(name="broadcasts")
    admin = admin_chat_router("broadcasts-admin-chat")
    admin.message.register(start, Command("broadcast"))
    # /cancel and the other staff commands go on working in the middle of the wizard
    admin.message.filter(or_f(NotCommand(), Command("broadcast", "sleeping")))
    admin.message.register(sleeping_stats, Command("sleeping"))
    admin.callback_query.register(
        wizard_cancel,
        WizardCallback.filter(F.action == WizardAct.CANCEL),
        StateFilter(BroadcastWizard),
    )
    admin.message.register(content, BroadcastWizard.content, AnswersPrompt())
    admin.message.register(buttons_typed, BroadcastWizard.buttons, F.text, AnswersPrompt())
    admin.callback_query.register(
        buttons_chosen,
        BroadcastWizard.buttons,
        WizardCallback.filter(F.action.in_({WizardAct.BOOK, WizardAct.NO_BUTTONS})),
    )
    admin.message.register(coupon_typed, BroadcastWizard.coupon, F.text, AnswersPrompt())
    admin.callback_query.register(
        no_coupon, BroadcastWizard.coupon, WizardCallback.filter(F.action == WizardAct.NO_COUPON)
    )
    admin.callback_query.register(
        segment_done, BroadcastWizard.segment, WizardCallback.filter(F.action == WizardAct.DONE)
    )
    admin.callback_query.register(
        segment_chosen,
        BroadcastWizard.segment,
        WizardCallback.filter(F.action.in_({WizardAct.SEG, WizardAct.PICK, WizardAct.BACK})),
    )
    admin.message.register(segment_date, BroadcastWizard.segment_date, F.text, AnswersPrompt())
    admin.callback_query.register(
        confirm,
        BroadcastWizard.confirm,
        WizardCallback.filter(F.action.in_({WizardAct.SEND, WizardAct.SCHEDULE})),
    )
    admin.message.register(schedule_typed, BroadcastWizard.schedule, F.text, AnswersPrompt())
    admin.callback_query.register(wizard_stale, WizardCallback.filter())
    admin.callback_query.register(
        stop_broadcast, BroadcastAction.filter(F.action == BroadcastAct.CANCEL)
    )
    admin.callback_query.register(
        refresh_report, BroadcastAction.filter(F.action == BroadcastAct.REPORT)
    )
    customers = Router(name="broadcasts-customers")
    customers.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)
    customers.callback_query.register(unsubscribe, UnsubscribeCallback.filter())
    customers.callback_query.register(book_button, BookFromBroadcast.filter())
    router.include_routers(admin, customers)
    return router
