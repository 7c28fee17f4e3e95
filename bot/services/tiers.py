"""Club tiers (`[[loyalty.tiers]]`): a customer's tier is the highest whose `min_spend` OR
`min_visits` they reach with their purchases of the last 12 months (either is enough: a
regular with small checks and a rare big spender both belong). Its percent is their cashback.

The planner (every few minutes like the others; what it finds changes once a day as the
12-month window moves and sales come in) compares what each customer qualifies for with what is
stored, set-wise, and acts on at most TIERS_PER_RUN customers a run:
- up: at once, congratulated (an offer: consent, quiet hours and caps apply, like the other
  loyalty messages that are not receipts), keyed by customer, tier and day;
- down: warned (an offer too) and `drops_at` set a month ahead; when it comes the customer takes
  the tier they qualify for then; qualifying again before that cancels the drop.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business, Tier
from bot.buttons import Keyboard
from bot.clock import Clock
from bot.db import queries
from bot.db.models import Customer, OutboxMessage
from bot.db.repositories import Database, Repos
from bot.db.tiers import Standing
from bot.features import Features
from bot.outbox.compose import Obsolete
from bot.outbox.policy import Policy
from bot.services.loyalty import add_months

TIER_UP = "tier_up"  # templates
TIER_DOWN = "tier_down"
WINDOW_MONTHS = 12
WARNING_MONTHS = 1
TIERS_PER_RUN = 2000  # customers whose tier changes, per planner run (the rest at the next)
PER_TRANSACTION = 200
MESSAGE_DAYS = 7  # a congratulation or a warning not sent within a week is not sent


class TierService:
    def __init__(self, db: Database, clock: Clock, business: Business, tz: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.policy = Policy(business.marketing, tz)
        self.per_run = TIERS_PER_RUN

    @property
    def tiers(self) -> list[Tier]:
        return self.business.loyalty.tiers

    def register(self, features: Features) -> None:
        features.plan("loyalty_tiers", self.evaluate)
        features.compose(self.compose, TIER_UP, TIER_DOWN)

    async def evaluate(self) -> int:
        """The planner: customers whose tier changed (or whose drop was warned or cancelled)."""
        if not self.tiers:
            return 0
        now = self.clock.now()
        async with self.db.reading() as repos:
            changing = await repos.tiers.changing(
                self.tiers,
                since=add_months(now, -WINDOW_MONTHS),
                now=now,
                limit=self.per_run,
            )
        changing = changing[: self.per_run]
        for first in range(0, len(changing), PER_TRANSACTION):
            async with self.db.transaction() as repos:
                for standing in changing[first : first + PER_TRANSACTION]:
                    await self._move(repos, standing, now)
        return len(changing)

    async def _move(self, repos: Repos, standing: Standing, now: datetime) -> None:
        qualified = self.tiers[standing.rank - 1] if standing.rank else None
        stored = self.business.loyalty.tier(standing.tier)
        stored_rank = self.tiers.index(stored) + 1 if stored else 0
        customer_id = standing.customer_id
        if standing.tier is not None and stored is None:  # a tier no longer configured
            if qualified is None:
                await repos.tiers.remove(customer_id)
            else:
                await repos.tiers.put(customer_id, qualified.name, now)
        elif standing.rank > stored_rank:
            assert qualified is not None
            await repos.tiers.put(customer_id, qualified.name, now)
            await self._message(
                repos,
                customer_id,
                f"{TIER_UP}:{customer_id}:{qualified.name}:{now:%Y-%m-%d}",
                TIER_UP,
                now,
            )
        elif standing.rank == stored_rank:
            await repos.tiers.warn_drop(customer_id, None)  # qualified again: no drop
        elif standing.drops_at is None:
            drops_at = add_months(now, WARNING_MONTHS)
            await repos.tiers.warn_drop(customer_id, drops_at)
            await self._message(
                repos,
                customer_id,
                f"{TIER_DOWN}:{customer_id}:{drops_at:%Y-%m-%d}",
                TIER_DOWN,
                now,
            )
        elif standing.drops_at <= now:
            if qualified is None:
                await repos.tiers.remove(customer_id)
            else:
                await repos.tiers.put(customer_id, qualified.name, now)

    async def _message(
        self, repos: Repos, customer_id: int, key: str, template: str, now: datetime
    ) -> None:
        rows = queries.one_customer_row(
            key,
            customer_id,
            template=template,
            data={},
            not_before=now,
            not_after=now + timedelta(days=MESSAGE_DAYS),
            due_at=self.policy.morning(now),
            now=now,
        )
        # an offer: not even written for someone who cannot get it
        await repos.outbox.plan(rows.where(queries.may_get_offers()))

    async def compose(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard | None]:
        """The tier as it is when the message goes: a congratulation for a tier no longer held,
        or a warning of a drop cancelled since, is not sent."""
        if customer is None:
            raise Obsolete("no customer")
        held = await repos.tiers.get(customer.id)
        tier = self.business.loyalty.tier(held.tier if held else None)
        if held is None or tier is None:
            raise Obsolete("no tier")
        if row.template == TIER_UP and row.key.split(":", 2)[2].rsplit(":", 1)[0] != tier.name:
            raise Obsolete("the tier changed")
        if row.template == TIER_DOWN and held.drops_at is None:
            raise Obsolete("the drop was cancelled")
        return {"tier": tier, "drops_at": held.drops_at}, None
