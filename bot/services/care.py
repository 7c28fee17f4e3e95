"""The care chat's memory: which admin-chat message or topic belongs to which customer, so a
staff reply finds its way back, and when to tell a customer their message arrived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from types import EllipsisType
from typing import Any

from bot.business import Business
from bot.clock import Clock
from bot.db.models import CareDirection, CareMessage, CareTopic, StaffAction
from bot.db.repositories import Database, Repos
from bot.outbox import RELAY

MAX_STORED_TEXT = 4096
RELAY_KEEPS = timedelta(days=7)  # a relay Telegram refused for a week is given up
INBOUND, REPLY = "care_in", "care_out"  # the outbox templates of the two directions
LINK_WAIT_SECONDS = (
    30.0  # how long a staff message that finds no customer waits for relays being linked
)


def _stored(text: str | None) -> str | None:
    """What the care history keeps of a message's text (an empty one is no text)."""
    return (text or None) and text[:MAX_STORED_TEXT]


@dataclass(frozen=True)
class Author:
    """Who wrote a customer message, as the staff card shows a stranger (no consent yet)."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name


@dataclass(frozen=True)
class Incoming:
    """A customer's message, stored before it is relayed to the staff chat."""

    author: Author
    message_id: int  # in the customer's private chat (copied from there)
    kind: str  # text, photo, voice, …
    text: str | None  # the text or caption, as written


@dataclass(frozen=True)
class StaffReply:
    """A staff member's answer, stored before it is sent to the customer."""

    recipient: int  # the customer's Telegram id
    staff_id: int
    staff_name: str
    chat_id: int  # the admin chat
    message_id: int  # the staff message (copied from there)
    thread_id: int | None
    kind: str
    text: str | None  # plain, for the history
    html: str | None  # the formatted text, when it is re-sent with a signature
    signature: str | None


@dataclass(frozen=True)
class Inbound:
    """A customer's message as it was relayed to the admin chat."""

    tg_user_id: int
    kind: str
    text: str | None
    admin_message_ids: tuple[int, ...]


