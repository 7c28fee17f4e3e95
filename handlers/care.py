"""The care chat: what a customer writes reaches the admin chat; a staff reply goes back.

In a group with topics each customer gets a topic of their own (their whole history in one
thread); otherwise each message arrives with a short card, and staff answer by replying to it.

Both directions are stored first and sent by the outbox sender (`CareRelay` below is how it
sends them): the handlers only take the message, so nothing a customer or staff member wrote is
lost to Telegram's limits or faults, and a customer's flood reaches the staff chat coalesced.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ChatType, ContentType, ParseMode
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import StateFilter
from aiogram.types import Message, ReactionTypeEmoji

from bot.business import Business
from bot.db.repositories import Repos
from bot.outbox import SERVICE
from bot.outbox.sender import Done, OutboxSender, Ready
from bot.rendering import Renderer
from bot.services.business_chats import BusinessChats
from bot.services.care import INBOUND, REPLY, Author, CareService, Incoming, StaffReply
from bot.services.customers import CustomerView
from bot.services.staff import StaffService
from bot.telegram_text import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    card_messages,
    fit_card,
    split_html,
    truncate_html,
    visible_len,
)
from handlers.admin_chat import AdminChat
from handlers.filters import InAdminChat, StaffAuthor
from handlers.outbox_client import deliverer

log = logging.getLogger("carebot.care")

CAPTIONED = {
    ContentType.PHOTO,
    ContentType.VIDEO,
    ContentType.DOCUMENT,
    ContentType.AUDIO,
    ContentType.ANIMATION,
    ContentType.VOICE,
}
# A word joiner after "@", "/" and "#" at a word's start: Telegram then sees no mention, command
# or hashtag in what a customer wrote, so their text cannot ping or command anyone in the group.
_ACTIVE = re.compile(r"(^|(?<=\s))([@/#])")
TOPIC_NAME_LIMIT = 128
NOTICE_KEEPS = timedelta(days=7)


# A file's kind → the Bot API method that sends it by file id, and whether it takes a caption.
_BY_FILE = {
    "photo": ("send_photo", True),
    "video": ("send_video", True),
    "document": ("send_document", True),
    "audio": ("send_audio", True),
    "animation": ("send_animation", True),
    "voice": ("send_voice", True),
    "sticker": ("send_sticker", False),
    "video_note": ("send_video_note", False),
}


def file_of(message: Message) -> dict[str, Any] | None:
    """The file a message carries, by its id (a photo: its largest size), or a location; None
    for anything else (text, a poll, a contact)."""
    if message.photo:
        return {"kind": "photo", "file_id": message.photo[-1].file_id}
    for kind in _BY_FILE:
        item = getattr(message, kind, None)
        if item is not None and hasattr(item, "file_id"):
            return {"kind": kind, "file_id": item.file_id}
    if message.location is not None:
        where = message.location
        return {"kind": "location", "latitude": where.latitude, "longitude": where.longitude}
    return None


def inert(text: str) -> str:
    """Customer text made safe for the admin chat: HTML-escaped and without live entities."""
    return _ACTIVE.sub("\\1\\2\u2060", html.escape(text, quote=False))


def _kind(message: Message) -> str:
    """ "text", "photo", …: what the message carries, as plain text for the database."""
    return str(getattr(message.content_type, "value", message.content_type))


# ---- the customer's side: take the message, the sender relays it ------------------------------


async def from_customer(
    message: Message,
    admin_chat: AdminChat,
    care: CareService,
    sender: OutboxSender,
    customer: CustomerView | None,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    user = message.from_user
    if user is None:
        return
    if admin_chat.chat_id is None:
        log.warning("a customer wrote, but ADMIN_CHAT_ID is not set user_id=%s", user.id)
        await message.answer(render.text(lang, "care_unavailable", business=business))
        return
    author = Author(user.id, user.first_name, user.last_name, user.username)
    acknowledge = await care.take_incoming(
        Incoming(author, message.message_id, _kind(message), message.text or message.caption),
        admin_chat.chat_id,
        customer_id=customer.id if customer else None,
    )  # as the middleware just found
    sender.wake()
    if acknowledge:
        await message.answer(
            render.text(lang, "care_received", registered=bool(customer and customer.onboarded))
        )


async def addressed_to(
    message: Message, admin_chat: AdminChat, care: CareService
) -> tuple[int | None, int | None]:
    """The customer a staff message in the admin chat is for (by its topic, else by the message it
    replies to; None: staff talking among themselves), and the topic's thread."""
    assert admin_chat.chat_id is not None
    reply_to = message.reply_to_message.message_id if message.reply_to_message else None
    thread_id = message.message_thread_id if message.is_topic_message else None
    return await care.recipient(admin_chat.chat_id, reply_to, thread_id), thread_id


