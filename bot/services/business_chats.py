"""Telegram Business: customers write to the salon's own Telegram account, and carebot works there.

The owner (or a master) connects the bot in Telegram: Settings → Telegram Business → Chatbots.
Every change of that connection (connected, rights given or taken, switched off) is a
`business_connection` update: stored at once (`business_connections`), and the admin chat told.

- What a customer writes to the account reaches the staff chat as the care chat's messages do
  (`CareService.take_incoming`: the same card, the same topic per customer), marked with the
  account's owner's name. The customer is matched to their card by their Telegram id, else by
  the phone of a contact they share (their own), remembered for the chat (`business_chats`).
- A staff reply to them goes back through the account (`business_connection_id`), so the
  customer sees the salon, not a bot, when the customer's latest message was written there; the
  right to reply is checked when it is sent (`sendable`: the connection on, "reply to messages"
  given, the customer's last message within Telegram's 24 hours), else staff are told why.
- What the owner writes from their own phone in that chat is recorded in the customer's care
  history (as a staff message, by the owner), not relayed as the customer's.
- Edits and deletions of a customer's messages there reach the staff chat as a note under the
  relayed message; the history keeps the new words (a deleted message's words are dropped).
- On staff request (/invite, /slots, /coupons in the customer's topic, or as a reply to their
  message) the bot sends through the account the onboarding invitation, free times with a link
  into /book, or the customer's coupons. Nothing else goes through an account: no marketing.
- Outside working hours (the masters' hours of the business file), a customer who writes is
  told once per evening when they will be answered (`[business_account] auto_reply`).

Everything sent through an account is an outbox row delivered by the Telegram edge
(handlers/business_chats.py), which asks `sendable` before every send.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import WEEKDAYS, Business
from bot.buttons import Keyboard
from bot.clock import Clock
from bot.db.models import (
    BusinessChat,
    BusinessConnection,
    BusinessMessage,
    CareDirection,
    CareMessage,
    Customer,
    OutboxMessage,
    StaffAction,
)
from bot.db.repositories import Database, Repos
from bot.events import CustomerErased
from bot.features import Features
from bot.outbox import RELAY, SERVICE
from bot.services.care import RELAY_KEEPS, CareService, Incoming, StaffReply
from bot.services.coupons import CouponView
from bot.services.phones import normalize_phone

REPLY_WINDOW = timedelta(hours=24)  # Telegram: the bot may write where the customer wrote lately
NOTICE_KEEPS = timedelta(days=7)
MAX_STORED_TEXT = 4096

# Outbox templates: sent through an account (the edge's deliverers) …
BIZ_REPLY = "biz_out"  # a staff reply (laned per customer, as the care chat's)
AUTO_REPLY = "business_auto_reply"
REQUESTS = {"invite": "business_invite", "slots": "business_slots", "coupons": "business_coupons"}
THROUGH_ACCOUNT = (BIZ_REPLY, AUTO_REPLY, *REQUESTS.values())
# … and notices to the staff chat (sent as any service message).
CONNECTION_NOTICE = "business_connection_staff"
EDITED, DELETED = "business_edited", "business_deleted"
FAILED = "business_failed"


class Refusal(StrEnum):
    """Why nothing can be sent to a customer through an account now."""

    NO_CHAT = "no_chat"  # they never wrote to a connected account
    DISCONNECTED = "disconnected"  # the owner switched the bot off (or it never connected)
    NO_RIGHT = "no_reply_right"  # the owner took away "reply to messages"
    EXPIRED = "chat_expired"  # their last message there is more than 24 hours old
    NO_CARD = "no_card"  # coupons: the customer has no card (not matched by id or phone)
    UNSUPPORTED = "unsupported"  # a poll, a contact: nothing the bot sends as the account


@dataclass(frozen=True)
class ConnectionInfo:
    """A `business_connection` update, in the core's words."""

    id: str
    owner_user_id: int
    owner_name: str
    rights: dict[str, bool]
    enabled: bool


