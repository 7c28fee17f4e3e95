"""Telegram Business at the edge: a connected account's updates in, messages out through it.

In: `business_connection` (the owner connected the bot, changed its rights, switched it off),
`business_message` (a customer wrote to the account, or its owner wrote from their phone),
`edited_business_message`, `deleted_business_messages`: each handed to the core
(bot/services/business_chats.py). The staff's `/accounts`, and `/invite`, `/slots`, `/coupons`
in a customer's topic (or as a reply to their message).

Out: `BusinessRelay`, how the outbox sender delivers what goes through an account (a staff
reply, the out-of-hours reply, what staff asked for): the account's rights are asked before each
send, and a refusal (ours or Telegram's) is no block by the customer, only a note to the staff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import (
    BusinessConnection,
    BusinessMessagesDeleted,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReactionTypeEmoji,
)

from bot.business import Business
from bot.db.repositories import Repos
from bot.outbox.errors import Refused
from bot.outbox.sender import Done, OutboxSender, Ready
from bot.rendering import Renderer
from bot.services.booking import BookingService
from bot.services.business_chats import (
    AUTO_REPLY,
    BIZ_REPLY,
    REQUESTS,
    THROUGH_ACCOUNT,
    Account,
    BusinessChats,
    ConnectionInfo,
)
from bot.services.care import Author, CareService, Incoming
from bot.services.customers import CustomerView
from bot.telegram_text import CAPTION_LIMIT, TEXT_LIMIT, split_html, truncate_html, visible_len
from handlers.admin_chat import AdminChat
from handlers.booking import book_command
from handlers.care import _BY_FILE, _kind, addressed_to, file_of
from handlers.filters import admin_chat_router
from handlers.outbox_client import deliverer
from handlers.staff import staff_only

log = logging.getLogger("carebot.business")

INVITE_SOURCE = "src_business"  # the invitation's deep link: onboarding counts them as "business"
BOOK_PAYLOAD = "book"  # t.me/<bot>?start=book opens /book
MAX_SLOT_SERVICES = 6
MAX_SLOT_DAYS = 4


def connection_info(connection: BusinessConnection) -> ConnectionInfo:
    """Telegram's connection in the core's words: the rights as BusinessBotRights names them
    (before Bot API 9.0 only `can_reply` was sent)."""
    rights: dict[str, bool] = (
        {k: bool(v) for k, v in connection.rights.model_dump(exclude_none=True).items()}
        if connection.rights is not None
        else {"can_reply": bool(connection.can_reply)}
    )
    return ConnectionInfo(
        id=connection.id,
        owner_user_id=connection.user.id,
        owner_name=connection.user.full_name,
        rights=rights,
        enabled=connection.is_enabled,
    )


# ---- updates from the accounts -------------------------------------------------------------------


async def connection_changed(
    connection: BusinessConnection, business_chats: BusinessChats, sender: OutboxSender
) -> None:
    await business_chats.connection_changed(connection_info(connection))
    sender.wake()


async def _account(bot: Bot, business_chats: BusinessChats, connection_id: str) -> Account | None:
    """The connection, as stored; one the bot never heard of (it was down when the owner
    connected it) is asked of Telegram and stored."""
    account = await business_chats.account(connection_id)
    if account is not None:
        return account
    try:
        connection = await bot.get_business_connection(connection_id)
    except TelegramBadRequest as error:
        log.warning("unknown business connection id=%s error=%s", connection_id, error.message)
        return None
    return await business_chats.connection_changed(connection_info(connection))


async def from_account_chat(
    message: Message,
    bot: Bot,
    business_chats: BusinessChats,
    admin_chat: AdminChat,
    sender: OutboxSender,
) -> None:
    user, connection_id = message.from_user, message.business_connection_id
    if user is None or connection_id is None or message.sender_business_bot is not None:
        return  # sent by a bot for the account (ours included): recorded when it was queued
    account = await _account(bot, business_chats, connection_id)
    if account is None:
        return
    text = message.text or message.caption
    if user.id == account.owner_user_id:  # the owner, from their own phone
        await business_chats.from_owner(
            connection_id, message.chat.id, message.message_id, _kind(message), text
        )
        return
    if user.is_bot:
        return
    if admin_chat.chat_id is None:
        log.warning("a customer wrote to a business account, but ADMIN_CHAT_ID is not set")
        return
    contact = message.contact
    phone = contact.phone_number if contact and contact.user_id == user.id else None
    await business_chats.from_customer(
        connection_id,
        Incoming(
            Author(user.id, user.first_name, user.last_name, user.username),
            message.message_id,
            _kind(message),
            text,
        ),
        phone=phone,
        media=file_of(message),
    )
    sender.wake()


async def edited_in_account_chat(
    message: Message, business_chats: BusinessChats, sender: OutboxSender
) -> None:
    if message.business_connection_id is None:
        return
    await business_chats.edited(
        message.business_connection_id,
        message.chat.id,
        message.message_id,
        message.text or message.caption,
    )
    sender.wake()


async def deleted_in_account_chat(
    deleted: BusinessMessagesDeleted, business_chats: BusinessChats, sender: OutboxSender
) -> None:
    await business_chats.deleted(
        deleted.business_connection_id, deleted.chat.id, list(deleted.message_ids)
    )
    sender.wake()


# ---- the staff ----------------------------------------------------------------------------------


async def accounts(
    message: Message, business_chats: BusinessChats, render: Renderer, staff_lang: str
) -> None:
    text = render.text(staff_lang, "accounts", accounts=await business_chats.accounts())
    await message.reply(truncate_html(str(text), TEXT_LIMIT))


async def send_through_account(
    message: Message,
    command: CommandObject,
    admin_chat: AdminChat,
    care: CareService,
    business_chats: BusinessChats,
    sender: OutboxSender,
    render: Renderer,
    staff_lang: str,
) -> None:
    """/invite, /slots, /coupons in a customer's topic or as a reply to their message."""
    assert admin_chat.chat_id is not None and message.from_user is not None
    recipient, thread_id = await addressed_to(message, admin_chat, care)
    if recipient is None:
        await message.reply(render.text(staff_lang, "business_usage"))
        return
    staff = admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature)
    refusal = await business_chats.request(
        command.command.lower(),
        recipient,
        staff_id=staff.id,
        staff_name=staff.name,
        chat_id=admin_chat.chat_id,
        message_id=message.message_id,
        thread_id=thread_id,
    )
    if refusal is not None:
        await message.reply(render.text(staff_lang, "business_refused", reason=refusal))
        return
    sender.wake()