async def from_staff(
    message: Message,
    admin_chat: AdminChat,
    care: CareService,
    sender: OutboxSender,
    business: Business,
    business_chats: BusinessChats | None = None,
) -> None:
    """A staff message in a customer's topic, or a reply to a customer's message: send it on."""
    assert admin_chat.chat_id is not None and message.from_user is not None
    recipient, thread_id = await addressed_to(message, admin_chat, care)
    if recipient is None:
        return  # staff talking among themselves
    staff = admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature)
    signer = message.author_signature if message.sender_chat else message.from_user.first_name
    signature = (
        f"\n\n— {html.escape(signer or '')}" if business.care.sign_replies and signer else None
    )
    formatted = message.html_text if (message.text is not None or message.caption) else None
    reply = StaffReply(
        recipient=recipient,
        staff_id=staff.id,
        staff_name=staff.name,
        chat_id=admin_chat.chat_id,
        message_id=message.message_id,
        thread_id=thread_id,
        kind=_kind(message),
        text=message.text or message.caption,
        html=formatted if signature else None,
        signature=signature,
    )
    # A customer who wrote to a connected business account is answered through it.
    route = await business_chats.route(recipient) if business_chats is not None else None
    if route is not None and business_chats is not None:
        await business_chats.take_reply(reply, route, html=formatted, media=file_of(message))
    else:
        await care.take_reply(reply)
    sender.wake()


# ---- how the sender delivers them ----------------------------------------------------------------


@dataclass
class Post:
    """One message in the staff chat: a text, or a copy of what the customer sent."""

    text: str | None = None
    copy_of: int | None = None  # the customer's message id, copied from their chat
    caption: str | None = None
    rows: list[int] = field(default_factory=list)  # outbox rows done once this is out
    care_ids: list[int] = field(default_factory=list)  # stored messages this post shows
    # Written to a connected business account: nothing to copy from there (the bot is no member
    # of that chat); its file is sent again (`media`), or a note says what it was.
    business: bool = False
    media: dict[str, Any] | None = None


def plan_posts(parts: Sequence[tuple[int, dict[str, Any]]], header: str | None) -> list[Post]:
    """A lane's waiting messages as few staff-chat posts as Telegram's limits allow: texts run
    together (each on its own paragraph, whole, split only past 4,096 units), media copied with
    their caption; the card (`header`, None in a customer's topic) on the first post, shortened
    before any of the customer's words would be."""
    posts: list[Post] = []
    texts: list[str] = []
    rows: list[int] = []
    care_ids: list[int] = []

    def flush() -> None:
        nonlocal header
        if not texts:
            return
        body = "\n\n".join(texts)
        bodies = card_messages(header, body, TEXT_LIMIT) if header else split_html(body, TEXT_LIMIT)
        header = None
        for n, text in enumerate(bodies):
            posts.append(
                Post(
                    text=text,
                    rows=list(rows) if n == len(bodies) - 1 else [],
                    care_ids=list(care_ids),
                )
            )
        texts.clear()
        rows.clear()
        care_ids.clear()

    for row_id, data in parts:
        words = data.get("text")
        if data.get("kind") == ContentType.TEXT and words:
            texts.append(inert(words))
            rows.append(row_id)
            care_ids.append(data["care_id"])
            continue
        flush()
        caption = inert(words) if words else None
        if data.get("kind") in CAPTIONED:
            if header:
                caption = (
                    fit_card(header, caption, CAPTION_LIMIT)
                    if caption
                    else truncate_html(header, CAPTION_LIMIT)
                )
                header = None
            posts.append(
                Post(
                    copy_of=data["message_id"],
                    caption=caption,
                    rows=[row_id],
                    care_ids=[data["care_id"]],
                    business="account" in data,
                    media=data.get("media"),
                )
            )
            continue
        if header:  # a sticker, a location: no caption, the card goes first
            posts.append(Post(text=truncate_html(header, TEXT_LIMIT), care_ids=[data["care_id"]]))
            header = None
        posts.append(
            Post(
                copy_of=data["message_id"],
                rows=[row_id],
                care_ids=[data["care_id"]],
                business="account" in data,
                media=data.get("media"),
            )
        )
    flush()
    return posts


