"""Say so when the Bot API keeps the bot waiting.

A server that accepts connections but never answers used to leave `carebot run` and `tick`
silent for a minute (aiogram's default request timeout). Each call is now bounded by
`TELEGRAM_TIMEOUT` (the session's timeout); this request middleware adds one log line a couple of
seconds into a call that has had no answer, naming the server and the method, once per stall
(not once per call: thirty sends held up at once are one line).
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger("carebot")

NOTICE_AFTER_SECONDS = 2.0
# Long polling waits for updates by design: its silence is not the server's.
_WAITS_BY_DESIGN = frozenset({"getUpdates"})


class ApiWait(BaseRequestMiddleware):
    def __init__(
        self, where: str, timeout: float, notice_after: float = NOTICE_AFTER_SECONDS
    ) -> None:
        self.where = where
        self.timeout = timeout
        self.notice_after = min(notice_after, timeout / 2)
        self._stalled = 0  # calls past notice_after and still unanswered

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        if name in _WAITS_BY_DESIGN:
            return await make_request(bot, method)
        stalled = False

        def notice() -> None:
            nonlocal stalled
            stalled = True
            self._stalled += 1
            if self._stalled == 1:
                log.warning(
                    "waiting for the Bot API at %s (%s)… giving up after %g s (TELEGRAM_TIMEOUT)",
                    self.where,
                    name,
                    self.timeout,
                )

        handle = asyncio.get_running_loop().call_later(self.notice_after, notice)
        try:
            return await make_request(bot, method)
        finally:
            handle.cancel()
            if stalled:
                self._stalled -= 1
