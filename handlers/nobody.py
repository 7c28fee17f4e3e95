"""First router: a message no person wrote is dropped here, unanswered.

That is a linked channel's post forwarded into its group, a message sent "as a channel", one
from Telegram's service account, or one without an author at all. No handler answers a channel,
records a channel's `/sale`, or meets a message without `from_user`: every router after this
one may rely on `message.from_user`.
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import Message

from handlers.filters import from_a_person

log = logging.getLogger("carebot.nobody")


def _no_person(message: Message) -> bool:
    return not from_a_person(message)


async def ignore(message: Message) -> None:
    log.debug(
        "message from no person ignored chat_id=%s sender_chat=%s",
        message.chat.id,
        message.sender_chat.id if message.sender_chat else None,
    )


def create_router() -> Router:
    router = Router(name="nobody")
    router.message.register(ignore, _no_person)
    return router
