"""Each update handled once, counted once.

Behind a load balancer Telegram may post an update again (a timeout, a 5xx from one instance)
and the retry may land on another instance: the first to see an update_id takes it (`SET NX`
in Redis, kept a day, far beyond Telegram's retries), the others drop it. Updates of one chat
are kept in order across instances by aiogram's event isolation in Redis (the storage's
`create_isolation()`, bot/app.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from bot.metrics import UPDATES, UPDATES_DUPLICATE

SEEN_SECONDS = 24 * 3600


class CountUpdates(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update):
            UPDATES.labels(event.event_type).inc()
        return await handler(event, data)


class OnceOnly(BaseMiddleware):
    def __init__(self, redis: Any, prefix: str, seconds: int = SEEN_SECONDS) -> None:
        self.redis = redis
        self.prefix = prefix
        self.seconds = seconds

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update):
            first = await self.redis.set(
                f"{self.prefix}:{event.update_id}", 1, nx=True, ex=self.seconds
            )
            if not first:
                UPDATES_DUPLICATE.inc()
                return None
        return await handler(event, data)
