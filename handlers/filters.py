"""Filters that tell staff from customers."""
from __future__ import annotations

from aiogram import Router
from aiogram.filters import BaseFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.admin_chat import ANONYMOUS_ADMIN_ID, AdminChat


class InAdminChat(BaseFilter):
    """A message written in the admin chat (only its members can write there)."""

    async def __call__(self, message: Message, admin_chat: AdminChat) -> bool:
        return admin_chat.is_here(message.chat.id)


class StaffButton(BaseFilter):
    """A button on a message in the admin chat, pressed by a current member of it.

    A forged press of a staff button anywhere else, or by someone who left, does not pass.
    """

    async def __call__(self, callback: CallbackQuery, admin_chat: AdminChat) -> bool:
        message = callback.message
        if message is None or not admin_chat.is_here(message.chat.id):
            return False
        return await admin_chat.is_member(callback.from_user.id)


class StaffAuthor(BaseFilter):
    """Written by a person on the staff: a member, or an anonymous admin of the group."""

    async def __call__(self, message: Message, admin_chat: AdminChat) -> bool:
        if message.sender_chat is not None:
            return message.sender_chat.id == admin_chat.chat_id and bool(
                message.from_user and message.from_user.id == ANONYMOUS_ADMIN_ID)
        return message.from_user is not None and not message.from_user.is_bot


class AnswersPrompt(BaseFilter):
    """A staff member's answer to the bot's question in a staff conversation (amount, note).

    It must reply to that question, or reply to nothing outside any topic; so a reply to a
    customer's message, or a message in a customer's topic, still goes to the customer.
    """

    async def __call__(self, message: Message, state: FSMContext) -> bool:
        prompt = (await state.get_data()).get("prompt_id")
        replied = message.reply_to_message
        if replied is not None and replied.message_id == prompt:
            return True
        return replied is None and not message.is_topic_message


class NotCommand(BaseFilter):
    """Anything but a /command (a wizard's answer must not swallow /cancel or /find)."""

    async def __call__(self, message: Message) -> bool:
        return not (message.text or "").startswith("/")


def admin_chat_router(name: str) -> Router:
    """A router for the admin chat only: messages written there, buttons pressed there by
    current members (a forged staff button anywhere else falls through to "not for you")."""
    router = Router(name=name)
    router.message.filter(InAdminChat())
    router.callback_query.filter(StaffButton())
    return router
