"""The first visit: data consent → phone (own contact only) → birthday → name → offers → coupon.

Nothing about the customer is stored before the consent button; until then the FSM holds
only the deep-link source, and their first /start only adds one to the day's anonymous count of
starts (`bot.services.onboarding_starts`, the funnel's first step). Every step re-asks politely
on input it cannot use.

Two consents, two questions (152-FZ art. 9: the data consent is a document of its own; 38-FZ art.
18: offers need a prior consent that can be proved). The data consent comes first, with the link
to the privacy text: nothing can be stored without it. The offers question ("may we send you
offers and gifts? yes / no", neither pre-selected) comes last, just before the welcome coupon:
by then the customer knows what they get and who we are, so the answer is an informed one and
not a reflex tap through a wall of legal questions at the door; the answer and the gift arrive
together, so a business whose welcome coupon comes with offers (`requires_offers_consent`) can
say so right where it matters, and a "no" still ends onboarding politely, with the way back
(/resume). Each answer is its own row in `consents` with its version (privacy_version,
offers_version) and how it was given.

A new privacy version is agreed to again here too (`reconsent_given`): the question itself is
asked at the edge (handlers/middlewares.py PrivacyGate) at the customer's next message.
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
from bot.services.certificates import CertificateService, gift_code
from bot.services.customers import (
    CustomerService,
    CustomerView,
    WelcomeOutcome,
    WelcomeResult,
    clean_name,
)
from bot.services.onboarding_starts import OnboardingStarts
from bot.services.phones import normalize_phone
from bot.services.referrals import FRIEND_BONUS, ReferralService, referral_token
from handlers import gifts
from handlers.callbacks import OnboardingAct, OnboardingCallback
from handlers.keyboards import main_menu

# Deep links: t.me/<bot>?start=src_instagram records "instagram" as where the customer came from.
SOURCE_PAYLOAD = re.compile(r"^src_([A-Za-z0-9_-]{1,48})$")


class Onboarding(StatesGroup):
    consent = State()
    phone = State()
    birthday = State()
    name = State()
    offers = State()


def _source(command: CommandObject) -> str | None:
    match = SOURCE_PAYLOAD.match(command.args or "")
    return match[1].lower() if match else None


def _consent_keyboard(
    render: Renderer, lang: str, business: Business, again: bool = False
) -> InlineKeyboardMarkup:
    # Built directly, not with InlineKeyboardBuilder: the same markup in a third of the time (every
    # newcomer's /start gets it). `again`: the question after the privacy text changed.
    act, label = (
        (OnboardingAct.RECONSENT, "reconsent") if again else (OnboardingAct.CONSENT, "consent")
    )
    consent = OnboardingCallback(action=act).pack()
    if business.privacy_url:
        privacy = InlineKeyboardButton(text=render.label(lang, "privacy"), url=business.privacy_url)
    else:
        privacy = InlineKeyboardButton(
            text=render.label(lang, "privacy"),
            callback_data=OnboardingCallback(action=OnboardingAct.PRIVACY).pack(),
        )
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=render.label(lang, label), callback_data=consent)],
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


async def ask_reconsent(
    message: Message, render: Renderer, lang: str, business: Business, wrote: bool = False
) -> None:
    """The data-consent question again: the privacy text changed since they agreed."""
    await message.answer(
        render.text(lang, "reconsent", business=business, wrote=wrote),
        reply_markup=_consent_keyboard(render, lang, business, again=True),
    )


async def ask_offers(
    message: Message, render: Renderer, lang: str, business: Business, lead: str | None = None
) -> None:
    """The separate consent to offers: yes or no, side by side, neither pre-selected."""
    yes = OnboardingCallback(action=OnboardingAct.OFFERS_YES).pack()
    no = OnboardingCallback(action=OnboardingAct.OFFERS_NO).pack()
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=render.label(lang, "offers_yes"), callback_data=yes),
                InlineKeyboardButton(text=render.label(lang, "offers_no"), callback_data=no),
            ]
        ]
    )
    await message.answer(
        render.text(
            lang, "ask_offers", business=business, rule=business.coupons.welcome, lead=lead
        ),
        reply_markup=keyboard,
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
    business: Business,
) -> None:
    """A /start in the middle of onboarding asks the current question again."""
    current = await state.get_state()
    if current == Onboarding.offers.state:
        await ask_offers(message, render, lang, business)
    elif current == Onboarding.name.state:
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
    onboarding_starts: OnboardingStarts,
    certificates: CertificateService,
    referrals: ReferralService,
) -> None:
    gift = gift_code(command.args)  # a certificate's link: claimed once they have consented
    ref = referrals.enabled and referral_token(command.args)  # a friend's link: kept to the phone
    if customer and ref:  # someone we know: a friend's link changes nothing
        await message.answer(render.text(lang, "referral_known"))
    if customer and gift:
        assert message.from_user is not None
        result = await certificates.claim(message.from_user.id, gift)
        await gifts.answer_claim(message, result, render, lang, business)
    if customer and customer.onboarded:
        await state.clear()
        if gift:
            return
        await message.answer(
            render.text(lang, "returning", name=customer.name, business=business),
            reply_markup=main_menu(render, lang),
        )
    elif customer:
        await _resume(message, state, customer, render, lang, customers, business)
    else:
        first = await state.get_state() not in Onboarding.__all_states_names__
        source = _source(command)
        await state.set_state(Onboarding.consent)
        data = {"source": source, "gift": gift} if gift else {"source": source}
        await state.set_data(data | {"ref": ref} if ref else data)
        if first:  # a second /start before consenting is the same start
            await onboarding_starts.count(source)  # written with the state: one write
        await ask_consent(message, render, lang, business)


async def privacy(callback: CallbackQuery, render: Renderer, lang: str, business: Business) -> None:
    if callback.message:
        await callback.message.answer(render.text(lang, "privacy", business=business))


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def consent_given(
    callback: CallbackQuery,
    state: FSMContext,
    customers: CustomerService,
    certificates: CertificateService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    user = callback.from_user
    data = await state.get_data()
    # The next step is set first so that it is stored by the consent's own transaction (one write
    # per tap); if the consent is not stored, the conversation stays where it was.
    await state.set_state(Onboarding.phone)
    await state.set_data({"ref": data["ref"]} if data.get("ref") else {})
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
        if data.get("gift"):  # they came by a certificate's link: theirs now, if still free
            result = await certificates.claim(user.id, data["gift"])
            await gifts.answer_claim(callback.message, result, render, lang, business)
        await ask_phone(callback.message, render, lang)


async def consent_expected(
    message: Message, render: Renderer, lang: str, business: Business
) -> None:
    await message.answer(render.text(lang, "consent_needed"))
    await ask_consent(message, render, lang, business)


async def phone_shared(
    message: Message,
    state: FSMContext,
    customers: CustomerService,
    render: Renderer,
    lang: str,
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
    ref = (await state.get_data()).get("ref")  # they came by a friend's link: recorded with it
    saved = await customers.set_phone(message.from_user.id, phone, ref=ref)
    friend_bonus = sum(c.points for c in saved.credited if c.reason == FRIEND_BONUS)
    if saved.recognised:  # the business knew them: their history is theirs here now
        text = render.text(lang, "phone_recognised", **vars(saved))
        await message.answer(text, reply_markup=ReplyKeyboardRemove())
        if saved.birthday:  # they told the business before: not asked again (/profile shows it)
            await state.set_state(Onboarding.name)
            await ask_name(message, render, lang, saved.name)
            return
    else:
        await message.answer(render.text(lang, "phone_saved"), reply_markup=ReplyKeyboardRemove())
        if friend_bonus:
            await message.answer(render.text(lang, "referral_bonus", points=friend_bonus))
    await state.set_state(Onboarding.birthday)
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
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    await state.set_state(Onboarding.offers)
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)
        await ask_offers(callback.message, render, lang, business)


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
    await state.set_state(Onboarding.offers)  # stored by the name's own write
    await customers.set_name(message.from_user.id, name)
    await ask_offers(message, render, lang, business)


async def name_expected(
    message: Message, render: Renderer, lang: str, customer: CustomerView
) -> None:
    await ask_name(message, render, lang, customer.name, lead=render.text(lang, "name_invalid"))


@flags.callback_answer(disabled=True)  # answers the press itself, before its edits
async def offers_answered(
    callback: CallbackQuery,
    callback_data: OnboardingCallback,
    state: FSMContext,
    customers: CustomerService,
    customer: CustomerView,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    """Their answer about offers is its own consent row; onboarding ends with the coupon."""
    granted = callback_data.action == OnboardingAct.OFFERS_YES
    # Cleared first so that the answer's own transaction stores it (one write per tap); if the
    # answer is not stored, the question stays.
    await state.clear()
    try:
        result = await customers.answer_offers(callback.from_user.id, granted)
    except BaseException:
        await state.set_state(Onboarding.offers)
        raise
    await callback.answer(render.label(lang, "consent_thanks"))
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)
        await _welcome(callback.message, result, customer.name, render, lang, business)


async def offers_expected(
    message: Message, render: Renderer, lang: str, business: Business
) -> None:
    await ask_offers(message, render, lang, business, lead=render.text(lang, "offers_expected"))


async def _welcome(
    message: Message,
    result: WelcomeResult,
    name: str | None,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    if result.outcome is WelcomeOutcome.NEEDS_OFFERS:
        await message.answer(
            render.text(
                lang,
                "welcome_needs_offers",
                name=name,
                rule=business.coupons.welcome,
                business=business,
            ),
            reply_markup=main_menu(render, lang),
        )
        return
    if result.outcome is WelcomeOutcome.KNOWN_CUSTOMER:  # [coupons.welcome] for_known_customers
        await message.answer(
            render.text(lang, "welcome_known", name=name, business=business),
            reply_markup=main_menu(render, lang),
        )
        return
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


@flags.callback_answer(disabled=True)  # answers the press itself, before its edits
async def reconsent_given(
    callback: CallbackQuery,
    state: FSMContext,
    customer: CustomerView | None,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    """They agreed to the new privacy text: recorded, and the bot is theirs again."""
    if customer is None:  # erased meanwhile: an old button
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    await customers.reconsent(callback.from_user.id)
    await callback.answer(render.label(lang, "consent_thanks"))
    if not isinstance(callback.message, Message):
        return
    await callback.message.edit_reply_markup(reply_markup=None)
    if customer.onboarded:
        await callback.message.answer(
            render.text(lang, "reconsent_thanks"), reply_markup=main_menu(render, lang)
        )
    else:
        await callback.message.answer(render.text(lang, "reconsent_thanks"))
        await _resume(callback.message, state, customer, render, lang, customers, business)


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
    router.callback_query.register(
        offers_answered,
        Onboarding.offers,
        OnboardingCallback.filter(
            F.action.in_({OnboardingAct.OFFERS_YES, OnboardingAct.OFFERS_NO})
        ),
    )
    router.message.register(offers_expected, Onboarding.offers)
    router.callback_query.register(
        reconsent_given, OnboardingCallback.filter(F.action == OnboardingAct.RECONSENT)
    )
    return router
