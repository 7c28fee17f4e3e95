"""The first visit: consent → phone (own contact only) → birthday → name → welcome coupon.

Nothing about the customer is stored before the consent button; until then the FSM holds
only the deep-link source. Every step re-asks politely on input it cannot use.
"""

from __future__ import annotations

import re

from aiogram import F, Router, flags
from aiogram.enums import ChatType
from aiogram.filters import CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.business import Business
from bot.rendering import Renderer
from bot.services.birthdays import InvalidBirthday, parse_birthday
from bot.services.customers import CustomerService, CustomerView, WelcomeOutcome, clean_name
from bot.services.phones import normalize_phone
from handlers.callbacks import OnboardingAct, OnboardingCallback
from handlers.keyboards import main_menu

# Deep links: t.me/<bot>?start=src_instagram records "instagram" as where the customer came from.
SOURCE_PAYLOAD = re.compile(r"^src_([A-Za-z0-9_-]{1,48})$")


class Onboarding(StatesGroup):
    consent = State()
    phone = State()
    birthday = State()
    name = State()


def _source(command: CommandObject) -> str | None:
    match = SOURCE_PAYLOAD.match(command.args or "")
    return match[1].lower() if match else None


def _consent_keyboard(render: Renderer, lang: str, business: Business) -> InlineKeyboardMarkup:
    # Built directly, not with InlineKeyboardBuilder: the same markup in a third of the time (every
    # newcomer's /start gets it).
    consent = OnboardingCallback(action=OnboardingAct.CONSENT).pack()
    if business.privacy_url:
        privacy = InlineKeyboardButton(text=render.label(lang, "privacy"), url=business.privacy_url)
    else:
        privacy = InlineKeyboardButton(
            text=render.label(lang, "privacy"),
            callback_data=OnboardingCallback(action=OnboardingAct.PRIVACY).pack(),
        )
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=render.label(lang, "consent"), callback_data=consent)],
            [privacy],
        ]
    )


def _single_button(text: str, action: OnboardingAct) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=text, callback_data=OnboardingCallback(action=action))
    return builder.as_markup()


async def ask_consent(message: Message, render: Renderer, lang: str, business: Business) -> None:
    await message.answer(
        render.text(lang, "onboarding_intro", business=business, rule=business.coupons.welcome),
        reply_markup=_consent_keyboard(render, lang, business),
    )


async def ask_phone(message: Message, render: Renderer, lang: str, lead: str | None = None) -> None:
    keyboard = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=render.label(lang, "share_phone"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
        input_field_placeholder=render.label(lang, "phone_placeholder"),
    )
    await message.answer(render.text(lang, "ask_phone", lead=lead), reply_markup=keyboard)


async def ask_birthday(
    message: Message, render: Renderer, lang: str, lead: str | None = None
) -> None:
    await message.answer(
        render.text(lang, "ask_birthday", lead=lead),
        reply_markup=_single_button(
            render.label(lang, "skip_birthday"), OnboardingAct.SKIP_BIRTHDAY
        ),
    )


async def ask_name(
    message: Message, render: Renderer, lang: str, name: str | None, lead: str | None = None
) -> None:
    markup = (
        _single_button(render.label(lang, "keep_name", name=name), OnboardingAct.KEEP_NAME)
        if name
        else None
    )
    await message.answer(render.text(lang, "ask_name", name=name, lead=lead), reply_markup=markup)


async def _resume(
    message: Message,
    state: FSMContext,
    customer: CustomerView,
    render: Renderer,
    lang: str,
    customers: CustomerService,
) -> None:
    """A /start in the middle of onboarding asks the current question again."""
    current = await state.get_state()
    if current == Onboarding.name.state:
        await ask_name(message, render, lang, customer.name)
    elif current == Onboarding.birthday.state:
        await ask_birthday(message, render, lang)
    else:
        profile = await customers.profile(message.from_user.id)  # type: ignore[union-attr]
        if profile and profile.phone:
            await state.set_state(Onboarding.birthday)
            await ask_birthday(message, render, lang)
        else:
            await state.set_state(Onboarding.phone)
            await ask_phone(message, render, lang)


async def start(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    customer: CustomerView | None,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    if customer and customer.onboarded:
        await state.clear()
        await message.answer(
            render.text(lang, "returning", name=customer.name, business=business),
            reply_markup=main_menu(render, lang),
        )
    elif customer:
        await _resume(message, state, customer, render, lang, customers)
    else:
        await state.set_state(Onboarding.consent)
        await state.set_data({"source": _source(command)})
        await ask_consent(message, render, lang, business)


async def privacy(callback: CallbackQuery, render: Renderer, lang: str, business: Business) -> None:
    if callback.message:
        await callback.message.answer(render.text(lang, "privacy", business=business))


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def consent_given(
    callback: CallbackQuery,
    state: FSMContext,
    customers: CustomerService,
    render: Renderer,
    lang: str,
) -> None:
    user = callback.from_user
    data = await state.get_data()
    # The next step is set first so that it is stored by the consent's own transaction (one write
    # per tap); if the consent is not stored, the conversation stays where it was.
    await state.set_state(Onboarding.phone)
    await state.set_data({})
    try:
        await customers.consent(
            user.id,
            name=user.full_name,
            username=user.username,
            language=lang,
            source=data.get("source"),
        )
    except BaseException:
        await state.set_state(Onboarding.consent)
        await state.set_data(data)
        raise
    await callback.answer(render.label(lang, "consent_thanks"))
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)
        await ask_phone(callback.message, render, lang)


