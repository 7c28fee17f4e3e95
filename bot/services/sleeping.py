"""Sleeping customers: detected from their own rhythm, woken with a time-limited offer.

A customer sleeps when the time since their last visit exceeds `[sleeping] factor` × their
usual interval for that visit's service (learned, or the service's cycle), with nothing
booked. The planner writes to them once per sleep (keyed by their last visit) with the
reactivation coupon, once more `second_after_days` later if they still sleep, and then leaves
them alone. Both planner steps are set-wise INSERT … SELECT, like every planner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.business import Business
from bot.buttons import Button, Keyboard, OpenBooking, ShowCoupons
from bot.clock import Clock
from bot.db import queries
from bot.db.models import Customer, OutboxMessage
from bot.db.repositories import Database, Repos
from bot.outbox.planners import coupon_data
from bot.outbox.policy import Policy
from bot.rendering import Renderer

if TYPE_CHECKING:
    from bot.features import Features

FIRST, SECOND = "reactivation", "reactivation_second"
OFFER_DAYS_WITHOUT_COUPON = 14  # how long a wake-up counts when the business gives no coupon


@dataclass(frozen=True)
class SleepStats:
    asleep: int
    contacted: int
    woke: int

    @property
    def share(self) -> float | None:
        return round(100 * self.woke / self.contacted, 1) if self.contacted else None


class SleepingService:
    def __init__(
        self, db: Database, clock: Clock, business: Business, tz: ZoneInfo, render: Renderer
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.settings = business.sleeping
        self.tz = tz
        self.render = render
        self.policy = Policy(business.marketing, tz)

    def register(self, features: Features) -> None:
        features.plan("reactivation", self.plan)
        features.compose(self.compose, "reactivation", "reactivation_second")

    def _offer_days(self) -> int:
        rule = self.business.coupons.reactivation
        return rule.valid_days if rule else OFFER_DAYS_WITHOUT_COUPON

    async def plan(self) -> int:
        """Planner: the first message to the newly asleep, the second to those still asleep."""
        if not self.settings.enabled:
            return 0
        now = self.clock.now()
        coupon = coupon_data(self.business.coupons.reactivation, "reactivation")
        planned = 0
        async with self.db.transaction() as repos:
            steps: list[tuple[int, str, dict[str, Any], datetime | None]] = [
                (1, FIRST, coupon, None)
            ]
            if self.settings.second_after_days:
                steps.append((2, SECOND, {}, now - timedelta(days=self.settings.second_after_days)))
            for step, template, data, first_sent_before in steps:
                planned += await repos.outbox.plan(
                    queries.reactivation_rows(
                        step,
                        template=template,
                        data=data,
                        now=now,
                        not_after=now + timedelta(days=3),
                        due_at=self.policy.morning(now),
                        first_sent_before=first_sent_before,
                    )
                )
        return planned

    async def compose(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard]:
        """A "book" button under the wake-up message (and the coupon's, when there is one)."""
        lang = customer.language if customer else self.business.staff_language
        rows = [[Button(self.render.label(lang, "book"), OpenBooking())]]
        if (row.data or {}).get("coupon"):
            rows.append([Button(self.render.label(lang, "my_coupons"), ShowCoupons())])
        return {}, rows

    async def stats(self) -> SleepStats:
        """For /sleeping: asleep now; contacted (first messages delivered); woken up (booked or
        bought within the offer's days after it)."""
        now = self.clock.now()
        window = timedelta(days=self._offer_days())
        async with self.db.reading() as repos:
            asleep = await repos.customers.count_in(
                queries.all_of(queries.known(), queries.sleeping(now))
            )
            contacted = await repos.outbox.sent_under("reactivation:", ":1")  # the first messages
            since = min(contacted.values(), default=now)
            events = [
                *await repos.purchases.made_since(since),
                *await repos.bookings.made_since(since),
            ]
        sent_at: dict[int, list[datetime]] = {}
        for key, at in contacted.items():
            sent_at.setdefault(int(key.split(":")[1]), []).append(at)
        woke = {
            (customer_id, at)
            for customer_id, moment in events
            for at in sent_at.get(customer_id, [])
            if at <= moment <= at + window
        }
        return SleepStats(asleep=asleep, contacted=len(contacted), woke=len(woke))
