"""Why a message did not go, in the core's words. The Telegram edge (`handlers/outbox_client.py`)
turns the Bot API's errors into these, so the sender and the deliverers' callers know no aiogram;
the request middleware and the sender retry the same things (`Transient`)."""

from __future__ import annotations


class Withdrawn(Exception):
    """The message was withdrawn while it waited for its turn (a broadcast stopped)."""


class DeliveryError(Exception):
    """A call the messenger did not take. `str()` is one short line for `last_error` and the logs
    (the code the messenger gave and its words); `code` is that code, if it gave one."""

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(text[:300])
        self.code = code


class Blocked(DeliveryError):
    """403: the customer blocked the bot, or the bot is no longer in the group."""


class RetryAfter(DeliveryError):
    """429: this chat must wait `seconds` (the request middleware already paused it)."""

    def __init__(self, seconds: int, text: str | None = None) -> None:
        super().__init__(text or f"429 retry after {seconds}s", 429)
        self.seconds = seconds


class Transient(DeliveryError):
    """5xx, network trouble, a timeout: may pass on its own, so it is tried again."""


class Refused(DeliveryError):
    """A bad request, a wrong token, a conflict: never retried."""


def is_transient(error: BaseException) -> bool:
    return isinstance(error, Transient | TimeoutError)


def describe(error: BaseException) -> str:
    """One short line for `last_error` and the logs."""
    if isinstance(error, DeliveryError):
        return str(error)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {message}"[:300]
