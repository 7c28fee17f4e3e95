"""Middlewares that hand handlers what they need about the person behind an update."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, Update, User
from aiogram.utils.callback_answer import CallbackAnswer, CallbackAnswerMiddleware

from bot.buttons import BookingAct
from bot.rendering import pick_language
from bot.services.customers import CustomerService
from handlers.callbacks import (
    BookingCallback,
    ForgetCallback,
    OnboardingAct,
    OnboardingCallback,
    UnsubscribeCallback,
)
from handlers.fsm_storage import prefetched_customer
from handlers.masters import INVITE_PREFIX, DeclineReason
from handlers.onboarding import ask_reconsent

log = logging.getLogger("carebot")


class CustomerMiddleware(BaseMiddleware):
    """Puts `customer` (a CustomerView or None) and `lang` ("ru"/"en") into handler data; a
    customer who has yet to agree to the current privacy text is asked to first (PrivacyGate)."""

    def __init__(self, customers: CustomerService) -> None:
        self.customers = customers
        self.gate = PrivacyGate()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        if isinstance(event, Update) and _business(event):
            # Telegram Business: written to the salon's own account, not to the bot, so nothing
            # of the customer's chat with the bot applies (its privacy question, its block).
            data["customer"] = None
            data["lang"] = pick_language(user.language_code if user else None)
            return await handler(event, data)
        customer = None
        if user and not user.is_bot:
            found = prefetched_customer(
                user.id
            )  # read with the conversation's state, in one statement
            customer = found if found is not ... else await self.customers.find(user.id)
        if customer is not None and customer.blocked and user is not None:
            # They wrote to us, so they no longer block the bot: offers may reach them again.
            await self.customers.mark_reachable(user.id)
        data["customer"] = customer
        data["lang"] = (
            customer.language if customer else pick_language(user.language_code if user else None)
        )
        privacy = self.customers.business.privacy_version if customer is not None else None
        if customer is not None and customer.data_consent_version != privacy:
            inner = event.event if isinstance(event, Update) else event
            if await self.gate.stopped(inner, data):
                return None
        return await handler(event, data)


# What still works before a customer agrees to a new privacy text: reading it, their data, and
# withdrawing (commands); the new consent itself, the privacy text, erasure, unsubscribing
# (buttons); and a master's answers about their bookings (their work, not their data as a customer).
_OPEN_COMMANDS = frozenset({"/forget", "/mydata", "/stop", "/privacy"})
_OPEN_BUTTONS = frozenset({ForgetCallback.__prefix__, UnsubscribeCallback.__prefix__})
_OPEN_ONBOARDING = frozenset({OnboardingAct.RECONSENT, OnboardingAct.PRIVACY})
_MASTERS_BUTTONS = frozenset(
    {
        BookingAct.ACCEPT,
        BookingAct.DECLINE,
        BookingAct.DECLINE_NOW,
        BookingAct.DONE,
        BookingAct.NO_SHOW,
    }
)
_MASTERS_STATES = frozenset({DeclineReason.text.state})
_SEP = ForgetCallback.__separator__


class PrivacyGate:
    """A customer who agreed to an older privacy text than the business's is asked to agree to
    the current one at their next message or button, and until they do nothing else of the bot
    is served to them (the outbox holds their offers: bot/outbox/policy.py).

    Costs nothing per update: the customer's agreed version came with the customer row that
    CustomerMiddleware read (with the conversation's state, in one statement).
    """

    async def stopped(self, event: object, data: dict[str, Any]) -> bool:
        """Asked to agree again instead of being served (False: let it through)."""
        chat: Chat | None = data.get("event_chat")
        if chat is None or chat.type != ChatType.PRIVATE or self._open(event, data):
            return False
        render, lang, business = data["render"], data["lang"], data["business"]
        if isinstance(event, CallbackQuery):
            await event.answer()
            if isinstance(event.message, Message):
                await ask_reconsent(event.message, render, lang, business)
        elif isinstance(event, Message):
            await ask_reconsent(event, render, lang, business, wrote=True)
        else:
            return False  # anything else (a member update, an inline query): not theirs to ask
        return True

    @staticmethod
    def _open(event: object, data: dict[str, Any]) -> bool:
        if data.get("raw_state") in _MASTERS_STATES:
            return True
        if isinstance(event, Message):
            if event.successful_payment is not None:
                return True  # money already charged: the visit it paid for is confirmed
            words = (event.text or "").split(maxsplit=1)
            command = words[0].split("@", 1)[0].lower() if words else ""
            if command == "/start" and len(words) > 1:
                return words[1].startswith(INVITE_PREFIX)  # a master's invite link
            return command in _OPEN_COMMANDS
        if isinstance(event, CallbackQuery):
            prefix, _, rest = (event.data or "").partition(_SEP)
            if prefix in _OPEN_BUTTONS:
                return True
            action = rest.split(_SEP, 1)[0]
            if prefix == OnboardingCallback.__prefix__:
                return action in _OPEN_ONBOARDING
            if prefix == BookingCallback.__prefix__:
                return action in _MASTERS_BUTTONS
        return False


def _business(update: Update) -> bool:
    """An update of a connected Telegram Business account (handlers/business_chats.py)."""
    return any(
        getattr(update, kind, None) is not None
        for kind in (
            "business_connection",
            "business_message",
            "edited_business_message",
            "deleted_business_messages",
        )
    )


class PressAnswers(CallbackAnswerMiddleware):
    """aiogram's CallbackAnswerMiddleware, except that a press Telegram says is answered
    already still reaches its handler: an update redelivered after a restart was answered by the
    process that stopped mid-way, and a refused second answer must not lose the customer's tap."""

    def answer(  # type: ignore[override]  # awaited by the base class, as its own return is
        self, event: CallbackQuery, callback_answer: CallbackAnswer
    ) -> Awaitable[bool]:
        return _answered_once(super().answer(event, callback_answer), event.id)


async def _answered_once(answering: Awaitable[bool], query_id: str) -> bool:
    try:
        return await answering
    except TelegramBadRequest as error:
        if "query is too old" not in error.message:
            raise
        log.info("press answered before (redelivered after a restart) query_id=%s", query_id)
        return False
