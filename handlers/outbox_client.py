"""The outbox sender's Telegram client: the core's `Transport` (one row → one API call → the new
message's id) and the translation of the Bot API's errors into the core's (`bot.outbox.errors`),
for the sender's own calls and for the deliverers the edge registers (the care relays)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

from bot.outbox.errors import Blocked, DeliveryError, Refused, RetryAfter, Transient
from bot.outbox.limits import DELIVERY
from bot.outbox.sender import Deliverer, Done, Ready
from handlers.keyboards import stored_markup

_CODES = (
    (TelegramBadRequest, 400),
    (TelegramUnauthorizedError, 401),
    (TelegramForbiddenError, 403),
    (TelegramNotFound, 404),
    (TelegramConflictError, 409),
    (TelegramRetryAfter, 429),
    (TelegramServerError, 500),
)

# A row's stored buttons as Telegram's keyboard (by default the core's intents packed with the
# callback-data factories; Telegram's own JSON of older rows as it is).
Keyboard = Callable[[dict[str, Any]], InlineKeyboardMarkup | None]


def is_transient(error: BaseException) -> bool:
    """5xx and network trouble may pass; a bad request, a block, a wrong token never will."""
    if isinstance(error, TelegramEntityTooLarge):
        return False
    return isinstance(error, TelegramServerError | TelegramNetworkError | TimeoutError)


def describe(error: BaseException) -> str:
    """One short line for `last_error` and the logs: the code Telegram gave and its words."""
    code = next((code for kind, code in _CODES if isinstance(error, kind)), None)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return (f"{code} {message}" if code else f"{type(error).__name__}: {message}")[:300]


def core_error(error: BaseException) -> BaseException:
    """The core's name for a Bot API error (anything else is returned as it is)."""
    if isinstance(error, TelegramRetryAfter):
        return RetryAfter(error.retry_after)
    code = next((code for kind, code in _CODES if isinstance(error, kind)), None)
    if isinstance(error, TelegramForbiddenError):
        return Blocked(describe(error), code)
    if is_transient(error):
        return Transient(describe(error), code)
    if isinstance(error, TelegramAPIError | ClientDecodeError):
        return Refused(describe(error), code)
    return error


@contextmanager
def core_errors() -> Iterator[None]:
    """Bot API errors raised inside leave as the core's (`bot.outbox.errors`)."""
    try:
        yield
    except DeliveryError:
        raise
    except (TelegramAPIError, ClientDecodeError, TimeoutError) as error:
        raise core_error(error) from error


def deliverer(deliver: Deliverer) -> Deliverer:
    """A deliverer written with aiogram, as the core's sender calls it."""

    @wraps(deliver)
    async def delivering(item: Ready, done: Done) -> None:
        with core_errors():
            await deliver(item, done)

    return delivering


class TelegramTransport:
    """Sends one outbox row: a text, or a photo / video / animation with the text as its caption;
    a staff notice may answer a message (`reply_to`) or go into a topic (`thread_id`)."""

    def __init__(self, bot: Bot, keyboard: Keyboard = stored_markup) -> None:
        self.bot = bot
        self.keyboard = keyboard

    async def send(self, item: Ready) -> int:
        with core_errors():
            return (await self._send(item)).message_id

    async def _send(self, item: Ready) -> Message:
        markup = self.keyboard(item.markup) if item.markup else None
        where: dict[str, Any] = {}
        if item.data.get("thread_id"):
            where["message_thread_id"] = item.data["thread_id"]
        if item.data.get("reply_to"):
            where["reply_parameters"] = ReplyParameters(
                message_id=item.data["reply_to"], allow_sending_without_reply=True
            )
        if DELIVERY.get().paid:  # a broadcast the business pays Telegram's faster rate for
            where["allow_paid_broadcast"] = True
        media = item.media
        if not media:
            return await self.bot.send_message(
                item.chat_id, item.text, reply_markup=markup, **where
            )
        kind, file_id = media["kind"], media["file_id"]
        if kind == "photo":
            return await self.bot.send_photo(
                item.chat_id, file_id, caption=item.text, reply_markup=markup, **where
            )
        if kind == "video":
            return await self.bot.send_video(
                item.chat_id, file_id, caption=item.text, reply_markup=markup, **where
            )
        return await self.bot.send_animation(
            item.chat_id, file_id, caption=item.text, reply_markup=markup, **where
        )