class CareService:
    def __init__(self, db: Database, clock: Clock, business: Business) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self._posting: set[asyncio.Future[None]] = (
            set()
        )  # relays into the staff chat not yet linked

    @asynccontextmanager
    async def posting(self) -> AsyncIterator[None]:
        """Around a relay's posts into the staff chat and the links `relayed` and `save_topic`
        write for them, each committed after its post is out: staff who answer a post before its
        link is committed are not taken for staff talking among themselves (`recipient` waits)."""
        linked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._posting.add(linked)
        try:
            yield
        finally:
            self._posting.discard(linked)
            linked.set_result(None)

    async def record_inbound(self, inbound: Inbound) -> None:
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(inbound.tg_user_id)
            for admin_message_id in inbound.admin_message_ids or (None,):
                repos.care.add(
                    CareMessage(
                        tg_user_id=inbound.tg_user_id,
                        customer_id=customer.id if customer else None,
                        direction=CareDirection.IN,
                        admin_message_id=admin_message_id,
                        kind=inbound.kind,
                        text=_stored(inbound.text),
                        at=self.clock.now(),
                    )
                )

    async def take_incoming(
        self,
        incoming: Incoming,
        admin_chat_id: int,
        *,
        customer_id: int | None | EllipsisType = ...,
        business: dict[str, Any] | None = None,
        on_stored: Callable[[Repos, CareMessage], Awaitable[None]] | None = None,
    ) -> bool:
        """Store a customer's message and queue its relay to the staff chat, in one transaction:
        nothing they wrote is lost, whatever Telegram does next. Returns whether to tell them
        "we got it" (the first message after a quiet spell). `customer_id`: the author's customer
        record (None: they have none), when the caller just looked it up; else it is looked up.
        `business`: written to a connected Telegram Business account rather than to the bot
        (the account's owner's name, shown to staff; the file of a photo or voice, which cannot
        be copied from there); `on_stored` writes what goes with it, in the same transaction."""
        now = self.clock.now()
        author = incoming.author
        # Read before the write lock is taken: it is held only for the two inserts. (Two messages
        # of one chat are handled one after the other, so `last` cannot go stale in between.)
        if customer_id is ...:
            async with self.db.reading(snapshot=False) as repos:
                customer = await repos.customers.by_tg_user(author.id)
                customer_id = customer.id if customer else None
        async with self.db.reading(snapshot=False) as repos:
            last = await repos.care.last_inbound_at(author.id)
        async with self.db.transaction() as repos:
            message = CareMessage(
                tg_user_id=author.id,
                customer_id=customer_id,
                direction=CareDirection.IN,
                admin_message_id=None,
                kind=incoming.kind,
                text=_stored(incoming.text),
                at=now,
            )
            await repos.care.store(message)
            data: dict[str, Any] = {
                "care_id": message.id,
                "from_chat_id": author.id,
                "message_id": incoming.message_id,
                "kind": incoming.kind,
                "text": incoming.text,
                "author": asdict(author),
            }
            if business is not None:
                data.update(business)
            if on_stored is not None:
                await on_stored(repos, message)
            await repos.outbox.queue(
                key=f"{INBOUND}:{author.id}:{'b' if business is not None else ''}{incoming.message_id}",
                kind=RELAY,
                template=INBOUND,
                not_before=now,
                not_after=now + RELAY_KEEPS,
                customer_id=customer_id,
                chat_id=admin_chat_id,
                data=data,
                now=now,
            )
        quiet = timedelta(minutes=self.business.care.acknowledge_after_minutes)
        return last is None or now - last >= quiet

    async def relayed(self, care_ids: list[int], admin_message_id: int) -> None:
        """The staff chat shows these customer messages as `admin_message_id`: a reply to it
        finds its way back to the customer."""
        async with self.db.transaction() as repos:
            await repos.care.link(care_ids, admin_message_id, self.clock.now())

    async def take_reply(
        self, reply: StaffReply, *, template: str = REPLY, extra: dict[str, Any] | None = None
    ) -> None:
        """Store a staff reply and queue it for the customer, in one transaction. `template`
        and `extra`: sent another way (through a connected business account), with what that
        needs."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(reply.recipient)
            repos.care.add(
                CareMessage(
                    tg_user_id=reply.recipient,
                    customer_id=customer.id if customer else None,
                    direction=CareDirection.OUT,
                    admin_message_id=reply.message_id,
                    kind=reply.kind,
                    text=_stored(reply.text),
                    staff_id=reply.staff_id,
                    at=now,
                )
            )
            repos.audit.record(
                StaffAction(
                    at=now,
                    staff_id=reply.staff_id,
                    staff_name=reply.staff_name,
                    action="reply",
                    customer_id=customer.id if customer else None,
                    details={"kind": reply.kind},
                )
            )
            await repos.outbox.queue(
                key=f"{template}:{reply.recipient}:{reply.message_id}",
                kind=RELAY,
                template=template,
                not_before=now,
                not_after=now + RELAY_KEEPS,
                customer_id=customer.id if customer else None,
                chat_id=reply.recipient,
                data={**asdict(reply), **(extra or {})},
                now=now,
            )

    async def recipient(
        self, chat_id: int, reply_to: int | None, thread_id: int | None
    ) -> int | None:
        """Whose conversation a staff message belongs to: by its topic, else by what it replies to.
        None (staff talking among themselves) only once the relays on their way are linked: a
        reply quicker than the commit of its post's link would otherwise be dropped, unsent."""
        user = await self._recipient(chat_id, reply_to, thread_id)
        if user is None and (thread_id is not None or reply_to is not None) and self._posting:
            await asyncio.wait(set(self._posting), timeout=LINK_WAIT_SECONDS)
            user = await self._recipient(chat_id, reply_to, thread_id)
        return user

    async def _recipient(
        self, chat_id: int, reply_to: int | None, thread_id: int | None
    ) -> int | None:
        async with self.db.reading() as repos:
            if thread_id is not None:
                user = await repos.care.user_of_topic(chat_id, thread_id)
                if user is not None:
                    return user
            if reply_to is not None:
                return await repos.care.user_of_admin_message(reply_to)
            return None

    async def topic(self, tg_user_id: int, chat_id: int) -> int | None:
        async with self.db.reading() as repos:
            topic = await repos.care.topic(tg_user_id, chat_id)
            return topic.thread_id if topic else None

    async def save_topic(self, tg_user_id: int, chat_id: int, thread_id: int) -> None:
        async with self.db.transaction() as repos:
            await repos.care.save_topic(
                CareTopic(
                    tg_user_id=tg_user_id,
                    chat_id=chat_id,
                    thread_id=thread_id,
                    created_at=self.clock.now(),
                )
            )

    async def drop_topic(self, tg_user_id: int) -> None:
        async with self.db.transaction() as repos:
            await repos.care.drop_topic(tg_user_id)
