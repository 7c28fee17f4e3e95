"""The care chat: what a customer writes reaches the admin chat; a staff reply goes back.

In a group with topics each customer gets a topic of their own (their whole history in one
thread); otherwise each message arrives with a short card, and staff answer by replying to it.
"""
from __future__ import annotations

import html
import logging
import re

from aiogram import Bot, F, Router
from aiogram.enums import ChatType, ContentType, ParseMode
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import StateFilter
from aiogram.types import Message, ReactionTypeEmoji

from bot.admin_chat import AdminChat
from bot.business import Business
from bot.rendering import Renderer
from bot.services.care import CareService, Inbound
from bot.services.customers import CustomerView
from bot.services.staff import StaffService
from handlers.filters import InAdminChat, StaffAuthor

log = logging.getLogger("carebot.care")

CAPTIONED = {ContentType.PHOTO, ContentType.VIDEO, ContentType.DOCUMENT, ContentType.AUDIO,
             ContentType.ANIMATION, ContentType.VOICE}
TEXT_LIMIT, CAPTION_LIMIT = 4096, 1024
# A word joiner after "@", "/" and "#" at a word's start: Telegram then sees no mention, command
# or hashtag in what a customer wrote, so their text cannot ping or command anyone in the group.
_ACTIVE = re.compile(r"(^|(?<=\s))([@/#])")


def inert(text: str) -> str:
    """Customer text made safe for the admin chat: HTML-escaped and without live entities."""
    return _ACTIVE.sub("\\1\\2\u2060", html.escape(text, quote=False))


async def _topic(bot: Bot, admin_chat: AdminChat, care: CareService, header: str, topic_name: str,
                 tg_user_id: int) -> int | None:
    """The customer's topic, opened with their card on first contact; None without topics."""
    assert admin_chat.chat_id is not None
    if not await admin_chat.is_forum():
        return None
    thread_id = await care.topic(tg_user_id, admin_chat.chat_id)
    if thread_id is not None:
        return thread_id
    try:
        topic = await bot.create_forum_topic(admin_chat.chat_id, topic_name[:128])
    except (TelegramBadRequest, TelegramForbiddenError) as error:
        log.warning("cannot open a topic, falling back to plain messages error=%s", error)
        return None
    await care.save_topic(tg_user_id, admin_chat.chat_id, topic.message_thread_id)
    await bot.send_message(admin_chat.chat_id, header, message_thread_id=topic.message_thread_id)
    return topic.message_thread_id


async def _relay(bot: Bot, message: Message, chat_id: int, thread_id: int | None, header: str | None) -> list[int]:
    """Put one customer message into the admin chat; returns the admin-chat message ids."""
    prefix = f"{header}\n\n" if header else ""
    if message.text is not None and len(prefix) + len(message.text) <= TEXT_LIMIT:
        sent = await bot.send_message(chat_id, prefix + inert(message.text), message_thread_id=thread_id)
        return [sent.message_id]
    caption = prefix + inert(message.caption) if message.caption else (header or None)
    if message.content_type in CAPTIONED and (caption is None or len(caption) <= CAPTION_LIMIT):
        copied = await bot.copy_message(chat_id, message.chat.id, message.message_id, message_thread_id=thread_id,
                                        caption=caption, parse_mode=ParseMode.HTML)
        return [copied.message_id]
    ids = []
    if header:
        ids.append((await bot.send_message(chat_id, header, message_thread_id=thread_id)).message_id)
    if message.text is not None:  # too long to go with the card: send it after it, still inert
        ids.append((await bot.send_message(chat_id, inert(message.text)[:TEXT_LIMIT],
                                           message_thread_id=thread_id)).message_id)
    else:
        caption = inert(message.caption)[:CAPTION_LIMIT] if message.caption else None
        copied = await bot.copy_message(chat_id, message.chat.id, message.message_id, message_thread_id=thread_id,
                                        caption=caption, parse_mode=ParseMode.HTML if caption else None)
        ids.append(copied.message_id)
    return ids


