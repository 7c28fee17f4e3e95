"""What a failed update is answered with, chosen by the exception's type (aiogram's error handlers
with `ExceptionTypeFilter`). A staff member's typing that does not parse is answered by the staff
router (`handlers/staff.py`); this router goes last and answers everything else."""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

from aiogram import Bot, Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import Chat, ErrorEvent, User

from bot.rendering import Renderer, pick_language
from bot.services.customers import CustomerNotFound

log = logging.getLogger("carebot")


async def customer_lost(event: ErrorEvent, render: Renderer, **data: Any) -> None:
    """The customer vanished under a running conversation (erased elsewhere): start over."""
    log.info(
        "conversation lost its customer update_id=%s user_id=%s",
        event.update.update_id,
        _chat_id(data),
    )
    state: FSMContext | None = data.get("state")
    if state is not None:
        await state.clear()
    await _say(event, render, "start_again", data)


async def failed(event: ErrorEvent, render: Renderer, **data: Any) -> None:
    """Log with context and answer politely where it happened; never show anyone a traceback."""
    update = event.update
    log.error(
        "update failed update_id=%s user_id=%s event=%s error=%s",
        update.update_id,
        _chat_id(data),
        update.event_type,
        type(event.exception).__name__,
        exc_info=event.exception,
    )
    await _say(event, render, "error", data)


def _chat_id(data: dict[str, Any]) -> int | None:
    user: User | None = data.get("event_from_user")
    chat: Chat | None = data.get("event_chat")
    return chat.id if chat is not None else (user.id if user else None)


async def _say(event: ErrorEvent, render: Renderer, template: str, data: dict[str, Any]) -> None:
    """In the staff group for a staff command (never a staff member's private chat, which they may
    never have opened), else in the person's chat, in their language."""
    update = event.update
    user: User | None = data.get("event_from_user")
    chat: Chat | None = data.get("event_chat")
    in_group = chat is not None and chat.type != "private"
    lang = (data.get("staff_lang") if in_group else data.get("lang")) or pick_language(
        user.language_code if user else None
    )
    bot: Bot | None = data.get("bot")
    chat_id = _chat_id(data)
    if bot is None or chat_id is None:
        return
    thread_id = (
        update.message.message_thread_id
        if update.message and update.message.is_topic_message
        else None
    )
    with suppress(Exception):
        if update.callback_query:
            await update.callback_query.answer()
        await bot.send_message(chat_id, render.text(lang, template), message_thread_id=thread_id)


def create_router() -> Router:
    router = Router(name="errors")
    router.errors.register(customer_lost, ExceptionTypeFilter(CustomerNotFound))
    router.errors.register(failed)
    return router