@dataclass(frozen=True)
class Account:
    id: str
    owner_user_id: int
    owner_name: str
    enabled: bool
    can_reply: bool
    rights: tuple[str, ...]  # the rights given, as Telegram names them
    updated_at: datetime

    @classmethod
    def of(cls, row: BusinessConnection) -> Account:
        return cls(
            id=row.id,
            owner_user_id=row.owner_user_id,
            owner_name=row.owner_name,
            enabled=row.enabled,
            can_reply=row.can_reply,
            rights=tuple(sorted(k for k, v in (row.rights or {}).items() if v)),
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class Route:
    """Where a staff reply to a customer goes: through this account."""

    connection_id: str
    owner_name: str


def _stored(text: str | None) -> str | None:
    return (text or None) and text[:MAX_STORED_TEXT]


class BusinessChats:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        business: Business,
        tz: ZoneInfo,
        care: CareService,
        admin_chat_id: int | None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz
        self.care = care
        self.admin_chat_id = admin_chat_id

    def register(self, features: Features) -> None:
        features.on_erased(self.erase)
        features.compose(self._under_the_relay, EDITED, DELETED)

    # ---- the connection ------------------------------------------------------------------------

    async def connection_changed(self, info: ConnectionInfo) -> Account:
        """Store what the owner set, at once; the admin chat is told what changed."""
        now = self.clock.now()
        can_reply = bool(info.rights.get("can_reply"))
        async with self.db.transaction() as repos:
            row = await repos.business.connection(info.id, for_update=True)
            before = Account.of(row) if row is not None else None
            if row is None:
                row = BusinessConnection(id=info.id, connected_at=now)
                repos.business.add(row)
            row.owner_user_id, row.owner_name = info.owner_user_id, info.owner_name[:256]
            row.rights = {k: v for k, v in info.rights.items() if v}
            row.can_reply, row.enabled, row.updated_at = can_reply, info.enabled, now
            after = Account.of(row)
            changed = before is None or (before.enabled, before.rights) != (
                after.enabled,
                after.rights,
            )
            if changed and self.admin_chat_id is not None:
                await repos.outbox.queue(
                    key=f"{CONNECTION_NOTICE}:{info.id}:{uuid.uuid4().hex}",  # each change
                    kind=SERVICE,
                    template=CONNECTION_NOTICE,
                    not_before=now,
                    not_after=now + NOTICE_KEEPS,
                    chat_id=self.admin_chat_id,
                    data={
                        "owner": after.owner_name,
                        "enabled": after.enabled,
                        "can_reply": after.can_reply,
                        "was_enabled": before.enabled if before else None,
                        "was_can_reply": before.can_reply if before else None,
                    },
                    now=now,
                )
        return after

    async def account(self, connection_id: str) -> Account | None:
        async with self.db.reading() as repos:
            row = await repos.business.connection(connection_id)
            return Account.of(row) if row is not None else None

    async def accounts(self) -> list[Account]:
        async with self.db.reading() as repos:
            return [Account.of(row) for row in await repos.business.connections()]

    # ---- what arrives from the accounts' chats -------------------------------------------------

    async def from_customer(
        self,
        connection_id: str,
        incoming: Incoming,
        *,
        phone: str | None = None,
        media: dict[str, Any] | None = None,
    ) -> None:
        """A customer's message to the account: stored and relayed to the staff chat as a care
        message, marked with the account; the chat remembered (24 hours to answer), and an
        out-of-hours reply queued once per evening. `phone`: a contact of their own they shared."""
        assert self.admin_chat_id is not None
        now = self.clock.now()
        author = incoming.author
        async with self.db.reading(snapshot=False) as repos:
            account = await repos.business.connection(connection_id)
            customer = await repos.customers.by_tg_user(author.id)
            chat = await repos.business.chat(author.id)
            customer_id = customer.id if customer else (chat.customer_id if chat else None)
            if customer_id is None and phone:
                customer_id = await self._by_phone(repos, phone, author.id)
            owner = account.owner_name if account else ""

        async def stored(repos: Repos, message: CareMessage) -> None:
            await repos.business.save_chat(
                BusinessChat(
                    tg_user_id=author.id,
                    connection_id=connection_id,
                    customer_id=customer_id,
                    last_in_at=now,
                )
            )
            repos.business.add(
                BusinessMessage(
                    connection_id=connection_id,
                    tg_user_id=author.id,
                    customer_id=customer_id,
                    message_id=incoming.message_id,
                    care_id=message.id,
                    from_owner=False,
                    at=now,
                )
            )
            await self._auto_reply(repos, connection_id, author.id, customer_id, now)

        await self.care.take_incoming(
            incoming,
            self.admin_chat_id,
            customer_id=customer_id,
            business={"account": owner, "connection_id": connection_id, "media": media},
            on_stored=stored,
        )

    @staticmethod
    async def _by_phone(repos: Repos, phone: str, tg_user_id: int) -> int | None:
        """The card of the customer whose phone they shared, if exactly one card has it and it is
        not someone else's Telegram account."""
        normal = normalize_phone(phone)
        found = await repos.customers.by_phone(normal) if normal else []
        found = [c for c in found if c.tg_user_id in (None, tg_user_id)]
        return found[0].id if len(found) == 1 else None

    async def from_owner(
        self, connection_id: str, tg_user_id: int, message_id: int, kind: str, text: str | None
    ) -> None:
        """The owner wrote to the customer from their own phone: recorded in the customer's
        care history as an answer by the owner (not relayed: it is no customer's message)."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            account = await repos.business.connection(connection_id)
            customer = await repos.customers.by_tg_user(tg_user_id)
            chat = await repos.business.chat(tg_user_id)
            customer_id = customer.id if customer else (chat.customer_id if chat else None)
            if await repos.business.message(connection_id, tg_user_id, message_id):
                return  # the same update again
            care = await repos.care.store(
                CareMessage(
                    tg_user_id=tg_user_id,
                    customer_id=customer_id,
                    direction=CareDirection.OUT,
                    admin_message_id=None,
                    kind=kind,
                    text=_stored(text),
                    staff_id=account.owner_user_id if account else None,
                    at=now,
                )
            )
            repos.business.add(
                BusinessMessage(
                    connection_id=connection_id,
                    tg_user_id=tg_user_id,
                    customer_id=customer_id,
                    message_id=message_id,
                    care_id=care.id,
                    from_owner=True,
                    at=now,
                )
            )

    async def edited(
        self, connection_id: str, tg_user_id: int, message_id: int, text: str | None
    ) -> None:
        """A message of the chat was edited: the history keeps the new words; a customer's edit
        is shown to staff under the message they saw."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            row = await repos.business.message(connection_id, tg_user_id, message_id)
            if row is None or row.deleted_at is not None:
                return  # written before the bot was connected: nothing of it here
            row.edited_at = now
            care = await self._care_row(repos, row)
            if care is not None:
                care.text = _stored(text)
            if not row.from_owner:
                await self._staff_note(repos, EDITED, row, care, now, text=text)

    async def deleted(self, connection_id: str, tg_user_id: int, message_ids: list[int]) -> None:
        """Messages of the chat were deleted: their words dropped from the history; staff see
        which of the customer's messages went, under each."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            for row in await repos.business.messages(connection_id, tg_user_id, message_ids):
                if row.deleted_at is not None:
                    continue
                row.deleted_at = now
                care = await self._care_row(repos, row)
                if care is not None:
                    care.text = None
                if not row.from_owner:
                    await self._staff_note(repos, DELETED, row, care, now)

    @staticmethod
    async def _care_row(repos: Repos, row: BusinessMessage) -> CareMessage | None:
        if row.care_id is None:
            return None
        return await repos.session.get(CareMessage, row.care_id)

    async def _staff_note(
        self,
        repos: Repos,
        template: str,
        row: BusinessMessage,
        care: CareMessage | None,
        now: datetime,
        *,
        text: str | None = None,
    ) -> None:
        if self.admin_chat_id is None:
            return
        topic = await repos.care.topic(row.tg_user_id, self.admin_chat_id)
        await repos.outbox.queue(
            key=f"{template}:{row.tg_user_id}:{row.message_id}:{uuid.uuid4().hex}",  # each edit
            kind=SERVICE,
            template=template,
            not_before=now,
            not_after=now + NOTICE_KEEPS,
            chat_id=self.admin_chat_id,
            data={
                "tg_user_id": row.tg_user_id,
                "text": text,
                "care_id": care.id if care else None,
                "reply_to": care.admin_message_id if care else None,
                "thread_id": topic.thread_id if topic else None,
            },
            now=now,
        )

    async def _under_the_relay(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard | None]:
        """An edit or a deletion note answers the relayed message, found when the note goes: a
        customer who edits at once can be quicker than the relay itself (the admin chat's
        messages go one at a time, so by now it has been sent)."""
        data = dict(row.data or {})
        if not data.get("reply_to") and data.get("care_id"):
            care = await repos.session.get(CareMessage, data["care_id"])
            if care is not None and care.admin_message_id is not None:
                row.data = {**data, "reply_to": care.admin_message_id}
        return {}, None

    # ---- what goes back through an account -----------------------------------------------------

    async def route(self, tg_user_id: int) -> Route | None:
        """The account a staff reply to this customer goes through: the one they wrote to, when
        their latest message was written there (not to the bot itself)."""
        async with self.db.reading() as repos:
            chat = await repos.business.chat(tg_user_id)
            if chat is None:
                return None
            last = await repos.care.last_inbound_at(tg_user_id)
            if last is not None and last > chat.last_in_at:
                return None  # they wrote to the bot since: the answer goes there
            account = await repos.business.connection(chat.connection_id)
            return Route(chat.connection_id, account.owner_name if account else "")

    async def sendable(self, connection_id: str, tg_user_id: int) -> Refusal | None:
        """Whether the account lets the bot write to this customer now (asked before every send):
        the connection on, "reply to messages" given, the customer's last message there within
        the 24 hours."""
        async with self.db.reading() as repos:
            account = await repos.business.connection(connection_id)
            chat = await repos.business.chat(tg_user_id)
            if account is None or not account.enabled:
                return Refusal.DISCONNECTED
            if not account.can_reply:
                return Refusal.NO_RIGHT
            if chat is None or chat.connection_id != connection_id:
                return Refusal.NO_CHAT
            if self.clock.now() - chat.last_in_at > REPLY_WINDOW:
                return Refusal.EXPIRED
            return None

    async def take_reply(
        self, reply: StaffReply, route: Route, *, html: str | None, media: dict[str, Any] | None
    ) -> None:
        """A staff reply to a customer of an account: stored as any care reply (the audit too),
        queued to go through the account."""
        await self.care.take_reply(
            reply,
            template=BIZ_REPLY,
            extra={
                "business_connection_id": route.connection_id,
                "account": route.owner_name,
                "html": html,
                "media": media,
                "tg_user_id": reply.recipient,
            },
        )

    async def request(
        self,
        what: str,
        tg_user_id: int,
        *,
        staff_id: int,
        staff_name: str,
        chat_id: int,
        message_id: int,
        thread_id: int | None,
    ) -> Refusal | None:
        """Staff ask to send the customer, through the account, the invitation to the bot, free
        times or their coupons: refused at once when the account does not allow it now (checked
        again when it is sent)."""
        template = REQUESTS[what]
        now = self.clock.now()
        async with self.db.reading() as repos:
            chat = await repos.business.chat(tg_user_id)
            customer = await repos.customers.by_tg_user(tg_user_id)
            if chat is None:
                return Refusal.NO_CHAT
            connection_id = chat.connection_id
            customer_id = customer.id if customer else chat.customer_id
        refusal = await self.sendable(connection_id, tg_user_id)
        if refusal is not None:
            return refusal
        if what == "coupons" and customer_id is None:
            return Refusal.NO_CARD
        async with self.db.transaction() as repos:
            await repos.outbox.queue(
                key=f"{template}:{tg_user_id}:{message_id}",
                kind=RELAY,  # asked by staff now, like a reply: never held for quiet hours
                template=template,
                not_before=now,
                not_after=now + REPLY_WINDOW,
                customer_id=customer_id,
                chat_id=tg_user_id,
                data={
                    "business_connection_id": connection_id,
                    "tg_user_id": tg_user_id,
                    "customer_id": customer_id,
                    "admin_chat_id": chat_id,
                    "reply_to": message_id,
                    "thread_id": thread_id,
                },
                now=now,
            )
            repos.audit.record(
                StaffAction(
                    at=now,
                    staff_id=staff_id,
                    staff_name=staff_name,
                    action=f"business_{what}",
                    customer_id=customer_id,
                    details={},
                )
            )
        return None

    async def failed(self, repos: Repos, data: dict[str, Any], key: str, reason: str) -> None:
        """Something for a customer will never go through the account: staff are told why, under
        what they wrote (the reply, the request)."""
        chat_id = data.get("admin_chat_id") or data.get("chat_id")
        if not chat_id:
            return  # an automatic reply: nobody asked for it
        now = self.clock.now()
        code = reason.removeprefix("business:").split(" ", 1)[0]
        await repos.outbox.queue(
            key=f"{FAILED}:{key}",
            kind=SERVICE,
            template=FAILED,
            not_before=now,
            not_after=now + NOTICE_KEEPS,
            chat_id=int(chat_id),
            data={
                "reason": code if code in set(Refusal) else "refused",
                "detail": reason,
                "account": data.get("account"),
                "tg_user_id": data.get("tg_user_id") or data.get("recipient"),
                "reply_to": data.get("reply_to") or data.get("message_id"),
                "thread_id": data.get("thread_id"),
            },
            now=now,
        )

    # ---- the contents -------------------------------------------------------------------------

    async def coupons(self, customer_id: int | None) -> list[CouponView]:
        if customer_id is None:
            return []
        async with self.db.reading() as repos:
            rows = await repos.coupons.active(customer_id, self.clock.now())
            return [CouponView.of(c, self.tz) for c in rows]

    async def language(self, customer_id: int | None) -> str:
        if customer_id is not None:
            async with self.db.reading() as repos:
                customer = await repos.customers.get(customer_id)
                if customer is not None and customer.language in ("ru", "en"):
                    return str(customer.language)
        return self.business.staff_language

    # ---- working hours and the out-of-hours reply ----------------------------------------------

    def opening(self, now: datetime) -> datetime | None:
        """None while the salon works (any master's hours of the day); else when it opens next."""
        local = now.astimezone(self.tz)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            for start, end in self._hours(day):
                if start <= local < end:
                    return None
                if start > local:
                    return start
        return None  # no hours at all this week: nothing to promise

    def _hours(self, day: date) -> list[tuple[datetime, datetime]]:
        weekday = WEEKDAYS[day.weekday()]
        ranges = [m.hours[weekday] for m in self.business.masters if weekday in m.hours]
        return sorted((_at(day, r.start, self.tz), _at(day, r.end, self.tz)) for r in ranges)

    async def _auto_reply(
        self,
        repos: Repos,
        connection_id: str,
        tg_user_id: int,
        customer_id: int | None,
        now: datetime,
    ) -> None:
        if not self.business.business_account.auto_reply:
            return
        opens = self.opening(now)
        if opens is None:
            return
        # One per customer per evening: the evening is named by the opening it waits for.
        await repos.outbox.queue(
            key=f"{AUTO_REPLY}:{tg_user_id}:{opens.date().isoformat()}",
            kind=RELAY,
            template=AUTO_REPLY,
            not_before=now,
            not_after=min(opens, now + RELAY_KEEPS),
            customer_id=customer_id,
            chat_id=tg_user_id,
            data={
                "business_connection_id": connection_id,
                "tg_user_id": tg_user_id,
                "customer_id": customer_id,
                "opens_at": opens.isoformat(),
            },
            now=now,
        )

    # ---- /forget -------------------------------------------------------------------------------

    async def erase(self, repos: Repos, event: CustomerErased) -> None:
        customer = await repos.customers.get(event.customer_id)
        await repos.business.erase(event.customer_id, customer.tg_user_id if customer else None)


def _at(day: date, moment: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=tz)