async def from_customer(message: Message, bot: Bot, admin_chat: AdminChat, care: CareService,
                        staff_service: StaffService, customer: CustomerView | None, render: Renderer, lang: str,
                        staff_lang: str, business: Business) -> None:
    assert message.from_user is not None
    user = message.from_user
    if admin_chat.chat_id is None:
        log.warning("a customer wrote, but ADMIN_CHAT_ID is not set user_id=%s", user.id)
        await message.answer(render.text(lang, "care_unavailable", business=business))
        return
    acknowledge = await care.should_acknowledge(user.id)
    card = await staff_service.card(customer.id) if customer else None
    header = render.text(staff_lang, "care_card", card=card, user=user, business=business)
    topic_name = render.label(staff_lang, "care_topic", card=card, user=user)
    thread_id = await _topic(bot, admin_chat, care, header, topic_name, user.id)
    try:
        ids = await _relay(bot, message, admin_chat.chat_id, thread_id, None if thread_id else header)
    except TelegramBadRequest as error:
        if thread_id is None:
            raise
        # The topic was deleted or closed by staff: open a new one and try once more.
        log.warning("customer topic is gone, opening a new one error=%s", error)
        await care.drop_topic(user.id)
        admin_chat.topics_changed()
        thread_id = await _topic(bot, admin_chat, care, header, topic_name, user.id)
        ids = await _relay(bot, message, admin_chat.chat_id, thread_id, None if thread_id else header)
    await care.record_inbound(Inbound(user.id, str(message.content_type), message.text or message.caption, tuple(ids)))
    if acknowledge:
        await message.answer(render.text(lang, "care_received", registered=bool(customer and customer.onboarded)))


async def from_staff(message: Message, bot: Bot, admin_chat: AdminChat, care: CareService,
                     staff_service: StaffService, render: Renderer, staff_lang: str, business: Business) -> None:
    """A staff message in a customer's topic, or a reply to a customer's message: deliver it."""
    assert admin_chat.chat_id is not None and message.from_user is not None
    reply_to = message.reply_to_message.message_id if message.reply_to_message else None
    thread_id = message.message_thread_id if message.is_topic_message else None
    recipient = await care.recipient(admin_chat.chat_id, reply_to, thread_id)
    if recipient is None:
        return  # staff talking among themselves
    staff = admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature)
    signer = message.author_signature if message.sender_chat else message.from_user.first_name
    signature = f"\n\n— {html.escape(signer or '')}" if business.care.sign_replies and signer else ""
    try:
        if signature and message.text is not None:
            await bot.send_message(recipient, message.html_text + signature)
        elif signature and message.content_type in CAPTIONED:
            await bot.copy_message(recipient, message.chat.id, message.message_id,
                                   caption=(message.html_text if message.caption else "") + signature,
                                   parse_mode=ParseMode.HTML)
        else:
            await bot.copy_message(recipient, message.chat.id, message.message_id)
    except TelegramForbiddenError:
        await care.mark_blocked(recipient)
        await message.reply(render.text(staff_lang, "care_blocked"))
        return
    except TelegramBadRequest as error:
        log.warning("staff reply not delivered user_id=%s error=%s", recipient, error.message)
        await message.reply(render.text(staff_lang, "care_failed", reason=error.message))
        return
    customer_id = await care.record_outbound(recipient, staff.id, message.message_id, str(message.content_type),
                                             message.text or message.caption)
    await staff_service.record_reply(staff, customer_id, str(message.content_type))
    try:
        await bot.set_message_reaction(admin_chat.chat_id, message.message_id, [ReactionTypeEmoji(emoji="👍")])
    except TelegramBadRequest:
        pass  # reactions may be off in the group; the reply was delivered all the same


def create_router() -> Router:
    router = Router(name="care")
    router.message.register(
        from_customer, F.chat.type == ChatType.PRIVATE, StateFilter(None),
        ~F.text.startswith("/"), ~F.via_bot,
    )
    staff_side = Router(name="care-staff")
    staff_side.message.filter(InAdminChat(), StaffAuthor(), ~F.text.startswith("/"))
    staff_side.message.register(from_staff, F.reply_to_message | F.is_topic_message)
    router.include_router(staff_side)
    return router
