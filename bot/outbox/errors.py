"""Which Bot API errors may pass on their own and which never will (shared by the request
middleware and the outbox sender, so both retry the same things)."""
from __future__ import annotations

from aiogram.exceptions import (
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

_CODES = ((TelegramBadRequest, 400), (TelegramUnauthorizedError, 401), (TelegramForbiddenError, 403),
          (TelegramNotFound, 404), (TelegramConflictError, 409), (TelegramRetryAfter, 429),
          (TelegramServerError, 500))


class Withdrawn(Exception):
    """The message was withdrawn while it waited for its turn (a broadcast stopped)."""


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
