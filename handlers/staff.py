"""Staff work in the admin chat: /find, /sale, /redeem, /note, and the customer card's buttons.

The same commands anywhere else get "this command is for staff" and do nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from aiogram import F, Router, flags
from aiogram.filters import Command, CommandObject, ExceptionTypeFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    ErrorEvent,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.business import Business
from bot.rendering import Renderer
from bot.services.certificates import CertificateService
from bot.services.points_pay import PointsPayService
from bot.services.staff import (
    CustomerCard,
    RedeemOutcome,
    Sale,
    StaffService,
    UsageError,
    card_text,
    history_text,
    parse_amount,
    parse_sale,
    split_customer,
)
from bot.telegram_text import TEXT_LIMIT, truncate_html
from handlers import erasures, gifts
from handlers import sale_cancel as unsale
from handlers.admin_chat import AdminChat
from handlers.callbacks import (
    CardAct,
    CardCallback,
    PayPoints,
    RedeemCallback,
    SaleCallback,
    SaleStep,
    UnsaleAct,
    UnsaleCallback,
)
from handlers.filters import AnswersPrompt, admin_chat_router
from handlers.masters import MASTER_COMMANDS
from handlers.points_pay import ask_points

T = TypeVar("T")
STAFF_COMMANDS = (
    "find",
    "sale",
    "redeem",
    "gift",
    "note",
    "cancel",
    "complaints",
    "csat",
    "invite_master",
    "broadcast",
    "sleeping",
    "erasures",
    "import",
    "stats",
    "unsale",
)


class StaffSale(StatesGroup):
    amount = State()
    service = State()
    master = State()


class StaffNoteState(StatesGroup):
    text = State()


def card_keyboard(
    render: Renderer, lang: str, card: CustomerCard, *, deposits: bool = False
) -> InlineKeyboardMarkup:
    """The card's buttons; with deposits on, "only with deposit" (mark / unmark) too."""
    builder = InlineKeyboardBuilder()
    actions = [CardAct.SALE, CardAct.REDEEM, CardAct.NOTE, CardAct.HISTORY]
    for action in actions + ([CardAct.DEPOSIT] if deposits else []):
        builder.button(
            text=render.label(lang, f"staff_{action}"),
            callback_data=CardCallback(action=action, customer_id=card.id),
        )
    builder.adjust(2)
    return builder.as_markup()


def sale_keyboard(
    render: Renderer, lang: str, sale: Sale, business: Business
) -> InlineKeyboardMarkup:
    """The card's buttons, "pay with points" when the customer has points to pay with, and
    "cancel sale" (a mistake: asks to confirm)."""
    markup = card_keyboard(render, lang, sale.customer, deposits=business.deposits.on)
    if business.loyalty.cashback.enabled and sale.points > 0 and sale.amount_minor > 0:
        pay = InlineKeyboardButton(
            text=render.label(lang, "points_pay"),
            callback_data=PayPoints(purchase_id=sale.purchase_id).pack(),
        )
        markup.inline_keyboard.insert(0, [pay])
    cancel = InlineKeyboardButton(  # a mistaken sale: asks to confirm (handlers/sale_cancel.py)
        text=render.label(lang, "staff_unsale"),
        callback_data=UnsaleCallback(action=UnsaleAct.ASK, purchase_id=sale.purchase_id).pack(),
    )
    markup.inline_keyboard.append([cancel])
    return markup


async def _send_card(
    message: Message, card: CustomerCard, render: Renderer, lang: str, business: Business
) -> None:
    await message.answer(
        card_text(render, lang, card, business),
        reply_markup=card_keyboard(render, lang, card, deposits=business.deposits.on),
    )


async def _usage(
    message: Message, render: Renderer, lang: str, error: UsageError, command: str
) -> None:
    # it quotes what was typed: a long query is cut, not the reason the answer is lost
    await message.reply(
        truncate_html(
            render.text(lang, "staff_usage", command=command, reason=error.reason, **error.details),
            TEXT_LIMIT,
        )
    )