async def book_from_link(
    message: Message,
    customer: CustomerView | None,
    booking: BookingService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    """t.me/<bot>?start=book (the free times' button sent through an account): /book."""
    await book_command(message, customer, booking, render, lang, business)


def create_router() -> Router:
    router = Router(name="business-chats")
    router.business_connection.register(connection_changed)
    router.business_message.register(from_account_chat)
    router.edited_business_message.register(edited_in_account_chat)
    router.deleted_business_messages.register(deleted_in_account_chat)
    router.message.register(book_from_link, CommandStart(deep_link=True, magic=F.args == "book"))
    admin = admin_chat_router("business-chats-admin-chat")
    admin.message.register(accounts, Command("accounts"))
    admin.message.register(send_through_account, Command(*REQUESTS))
    elsewhere = Router(name="business-chats-elsewhere")
    elsewhere.message.register(staff_only, Command("accounts", *REQUESTS))
    router.include_routers(admin, elsewhere)
    return router


# ---- how the sender delivers through an account ---------------------------------------------


@contextmanager
def _as_account() -> Iterator[None]:
    """Telegram refusing a send through an account (rights changed a moment ago, 24 hours
    passed) is no block by the customer: the staff are told (the failure hook), nothing more."""
    try:
        yield
    except (TelegramBadRequest, TelegramForbiddenError) as error:
        raise Refused(f"business:refused {error.message}", 400) from error


class BusinessRelay:
    def __init__(
        self,
        bot: Bot,
        service: BusinessChats,
        booking: BookingService,
        render: Renderer,
        business: Business,
    ) -> None:
        self.bot = bot
        self.service = service
        self.booking = booking
        self.render = render
        self.business = business

    def register(self, sender: OutboxSender) -> None:
        sender.deliverers[BIZ_REPLY] = deliverer(self.deliver_reply)
        for template in (AUTO_REPLY, *REQUESTS.values()):
            sender.deliverers[template] = deliverer(self.deliver_message)
        sender.laned.add(BIZ_REPLY)  # keys `biz_out:<customer>:<staff message>`, in order
        for template in THROUGH_ACCOUNT:
            sender.on_failure[template] = self.failed

    async def _allowed(self, data: dict[str, Any], chat_id: int) -> str:
        """The connection to send through, if it lets the bot write to this customer now."""
        connection_id = str(data["business_connection_id"])
        refusal = await self.service.sendable(connection_id, chat_id)
        if refusal is not None:
            raise Refused(f"business:{refusal}")
        return connection_id

    async def deliver_reply(self, item: Ready, done: Done) -> None:
        for row_id, data in item.parts or ((item.id, item.data),):
            recipient = int(data["recipient"])
            connection_id = await self._allowed(data, recipient)
            with _as_account():
                sent = await self._reply(data, recipient, connection_id)
            await done([row_id], sent)
            await self._thumbs_up(int(data["chat_id"]), int(data["message_id"]))

    async def _reply(self, data: dict[str, Any], recipient: int, connection_id: str) -> int:
        html, signature = data.get("html") or "", data.get("signature") or ""
        media = data.get("media")
        if media and media["kind"] == "location":
            sent = await self.bot.send_location(
                recipient,
                media["latitude"],
                media["longitude"],
                business_connection_id=connection_id,
            )
            return sent.message_id
        if media:
            method, captioned = _BY_FILE[media["kind"]]
            caption = html + signature
            if visible_len(caption) > CAPTION_LIMIT:  # the signature does not fit: the words do
                caption = truncate_html(html, CAPTION_LIMIT)
            extra = {"caption": caption} if captioned and caption else {}
            sent = await getattr(self.bot, method)(
                recipient, media["file_id"], business_connection_id=connection_id, **extra
            )
            return int(sent.message_id)
        if not html:
            raise Refused("business:unsupported")  # a poll, a contact: not sent as the account
        texts = split_html(html + signature, TEXT_LIMIT)
        for text in texts[:-1]:
            await self.bot.send_message(recipient, text, business_connection_id=connection_id)
        last = await self.bot.send_message(
            recipient, texts[-1], business_connection_id=connection_id
        )
        return last.message_id

    async def deliver_message(self, item: Ready, done: Done) -> None:
        data = item.data
        connection_id = await self._allowed(data, item.chat_id)
        customer_id = data.get("customer_id")
        lang = await self.service.language(customer_id)
        text, markup = await self._content(item.template, lang, customer_id, data)
        with _as_account():
            sent = await self.bot.send_message(
                item.chat_id, text, business_connection_id=connection_id, reply_markup=markup
            )
        await done([item.id], sent.message_id)
        if data.get("admin_chat_id") and data.get("reply_to"):
            await self._thumbs_up(int(data["admin_chat_id"]), int(data["reply_to"]))

    async def _content(
        self, template: str, lang: str, customer_id: int | None, data: dict[str, Any]
    ) -> tuple[str, InlineKeyboardMarkup | None]:
        business = self.business
        if template == AUTO_REPLY:
            opens = datetime.fromisoformat(data["opens_at"])
            return str(self.render.text(lang, AUTO_REPLY, opens=opens, business=business)), None
        if template == REQUESTS["coupons"]:
            coupons = await self.service.coupons(customer_id)
            return str(
                self.render.text(lang, "my_coupons", coupons=coupons, business=business)
            ), None
        username = (await self.bot.me()).username
        if template == REQUESTS["invite"]:
            link, label = f"https://t.me/{username}?start={INVITE_SOURCE}", "business_open_bot"
            text = self.render.text(lang, template, business=business)
        else:
            link, label = f"https://t.me/{username}?start={BOOK_PAYLOAD}", "business_book"
            text = self.render.text(lang, template, days=await self._free_days(), business=business)
        button = InlineKeyboardButton(text=self.render.label(lang, label), url=link)
        return str(text), InlineKeyboardMarkup(inline_keyboard=[[button]])

    async def _free_days(self) -> list[dict[str, Any]]:
        days = []
        for service in self.business.services[:MAX_SLOT_SERVICES]:
            free = await self.booking.days_with_slots(service.id, None)
            if free:
                days.append({"service": service.name, "days": free[:MAX_SLOT_DAYS]})
        return days

    async def _thumbs_up(self, chat_id: int, message_id: int) -> None:
        try:
            await self.bot.set_message_reaction(
                chat_id, message_id, [ReactionTypeEmoji(emoji="👍")]
            )
        except TelegramBadRequest:
            pass  # reactions may be off in the group; it was sent all the same

    async def failed(self, repos: Repos, item: Ready, row_ids: list[int], reason: str) -> None:
        for row_id, data in item.parts or ((item.id, item.data),):
            if row_id in row_ids:
                await self.service.failed(repos, data, f"{item.template}:{row_id}", reason)
