"""The line on how to stop offers, said once: the first marketing message a customer receives
carries it (bot/outbox/compose.py). Whether it was said is `customers.stop_hint_at`, taken by a
conditional update, so two messages claimed at once (one batch, or two senders) say it once, and
a restart forgets nothing; a message that carried it and then never went gives it back."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Customer


class StopHintRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def take(self, customer_id: int, at: datetime) -> bool:
        """True for the one message that is to tell this customer how to stop offers: only
        while nobody was told (the update waits for a concurrent one and then finds it set)."""
        result = await self.session.execute(
            update(Customer)
            .where(Customer.id == customer_id, Customer.stop_hint_at.is_(None))
            .values(stop_hint_at=at)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]

    async def give_back(self, customer_ids: Iterable[int]) -> None:
        """The message that told them will never go (failed, skipped, too late): the next one
        tells them."""
        wanted = sorted(set(customer_ids))
        if not wanted:
            return
        await self.session.execute(
            update(Customer)
            .where(Customer.id.in_(wanted))
            .values(stop_hint_at=None)
            .execution_options(synchronize_session=False)
        )
