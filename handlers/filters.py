"""Filters that tell staff from customers."""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import Router
from aiogram.filters import BaseFilter, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from handlers.admin_chat import ANONYMOUS_ADMIN_ID, TELEGRAM_SERVICE_ID, AdminChat


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


def from_a_person(message: Message) -> bool:
    """Whether a person wrote this: not a channel's post (automatic forward from a linked channel,
    a message "as a channel"), not Telegram's service account, not authorless. An anonymous admin
    (posting as the group itself) is a person."""
    user = message.from_user
    if user is None or user.id == TELEGRAM_SERVICE_ID or message.is_automatic_forward:
        return False
    return message.sender_chat is None or message.sender_chat.id == message.chat.id


class StaffAuthor(BaseFilter):
    """Written in the admin chat by the staff, checked as strictly as a button press: a current
    member (asked of Telegram, remembered for a minute), or an anonymous admin of the group.

    Not staff, whatever they write: a non-member (a linked discussion group lets anyone
    comment), someone who left, a linked channel's post, a message "as a channel", a bot.
    """

    async def __call__(self, message: Message, admin_chat: AdminChat) -> bool:
        if not admin_chat.is_here(message.chat.id) or not from_a_person(message):
            return False
        user = message.from_user
        assert user is not None  # from_a_person
        if message.sender_chat is not None:  # posted as the group: only its admins can
            return user.id == ANONYMOUS_ADMIN_ID
        if user.is_bot:
            return False
        return await admin_chat.is_member(user.id)


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


class StatsSection(BaseFilter):
    """`/stats <section> [period]`: the first word (in either language) names a section of the
    owner's numbers; the handler gets the section and the rest, the period, as `section` and
    `period_text`. Goes after `Command("stats")`, which hands it `command`."""

    def __init__(self, words: Mapping[str, str]) -> None:
        self.words = {word.casefold(): section for word, section in words.items()}

    async def __call__(self, message: Message, command: CommandObject) -> bool | dict[str, str]:
        words = (command.args or "").split(maxsplit=1)
        section = self.words.get(words[0].casefold()) if words else None
        if section is None:
            return False
        return {"section": section, "period_text": words[1] if len(words) > 1 else ""}


def admin_chat_router(name: str) -> Router:
    """A router for the staff in the admin chat only: messages written there and buttons pressed
    there by its current members (anything else falls through: "this is for staff" to a command,
    "not for you" to a forged button, silence to chatter)."""
    router = Router(name=name)
    router.message.filter(StaffAuthor())
    router.callback_query.filter(StaffButton())
    return router