async def find(
    message: Message,
    command: CommandObject,
    staff_service: StaffService,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    query = (command.args or "").strip()
    if not query:
        await _usage(message, render, staff_lang, UsageError("find_usage"), "find")
        return
    found = await staff_service.find(query)
    if len(found) == 1:
        await _send_card(message, found[0], render, staff_lang, business)
    elif not found:
        await _usage(message, render, staff_lang, UsageError("not_found", query=query), "find")
    else:
        builder = InlineKeyboardBuilder()
        for card in found:
            builder.button(
                text=render.label(staff_lang, "staff_pick", card=card),
                callback_data=CardCallback(action=CardAct.SHOW, customer_id=card.id),
            )
        builder.adjust(1)
        await message.answer(
            render.text(staff_lang, "staff_found_many", query=query, cards=found),
            reply_markup=builder.as_markup(),
        )


async def sale(
    message: Message,
    command: CommandObject,
    staff_service: StaffService,
    points_pay: PointsPayService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    assert message.from_user is not None
    parsed = parse_sale(command.args or "", business)  # a UsageError is answered by `usage_error`
    card = await staff_service.resolve(parsed.customer_query)
    done = await staff_service.record_sale(
        admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature),
        card.id,
        parsed.amount_minor,
        parsed.service_id,
        parsed.master_id,
        package=parsed.package,
    )
    await message.answer(
        render.text(staff_lang, "staff_sale_done", sale=done, business=business),
        reply_markup=sale_keyboard(render, staff_lang, done, business),
    )
    if parsed.points is not None:  # `points:N`: ask the customer at once
        await ask_points(
            message,
            done.staff,
            done.purchase_id,
            parsed.points,
            points_pay,
            render,
            staff_lang,
            business,
        )


async def redeem(
    message: Message,
    command: CommandObject,
    staff_service: StaffService,
    certificates: CertificateService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    """A coupon by its code, or a gift certificate by its code and the amount spent of it."""
    assert message.from_user is not None
    code = (command.args or "").strip()
    if not code:
        await _usage(message, render, staff_lang, UsageError("redeem_usage"), "redeem")
        return
    staff = admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature)
    spending = gifts.certificate_redemption(code)
    if spending is not None and await certificates.exists(spending[0]):
        await gifts.redeem_certificate(
            message, staff, *spending, certificates, render, staff_lang, business
        )
        return
    result = await staff_service.redeem(staff, code)
    if result.outcome is RedeemOutcome.NOT_FOUND and await certificates.exists(code):
        await _usage(message, render, staff_lang, UsageError("redeem_amount", code=code), "redeem")
        return
    await message.reply(render.text(staff_lang, "staff_redeem", result=result, business=business))


async def note(
    message: Message,
    command: CommandObject,
    staff_service: StaffService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    assert message.from_user is not None
    tokens = (command.args or "").split()
    if len(tokens) < 2:
        raise UsageError("note_usage")
    query, words = split_customer(tokens)
    if not words:
        raise UsageError("note_usage")
    card = await staff_service.resolve(query)
    card = await staff_service.add_note(
        admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature),
        card.id,
        " ".join(words),
    )
    await message.reply(render.text(staff_lang, "staff_note_done", card=card))


async def cancel(message: Message, state: FSMContext, render: Renderer, staff_lang: str) -> None:
    await state.clear()
    await message.reply(render.text(staff_lang, "staff_cancelled"))


async def chat_id(
    message: Message, render: Renderer, staff_lang: str, admin_chat: AdminChat
) -> None:
    """Setup help: in any group, tell the owner the id to put into ADMIN_CHAT_ID."""
    await message.reply(
        render.text(
            staff_lang,
            "staff_chat_id",
            chat_id=message.chat.id,
            configured=message.chat.id == admin_chat.chat_id,
        )
    )


async def staff_only(
    message: Message, render: Renderer, lang: str, staff_lang: str, admin_chat: AdminChat
) -> None:
    """A staff command outside the admin chat, or in it from someone who is not staff (not a
    member: a linked discussion group lets anyone write): say so in one line, do nothing."""
    if admin_chat.is_here(message.chat.id):
        await message.reply(render.text(staff_lang, "staff_only", in_admin_chat=True))
        return
    await message.answer(render.text(lang, "staff_only", in_admin_chat=False))


# ---- the card's buttons ---------------------------------------------------------------------


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def card_button(
    callback: CallbackQuery,
    callback_data: CardCallback,
    state: FSMContext,
    staff_service: StaffService,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    card = await staff_service.card(callback_data.customer_id)
    if card is None or not isinstance(callback.message, Message):
        await callback.answer(render.label(staff_lang, "staff_customer_gone"), show_alert=True)
        return
    await callback.answer()
    message, action = callback.message, callback_data.action
    if action is CardAct.SHOW:
        await _send_card(message, card, render, staff_lang, business)
    elif action is CardAct.HISTORY:
        history = await staff_service.history(card.id)
        await message.answer(history_text(render, staff_lang, card, history, business))
    elif action is CardAct.REDEEM:
        if not card.coupons:
            await message.answer(render.text(staff_lang, "staff_no_coupons", card=card))
            return
        builder = InlineKeyboardBuilder()
        for coupon in card.coupons:
            builder.button(
                text=render.label(
                    staff_lang, "staff_redeem_coupon", coupon=coupon, business=business
                ),
                callback_data=RedeemCallback(code=coupon.code, customer_id=card.id),
            )
        builder.adjust(1)
        await message.answer(
            render.text(staff_lang, "staff_redeem_choose", card=card),
            reply_markup=builder.as_markup(),
        )
    elif action in (CardAct.SALE, CardAct.NOTE):
        # The question mentions the staff member and asks for a reply from them alone, so
        # their client opens the reply by itself and the answer finds its way to this step.
        prompt = await message.answer(
            render.text(staff_lang, f"staff_{action}_ask", card=card, staff=callback.from_user),
            reply_markup=ForceReply(selective=True),
        )
        await state.set_state(StaffSale.amount if action is CardAct.SALE else StaffNoteState.text)
        await state.set_data({"customer_id": card.id, "prompt_id": prompt.message_id})


async def redeem_button(
    callback: CallbackQuery,
    callback_data: RedeemCallback,
    staff_service: StaffService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    result = await staff_service.redeem(
        admin_chat.staff_of(callback.from_user),
        callback_data.code,
        customer_id=callback_data.customer_id,
    )
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            render.text(staff_lang, "staff_redeem", result=result, business=business)
        )


# ---- recording a sale from the card: amount → service → master -----------------------------------


def _choices(
    render: Renderer, lang: str, step: SaleStep, options: list[tuple[str, str]]
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for value, title in options:
        builder.button(text=title, callback_data=SaleCallback(step=step, value=value))
    builder.button(
        text=render.label(lang, "staff_skip"), callback_data=SaleCallback(step=step, value="-")
    )
    builder.button(
        text=render.label(lang, "staff_cancel"),
        callback_data=SaleCallback(step=SaleStep.CANCEL, value="-"),
    )
    builder.adjust(1)
    return builder.as_markup()


async def _ask_again(
    message: Message, state: FSMContext, render: Renderer, lang: str, error: UsageError
) -> None:
    """Explain what was wrong; the explanation becomes the question to reply to."""
    text = render.text(lang, "staff_usage", command="", reason=error.reason, **error.details)
    again = await message.reply(
        truncate_html(text, TEXT_LIMIT), reply_markup=ForceReply(selective=True)
    )
    await state.update_data(prompt_id=again.message_id)


async def sale_amount(
    message: Message, state: FSMContext, render: Renderer, staff_lang: str, business: Business
) -> None:
    try:
        amount = parse_amount(message.text or "")
    except UsageError as error:  # asked here, not by `usage_error`: see there
        await _ask_again(message, state, render, staff_lang, error)
        return
    await state.update_data(amount_minor=amount)
    await state.set_state(StaffSale.service)
    options = [(s.id, s.name) for s in business.services]
    await message.reply(
        render.text(staff_lang, "staff_sale_ask_service"),
        reply_markup=_choices(render, staff_lang, SaleStep.SERVICE, options),
    )


async def _chosen(
    callback: CallbackQuery, value: str, items: Sequence[T], render: Renderer, lang: str
) -> tuple[bool, T | None]:
    """The item a choice button names, or None for "none"; a choice of something that is not
    (any more) in the business file is answered as a stale button and is not valid."""
    item = next((i for i in items if getattr(i, "id", None) == value), None)
    if value != "-" and item is None:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return False, None
    return True, item


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def sale_service(
    callback: CallbackQuery,
    callback_data: SaleCallback,
    state: FSMContext,
    staff_service: StaffService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    valid, service = await _chosen(
        callback, callback_data.value, business.services, render, staff_lang
    )
    if not valid:
        return
    await state.update_data(service_id=service.id if service else None)
    masters = business.masters if service is None else business.masters_of(service)
    if not masters:
        await _record_sale(
            callback, state, staff_service, admin_chat, render, staff_lang, business, None
        )
        return
    await state.set_state(StaffSale.master)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            render.text(staff_lang, "staff_sale_ask_master"),
            reply_markup=_choices(
                render, staff_lang, SaleStep.MASTER, [(m.id, m.name) for m in masters]
            ),
        )


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def sale_master(
    callback: CallbackQuery,
    callback_data: SaleCallback,
    state: FSMContext,
    staff_service: StaffService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    valid, master = await _chosen(
        callback, callback_data.value, business.masters, render, staff_lang
    )
    if not valid:
        return
    await _record_sale(
        callback,
        state,
        staff_service,
        admin_chat,
        render,
        staff_lang,
        business,
        master.id if master else None,
    )


async def _record_sale(
    callback: CallbackQuery,
    state: FSMContext,
    staff_service: StaffService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
    master_id: str | None,
) -> None:
    data = await state.get_data()
    await state.clear()
    await callback.answer()
    done = await staff_service.record_sale(
        admin_chat.staff_of(callback.from_user),
        data["customer_id"],
        data["amount_minor"],
        data.get("service_id"),
        master_id,
    )
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            render.text(staff_lang, "staff_sale_done", sale=done, business=business),
            reply_markup=sale_keyboard(render, staff_lang, done, business),
        )


async def sale_cancel(
    callback: CallbackQuery, state: FSMContext, render: Renderer, staff_lang: str
) -> None:
    await state.clear()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(render.text(staff_lang, "staff_cancelled"))


async def note_text(
    message: Message,
    state: FSMContext,
    staff_service: StaffService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
) -> None:
    assert message.from_user is not None
    data = await state.get_data()
    try:
        card = await staff_service.add_note(
            admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature),
            data["customer_id"],
            message.text or "",
        )
    except UsageError as error:  # asked here, not by `usage_error`: see there
        await _ask_again(message, state, render, staff_lang, error)
        return
    await state.clear()
    await message.reply(render.text(staff_lang, "staff_note_done", card=card))


async def usage_error(event: ErrorEvent, render: Renderer, staff_lang: str) -> None:
    """A staff command's arguments do not parse (a UsageError from a staff handler; aiogram's
    error handler instead of a try/except in each): answered under the command, or in the message
    of the sale's last button. Not a question of a staff conversation (amount, note): an error
    handler runs after the chat's lock is released, so asking again there, which moves the
    conversation, would race the staff member's next answer; those handlers ask again themselves."""
    error, callback, message = event.exception, event.update.callback_query, event.update.message
    assert isinstance(error, UsageError)
    if callback is not None:
        if isinstance(callback.message, Message):
            await callback.message.edit_text(
                render.text(
                    staff_lang, "staff_usage", command="sale", reason=error.reason, **error.details
                )
            )
    elif message is not None:
        await _usage(message, render, staff_lang, error, "")


def create_router() -> Router:
    router = Router(name="staff")
    router.errors.register(usage_error, ExceptionTypeFilter(UsageError))
    admin = admin_chat_router("staff-admin-chat")
    admin.message.register(find, Command("find"))
    admin.message.register(sale, Command("sale"))
    admin.message.register(redeem, Command("redeem"))
    admin.message.register(note, Command("note"))
    admin.message.register(cancel, Command("cancel"))
    admin.callback_query.register(card_button, CardCallback.filter())
    admin.callback_query.register(redeem_button, RedeemCallback.filter())
    admin.callback_query.register(sale_cancel, SaleCallback.filter(F.step == SaleStep.CANCEL))
    admin.callback_query.register(
        sale_service, StaffSale.service, SaleCallback.filter(F.step == SaleStep.SERVICE)
    )
    admin.callback_query.register(
        sale_master, StaffSale.master, SaleCallback.filter(F.step == SaleStep.MASTER)
    )
    admin.message.register(sale_amount, StaffSale.amount, F.text, AnswersPrompt())
    admin.message.register(note_text, StaffNoteState.text, F.text, AnswersPrompt())
    router.message.register(chat_id, Command("chatid"), F.chat.type.in_({"group", "supergroup"}))
    elsewhere = Router(name="staff-commands-elsewhere")
    elsewhere.message.register(staff_only, Command(*STAFF_COMMANDS, *MASTER_COMMANDS))
    # /erasures (handlers/erasures.py) and /gift (handlers/gifts.py) are staff commands too:
    # refused alike outside, and a UsageError of theirs is answered by `usage_error`
    routers = (
        erasures.create_router(),
        gifts.create_router(),
        unsale.create_router(),  # /unsale and "Cancel sale" (handlers/sale_cancel.py)
        admin,
        elsewhere,
    )
    router.include_routers(*routers)  # tried in this order
    return router
