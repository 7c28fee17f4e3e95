"""Middlewares that hand handlers what they need about the person behind an update."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from bot.rendering import pick_language
from bot.services.customers import CustomerService
from handlers.fsm_storage import prefetched_customer


class CustomerMiddleware(BaseMiddleware):
    """Puts `customer` (a CustomerView or None) and `lang` ("ru"/"en") into handler data."""

    def __init__(self, customers: CustomerService) -> None:
        self.customers = customers

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
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
        return await handler(event, data)
