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
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, cast, func, literal, select

from bot.business import Business
from bot.callbacks import BookFromBroadcast
from bot.clock import Clock
from bot.db.models import Booking, Customer, Cycle, OutboxMessage, Purchase
from bot.db.repositories import Database, Repos, key_prefix, planned_rows
from bot.outbox import MARKETING
from bot.outbox.planners import coupon_data
from bot.outbox.policy import Policy
from bot.rendering import Renderer
from bot.services.segments import latest_visit, reachable, sleeping

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


def _key(step: int) -> Any:
    return (literal("reactivation:", String) + cast(Cycle.customer_id, String) + literal(":", String)
            + cast(Cycle.last_purchase_id, String) + literal(f":{step}", String))


class SleepingService:
    def __init__(self, db: Database, clock: Clock, business: Business, tz: ZoneInfo, render: Renderer) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.settings = business.sleeping
        self.tz = tz
        self.render = render
        self.policy = Policy(business.marketing, tz)

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
            steps: list[tuple[int, str, dict[str, Any], Any]] = [(1, FIRST, coupon, None)]
            if self.settings.second_after_days:
                first = OutboxMessage.__table__.alias("first_message")
                steps.append((2, SECOND, {}, and_(
                    first.c.key == _key(1), first.c.state == "sent",
                    first.c.sent_at <= now - timedelta(days=self.settings.second_after_days))))
            for step, template, data, condition in steps:
                rows = planned_rows(
                    _key(step), Cycle.customer_id, kind=MARKETING, template=template, data=data, not_before=now,
                    not_after=now + timedelta(days=3), due_at=self.policy.morning(now), now=now,
                ).join(Customer, Customer.id == Cycle.customer_id).where(
                    Cycle.sleeps_at <= now, Cycle.last_purchase_id == latest_visit(), reachable(), sleeping(now))
                if condition is not None:
                    rows = rows.join(first, condition)
                planned += await repos.outbox.plan(rows)
        return planned

    async def compose(self, repos: Repos, row: OutboxMessage, customer: Customer | None,
                      now: datetime) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A "book" button under the wake-up message (and the coupon's, when there is one)."""
        lang = customer.language if customer else self.business.staff_language
        rows = [[{"text": self.render.label(lang, "book"), "callback_data": BookFromBroadcast().pack()}]]
        if (row.data or {}).get("coupon"):
            rows.append([{"text": self.render.label(lang, "my_coupons"), "callback_data": "menu:coupons"}])
        return {}, {"inline_keyboard": rows}

    async def stats(self) -> SleepStats:
        """For /sleeping: asleep now; contacted (first messages delivered); woken up (booked or
        bought within the offer's days after it)."""
        now = self.clock.now()
        window = timedelta(days=self._offer_days())
        async with self.db.reading() as repos:
            asleep = int(await repos.session.scalar(
                select(func.count(Customer.id)).where(Customer.erased_at.is_(None), sleeping(now))) or 0)
            first = and_(key_prefix(OutboxMessage.key, "reactivation:"), OutboxMessage.key.endswith(":1"),
                         OutboxMessage.state == "sent")
            contacted: dict[str, datetime] = {
                key: at for key, at in await repos.session.execute(
                    select(OutboxMessage.key, OutboxMessage.sent_at).where(first)) if at is not None}
            since = min(contacted.values(), default=now)
            events = [*(await repos.session.execute(
                select(Purchase.customer_id, Purchase.at).where(Purchase.at >= since))).all(),
                *(await repos.session.execute(
                    select(Booking.customer_id, Booking.created_at).where(Booking.created_at >= since))).all()]
        sent_at: dict[int, list[datetime]] = {}
        for key, at in contacted.items():
            sent_at.setdefault(int(key.split(":")[1]), []).append(at)
        woke = {(customer_id, at) for customer_id, moment in events for at in sent_at.get(customer_id, [])
                if at <= moment <= at + window}
        return SleepStats(asleep=asleep, contacted=len(contacted), woke=len(woke))
