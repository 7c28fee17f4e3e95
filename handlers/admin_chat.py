"""The staff's group chat: membership in it is what makes someone staff."""

from __future__ import annotations

import logging
from datetime import timedelta

from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.types import Chat, ChatMember, ChatMemberMember, User
from aiogram.utils.chat_member import ADMINS

from bot.clock import Clock
from bot.services.staff import Staff

log = logging.getLogger("carebot.admin_chat")

# The owner, the admins and plain members are staff; a restricted member is not (aiogram's
# `chat_member.MEMBERS` would count them).
STAFF_MEMBERS: tuple[type[ChatMember], ...] = (*ADMINS, ChatMemberMember)
# Telegram's stand-in author for anonymous group admins.
ANONYMOUS_ADMIN_ID = 1087968824
# Telegram's service account: the author of a linked channel's posts forwarded into its group.
TELEGRAM_SERVICE_ID = 777000


class AdminChat:
    """Who is staff (asked of Telegram, remembered for a minute) and whether the group has topics."""

    def __init__(
        self, bot: Bot, chat_id: int | None, clock: Clock, ttl: timedelta = timedelta(minutes=1)
    ) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.clock = clock
        self.ttl = ttl
        self._members: dict[int, tuple[bool, object]] = {}
        self._forum: bool | None = None

    async def is_member(self, user_id: int) -> bool:
        if self.chat_id is None:
            return False
        now = self.clock.now()
        cached = self._members.get(user_id)
        if cached and now - cached[1] < self.ttl:  # type: ignore[operator]
            return cached[0]
        try:
            member = await self.bot.get_chat_member(self.chat_id, user_id)
            verdict = isinstance(member, STAFF_MEMBERS)
        except TelegramAPIError as error:
            log.warning("cannot check staff membership user_id=%s error=%s", user_id, error)
            verdict = False
        self._members[user_id] = (verdict, now)
        return verdict

    async def is_forum(self) -> bool:
        """Whether the group has topics; asked once, and again after a topic went missing."""
        if self.chat_id is None:
            return False
        if self._forum is None:
            try:
                self._forum = bool((await self.bot.get_chat(self.chat_id)).is_forum)
            except (TelegramAPIError, ClientDecodeError) as error:  # plain mode still works
                log.warning("cannot read the admin chat chat_id=%s error=%s", self.chat_id, error)
                return False
        return self._forum

    def topics_changed(self) -> None:
        self._forum = None

    def is_here(self, chat_id: int) -> bool:
        """Whether a chat is the admin chat (never, while ADMIN_CHAT_ID is not set)."""
        return self.chat_id is not None and chat_id == self.chat_id

    def staff_of(
        self, user: User, sender_chat: Chat | None = None, signature: str | None = None
    ) -> Staff:
        """The staff member behind a message; an anonymous admin is named by their signature."""
        if sender_chat is not None and sender_chat.id == self.chat_id:
            return Staff(id=sender_chat.id, name=signature or "admin")
        name = user.full_name + (f" (@{user.username})" if user.username else "")
        return Staff(id=user.id, name=name)