async def consent_expected(
    message: Message, render: Renderer, lang: str, business: Business
) -> None:
    await message.answer(render.text(lang, "consent_needed"))
    await ask_consent(message, render, lang, business)


async def phone_shared(
    message: Message, state: FSMContext, customers: CustomerService, render: Renderer, lang: str
) -> None:
    contact = message.contact
    assert contact is not None and message.from_user is not None
    if contact.user_id != message.from_user.id:
        await ask_phone(message, render, lang, lead=render.text(lang, "phone_not_own"))
        return
    phone = normalize_phone(contact.phone_number)
    if phone is None:
        await ask_phone(message, render, lang, lead=render.text(lang, "phone_invalid"))
        return
    await customers.set_phone(message.from_user.id, phone)
    await state.set_state(Onboarding.birthday)
    await message.answer(render.text(lang, "phone_saved"), reply_markup=ReplyKeyboardRemove())
    await ask_birthday(message, render, lang)


async def phone_expected(message: Message, render: Renderer, lang: str) -> None:
    typed = message.text and normalize_phone(message.text)
    lead = render.text(lang, "phone_typed" if typed else "phone_invalid")
    await ask_phone(message, render, lang, lead=lead)


async def birthday_typed(
    message: Message,
    state: FSMContext,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    customer: CustomerView,
) -> None:
    assert message.text is not None and message.from_user is not None
    try:
        birthday = parse_birthday(message.text, customers.today())
    except InvalidBirthday as error:
        await ask_birthday(
            message,
            render,
            lang,
            lead=render.text(lang, "birthday_error", reason=error.reason.value),
        )
        return
    await customers.set_birthday(message.from_user.id, birthday)
    await state.set_state(Onboarding.name)
    await ask_name(
        message,
        render,
        lang,
        customer.name,
        lead=render.text(lang, "birthday_saved", birthday=birthday),
    )


async def birthday_skipped(
    callback: CallbackQuery,
    state: FSMContext,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    customer: CustomerView,
) -> None:
    await customers.set_birthday(callback.from_user.id, None)
    await state.set_state(Onboarding.name)
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)
        await ask_name(callback.message, render, lang, customer.name)


async def birthday_expected(message: Message, render: Renderer, lang: str) -> None:
    await ask_birthday(message, render, lang, lead=render.text(lang, "birthday_not_text"))


async def name_kept(
    callback: CallbackQuery,
    state: FSMContext,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)
        await _finish(
            callback.message, callback.from_user.id, state, customers, render, lang, business
        )


async def name_typed(
    message: Message,
    state: FSMContext,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    business: Business,
    customer: CustomerView,
) -> None:
    assert message.text is not None and message.from_user is not None
    name = clean_name(message.text)
    if name is None:
        await ask_name(message, render, lang, customer.name, lead=render.text(lang, "name_invalid"))
        return
    await customers.set_name(message.from_user.id, name)
    await _finish(message, message.from_user.id, state, customers, render, lang, business)


async def name_expected(
    message: Message, render: Renderer, lang: str, customer: CustomerView
) -> None:
    await ask_name(message, render, lang, customer.name, lead=render.text(lang, "name_invalid"))


async def _finish(
    message: Message,
    tg_user_id: int,
    state: FSMContext,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    result = await customers.finish_onboarding(tg_user_id)
    await state.clear()
    customer = await customers.find(tg_user_id)
    name = customer.name if customer else None
    if result.outcome is WelcomeOutcome.CLAIMED_ELSEWHERE or result.coupon is None:
        await message.answer(
            render.text(lang, "welcome_already_claimed", name=name, business=business),
            reply_markup=main_menu(render, lang),
        )
        return
    await message.answer(
        render.text(lang, "welcome_coupon", name=name, coupon=result.coupon, business=business),
        reply_markup=main_menu(render, lang, coupon_id=result.coupon.id),
    )


def create_router() -> Router:
    router = Router(name="onboarding")
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(start, CommandStart())
    router.callback_query.register(
        privacy, OnboardingCallback.filter(F.action == OnboardingAct.PRIVACY)
    )
    router.callback_query.register(
        consent_given,
        Onboarding.consent,
        OnboardingCallback.filter(F.action == OnboardingAct.CONSENT),
    )
    router.message.register(consent_expected, Onboarding.consent)
    router.message.register(phone_shared, Onboarding.phone, F.contact)
    router.message.register(phone_expected, Onboarding.phone)
    router.message.register(birthday_typed, Onboarding.birthday, F.text)
    router.callback_query.register(
        birthday_skipped,
        Onboarding.birthday,
        OnboardingCallback.filter(F.action == OnboardingAct.SKIP_BIRTHDAY),
    )
    router.message.register(birthday_expected, Onboarding.birthday)
    router.callback_query.register(
        name_kept, Onboarding.name, OnboardingCallback.filter(F.action == OnboardingAct.KEEP_NAME)
    )
    router.message.register(name_typed, Onboarding.name, F.text)
    router.message.register(name_expected, Onboarding.name)
    return router
