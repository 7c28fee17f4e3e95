"""The care chat's memory: which admin-chat message or topic belongs to which customer, so a
staff reply finds its way back, and when to tell a customer their message arrived."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.business import Business
from bot.clock import Clock
from bot.db.models import CareMessage, CareTopic
from bot.db.repositories import Database

MAX_STORED_TEXT = 4096


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

    async def should_acknowledge(self, tg_user_id: int) -> bool:
        """Say "we got it" on the first message after a quiet spell, not on every message."""
        async with self.db.transaction() as repos:
            last = await repos.care.last_inbound_at(tg_user_id)
        quiet = timedelta(minutes=self.business.care.acknowledge_after_minutes)
        return last is None or self.clock.now() - last >= quiet

    async def record_inbound(self, inbound: Inbound) -> None:
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(inbound.tg_user_id)
            for admin_message_id in inbound.admin_message_ids or (None,):
                repos.care.add(CareMessage(
                    tg_user_id=inbound.tg_user_id, customer_id=customer.id if customer else None,
                    direction="in", admin_message_id=admin_message_id, kind=inbound.kind,
                    text=(inbound.text or None) and inbound.text[:MAX_STORED_TEXT], at=self.clock.now()))

    async def record_outbound(self, tg_user_id: int, staff_id: int, admin_message_id: int, kind: str,
                              text: str | None) -> int | None:
        """Store a delivered staff reply; returns the customer's id (None for a stranger)."""
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            repos.care.add(CareMessage(
                tg_user_id=tg_user_id, customer_id=customer.id if customer else None, direction="out",
                admin_message_id=admin_message_id, kind=kind,
                text=(text or None) and text[:MAX_STORED_TEXT], staff_id=staff_id, at=self.clock.now()))
            return customer.id if customer else None

    async def recipient(self, chat_id: int, reply_to: int | None, thread_id: int | None) -> int | None:
        """Whose conversation a staff message belongs to: by its topic, else by what it replies to."""
        async with self.db.transaction() as repos:
            if thread_id is not None:
                user = await repos.care.user_of_topic(chat_id, thread_id)
                if user is not None:
                    return user
            if reply_to is not None:
                return await repos.care.user_of_admin_message(reply_to)
            return None

    async def topic(self, tg_user_id: int, chat_id: int) -> int | None:
        async with self.db.transaction() as repos:
            topic = await repos.care.topic(tg_user_id, chat_id)
            return topic.thread_id if topic else None

    async def save_topic(self, tg_user_id: int, chat_id: int, thread_id: int) -> None:
        async with self.db.transaction() as repos:
            await repos.care.save_topic(CareTopic(tg_user_id=tg_user_id, chat_id=chat_id,
                                                  thread_id=thread_id, created_at=self.clock.now()))

    async def drop_topic(self, tg_user_id: int) -> None:
        async with self.db.transaction() as repos:
            await repos.care.drop_topic(tg_user_id)

    async def mark_blocked(self, tg_user_id: int) -> None:
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id, for_update=True)
            if customer is not None and customer.blocked_at is None:
                customer.blocked_at = self.clock.now()