class CareRelay:
    """Delivers the care chat's outbox rows: a customer's messages into the staff chat (their
    topic, or with their card), a staff reply back to the customer."""

    def __init__(
        self,
        bot: Bot,
        admin_chat: AdminChat,
        care: CareService,
        staff: StaffService,
        render: Renderer,
        business: Business,
    ) -> None:
        self.bot = bot
        self.admin_chat = admin_chat
        self.care = care
        self.staff = staff
        self.render = render
        self.business = business
        self.lang = business.staff_language

    def register(self, sender: OutboxSender) -> None:
        # aiogram's errors leave the relays as the core's (a 403 blocks, a 429 waits, a 5xx retries)
        sender.deliverers.update(
            {INBOUND: deliverer(self.deliver_incoming), REPLY: deliverer(self.deliver_reply)}
        )
        sender.laned.update(
            {INBOUND, REPLY}
        )  # keys `care_in:<customer>:…`, `care_out:<customer>:…`
        sender.on_failure[REPLY] = self.reply_failed

    # -- customer → staff

    async def deliver_incoming(self, item: Ready, done: Done) -> None:
        # Staff may answer a post before its link is committed: their reply waits for it (CareService.recipient).
        async with self.care.posting():
            await self._deliver_incoming(item, done)

    async def _deliver_incoming(self, item: Ready, done: Done) -> None:
        parts = item.parts or ((item.id, item.data),)
        first = parts[0][1]
        author = Author(**first["author"])
        card = await self.staff.card(item.customer_id) if item.customer_id else None
        account = first.get("account")  # written to a connected business account: its owner
        header = str(
            self.render.text(
                self.lang,
                "care_card",
                card=card,
                user=author,
                business=self.business,
                account=account,
            )
        )
        topic_name = self.render.label(self.lang, "care_topic", card=card, user=author)
        thread_id = await self._topic(header, topic_name, author.id)
        if thread_id and account is not None:  # in their topic: which account, on each post
            header = str(self.render.text(self.lang, "business_via", account=account))
        posts = plan_posts(parts, None if thread_id and account is None else header)
        for post in posts:
            try:
                message_id = await self._post(item.chat_id, author.id, post, thread_id)
            except TelegramBadRequest as error:
                if thread_id is None or "thread" not in error.message.lower():
                    raise
                # The topic was deleted or closed by staff: open a new one and go on there.
                log.warning("customer topic is gone, opening a new one error=%s", error.message)
                await self.care.drop_topic(author.id)
                self.admin_chat.topics_changed()
                thread_id = await self._topic(header, topic_name, author.id)
                message_id = await self._post(item.chat_id, author.id, post, thread_id)
            await self.care.relayed(post.care_ids, message_id)
            if post.rows:
                await done(post.rows, message_id)

    async def _post(
        self, chat_id: int, from_chat_id: int, post: Post, thread_id: int | None
    ) -> int:
        if post.text is not None:
            return (
                await self.bot.send_message(chat_id, post.text, message_thread_id=thread_id)
            ).message_id
        assert post.copy_of is not None
        if post.business:
            return await self._post_business(chat_id, post, thread_id)
        try:
            copied = await self.bot.copy_message(
                chat_id,
                from_chat_id,
                post.copy_of,
                message_thread_id=thread_id,
                caption=post.caption,
                parse_mode=ParseMode.HTML if post.caption else None,
            )
        except TelegramBadRequest as error:
            if "thread" in error.message.lower():
                raise
            # Something Telegram will not copy (a poll, a message the customer deleted meanwhile):
            # the staff still learn that they wrote, and what it said.
            log.warning("customer message not copied, posting a note error=%s", error.message)
            note = self.render.text(self.lang, "care_not_copied", caption=post.caption)
            return (
                await self.bot.send_message(
                    chat_id, truncate_html(str(note), TEXT_LIMIT), message_thread_id=thread_id
                )
            ).message_id
        return copied.message_id

    async def _post_business(self, chat_id: int, post: Post, thread_id: int | None) -> int:
        """A photo, voice, … written to a business account: its file sent again by its id
        (nothing can be copied from that chat); what has no file, a note of what it was."""
        media = post.media or {}
        if media.get("kind") == "location":
            return (
                await self.bot.send_location(
                    chat_id, media["latitude"], media["longitude"], message_thread_id=thread_id
                )
            ).message_id
        send = _BY_FILE.get(str(media.get("kind")))
        if send is not None:
            method, captioned = send
            caption = (
                {"caption": post.caption, "parse_mode": ParseMode.HTML}
                if captioned and post.caption
                else {}
            )
            sent = await getattr(self.bot, method)(
                chat_id, media["file_id"], message_thread_id=thread_id, **caption
            )
            return int(sent.message_id)
        note = self.render.text(self.lang, "care_not_copied", caption=post.caption)
        return (
            await self.bot.send_message(
                chat_id, truncate_html(str(note), TEXT_LIMIT), message_thread_id=thread_id
            )
        ).message_id

    async def _topic(self, header: str, topic_name: str, tg_user_id: int) -> int | None:
        """The customer's topic, opened with their card on first contact; None without topics."""
        chat_id = self.admin_chat.chat_id
        if chat_id is None or not await self.admin_chat.is_forum():
            return None
        thread_id = await self.care.topic(tg_user_id, chat_id)
        if thread_id is not None:
            return thread_id
        try:
            topic = await self.bot.create_forum_topic(chat_id, topic_name[:TOPIC_NAME_LIMIT])
        except (TelegramBadRequest, TelegramForbiddenError) as error:
            log.warning("cannot open a topic, falling back to plain messages error=%s", error)
            return None
        await self.care.save_topic(tg_user_id, chat_id, topic.message_thread_id)
        await self.bot.send_message(
            chat_id, truncate_html(header, TEXT_LIMIT), message_thread_id=topic.message_thread_id
        )
        return topic.message_thread_id

    # -- staff → customer

    async def deliver_reply(self, item: Ready, done: Done) -> None:
        for row_id, data in item.parts or ((item.id, item.data),):
            reply = StaffReply(**data)
            if reply.signature and reply.html is not None and reply.kind == ContentType.TEXT:
                texts = split_html(reply.html + reply.signature, TEXT_LIMIT)
                for text in texts[:-1]:
                    await self.bot.send_message(reply.recipient, text)
                sent = (await self.bot.send_message(reply.recipient, texts[-1])).message_id
            elif reply.signature and reply.kind in CAPTIONED:
                caption = (reply.html or "") + reply.signature
                if visible_len(caption) > CAPTION_LIMIT:  # the signature does not fit: the words do
                    caption = reply.html or ""
                sent = (
                    await self.bot.copy_message(
                        reply.recipient,
                        reply.chat_id,
                        reply.message_id,
                        caption=caption,
                        parse_mode=ParseMode.HTML,
                    )
                ).message_id
            else:
                sent = (
                    await self.bot.copy_message(reply.recipient, reply.chat_id, reply.message_id)
                ).message_id
            await done([row_id], sent)
            try:
                await self.bot.set_message_reaction(
                    reply.chat_id, reply.message_id, [ReactionTypeEmoji(emoji="👍")]
                )
            except TelegramBadRequest:
                pass  # reactions may be off in the group; the reply was delivered all the same

    async def reply_failed(
        self, repos: Repos, item: Ready, row_ids: list[int], reason: str
    ) -> None:
        """A staff reply that will never reach the customer: the staff are told why, under it."""
        now = self.care.clock.now()
        for row_id, data in item.parts or ((item.id, item.data),):
            if row_id not in row_ids:
                continue
            reply = StaffReply(**data)
            template = {"blocked": "care_blocked", "erased": "care_erased"}.get(
                reason, "care_failed"
            )
            await repos.outbox.queue(
                key=f"care_failed:{reply.chat_id}:{reply.message_id}",
                kind=SERVICE,
                template=template,
                not_before=now,
                not_after=now + NOTICE_KEEPS,
                chat_id=reply.chat_id,
                data={"reason": reason, "reply_to": reply.message_id, "thread_id": reply.thread_id},
                now=now,
            )


def create_router() -> Router:
    router = Router(name="care")
    router.message.register(
        from_customer,
        F.chat.type == ChatType.PRIVATE,
        StateFilter(None),
        ~F.text.startswith("/"),
        ~F.via_bot,
    )
    staff_side = Router(name="care-staff")
    staff_side.message.filter(InAdminChat(), StaffAuthor(), ~F.text.startswith("/"))
    staff_side.message.register(from_staff, F.reply_to_message | F.is_topic_message)
    router.include_router(staff_side)
    return router
