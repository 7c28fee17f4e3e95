"""Every Bot API call the bot makes passes here: Telegram's limits, `retry_after` and transient
faults are handled in one place, for an answer in a handler as for the outbox sender.

An aiogram request middleware (`bot.session.middleware(...)`), the hook aiogram gives for
exactly this; the budget itself is `bot.outbox.limits.Limiter`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, SendMediaGroup, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.metrics import REPLIES, RETRIES, THROTTLED
from bot.outbox.errors import Withdrawn
from bot.outbox.limits import DELIVERY, Limiter, Priority, is_group
from handlers.outbox_client import is_transient

log = logging.getLogger("carebot.delivery")

# Calls that put a new message into a chat: these count toward Telegram's per-chat limits.
NEW_MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendVideo",
        "sendAnimation",
        "sendDocument",
        "sendVoice",
        "sendAudio",
        "sendSticker",
        "sendVideoNote",
        "sendLocation",
        "sendContact",
        "sendMediaGroup",
        "sendInvoice",
        "sendPoll",
        "sendDice",
        "sendVenue",
        "copyMessage",
        "copyMessages",
        "forwardMessage",
        "forwardMessages",
    }
)
# A 429 longer than this is not waited out inside the call (a person is waiting, or the call
# holds a claimed outbox row): the caller gets the error and decides.
MAX_WAIT_SECONDS = {Priority.INTERACTIVE: 30.0, Priority.RELAY: 120.0, Priority.BULK: 0.0}
MAX_ATTEMPTS = 5  # then the caller hears of it (the outbox sender reschedules; a handler logs)
# Calls into no chat that are still worth a retry here (a button press waits for its answer).
UNCHATTED_RETRIED = frozenset({"answerCallbackQuery"})
# 0.5 s, 1 s, 2 s, 4 s, 8 s between attempts at a transient error, a little jittered (aiogram's own
# backoff, as its polling uses).
BACKOFF = BackoffConfig(min_delay=0.5, max_delay=8.0, factor=2.0, jitter=0.1)


class TelegramLimits(BaseRequestMiddleware):
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        delivery = DELIVERY.get()
        chat: Any = getattr(method, "chat_id", None)
        chat_id = chat if isinstance(chat, int) else None
        counted = method.__api_method__ in NEW_MESSAGE_METHODS
        # An album is as many messages as it has items, for Telegram's limits as for ours.
        turns = len(method.media) if isinstance(method, SendMediaGroup) else 1
        if chat_id is None and method.__api_method__ not in UNCHATTED_RETRIED:
            return await make_request(bot, method)  # polling, getMe, webhooks: their callers decide
        attempt = 0
        backoff = Backoff(BACKOFF)
        # In a group, when this message's turns came: once it is in, it counts from then on
        # (Telegram counts a group's minute from arrival; an album's upload takes a while).
        departed: float | None = None
        while True:
            # The outbox sender takes the first turn of its one-call messages itself (and checks
            # they are still wanted); a retry waits here like any other call.
            if chat_id is not None and not (delivery.paced and attempt == 0):
                if counted and is_group(chat_id):
                    departed = await self.limiter.wait_turns(chat_id, turns, delivery.priority)
                elif counted:
                    await self.limiter.wait_turn(chat_id, delivery.priority)
                else:
                    await self.limiter.wait_unpaused(chat_id)
            if delivery.still_wanted is not None and not delivery.still_wanted():
                raise Withdrawn(method.__api_method__)
            try:
                response = await self._made(make_request, bot, method, counted)
                if departed is not None and chat_id is not None:
                    self.limiter.arrived(chat_id, departed, turns)
                if counted and not delivery.paced and delivery.priority is Priority.INTERACTIVE:
                    REPLIES.labels(method.__api_method__).inc()
                return response
            except TelegramRetryAfter as error:
                THROTTLED.inc()
                self.limiter.pause(chat_id, error.retry_after)
                attempt += 1
                if (
                    not delivery.retry_in_process
                    or error.retry_after > MAX_WAIT_SECONDS[delivery.priority]
                    or attempt > MAX_ATTEMPTS
                ):
                    raise
                RETRIES.inc()
                log.info(
                    "telegram asked to wait method=%s chat_id=%s retry_after=%s",
                    method.__api_method__,
                    chat_id,
                    error.retry_after,
                )
            except Exception as error:
                attempt += 1
                if (
                    not (delivery.retry_in_process and is_transient(error))
                    or attempt > MAX_ATTEMPTS
                ):
                    raise
                delay = max(next(backoff), 0.0)
                RETRIES.inc()
                log.info(
                    "telegram call failed, retrying method=%s chat_id=%s attempt=%s error=%s",
                    method.__api_method__,
                    chat_id,
                    attempt,
                    type(error).__name__,
                )
                await asyncio.sleep(delay)

    async def _made(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
        counted: bool,
    ) -> Response[TelegramType]:
        """The call itself. Once whatever came back (an answer, an error, nothing) is here, a new
        message counts from now for every instance: Telegram counted it on arrival, if at all,
        and not later than this."""
        try:
            return await make_request(bot, method)
        finally:
            if counted:
                await self.limiter.landed()
