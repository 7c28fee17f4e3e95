"""Planners: idempotent queries that fill the outbox. Each inserts rows by a unique key with
"on conflict do nothing", so running one twice, or in two processes at once, adds nothing twice.

They work set-wise in SQL (an index on the birthday's month and day, not a Python loop over
every customer), and leave rendering and coupons to the moment a row is sent.
"""
from __future__ import annotations

import calendar
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, cast, exists, literal, or_
from sqlalchemy.sql import Select

from bot.business import Business, CouponRule
from bot.clock import Clock
from bot.db.models import Coupon, Customer, Purchase
from bot.db.repositories import Database, Repos, planned_rows
from bot.events import PurchaseRecorded
from bot.outbox import MARKETING
from bot.outbox.policy import Policy

log = logging.getLogger("carebot.planners")



def coupon_data(rule: CouponRule | None, kind: str, **extra: Any) -> dict[str, Any]:
    data = dict(extra)
    if rule is not None:
        data["coupon"] = {"kind": kind, "percent": rule.percent, "amount": rule.amount, "valid_days": rule.valid_days}
    return data


def reachable():  # type: ignore[no-untyped-def]
    """Customers an offer may be planned for (the sender checks again when sending)."""
    return and_(Customer.erased_at.is_(None), Customer.tg_user_id.is_not(None),
                Customer.blocked_at.is_(None), Customer.marketing_opt_out.is_(False))


def _born_on(day: date):  # type: ignore[no-untyped-def]
    """Customers whose birthday falls on `day`: 29 February ones on the 28th in common years."""
    matches = and_(Customer.birth_month == day.month, Customer.birth_day == day.day)
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        matches = or_(matches, and_(Customer.birth_month == 2, Customer.birth_day == 29))
    return matches


class Planners:
    def __init__(self, db: Database, clock: Clock, business: Business, tz: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz
        self.policy = Policy(business.marketing, tz)
        self._more: dict[str, Callable[[], Awaitable[int]]] = {}

    def register(self, name: str, planner: Callable[[], Awaitable[int]]) -> None:
        """A planner of another service (due-offers, escalations), run with these."""
        self._more[name] = planner

    def _start_of(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.tz)

    def _rows(self, key_prefix: str, key_suffix: str, template: str, data: dict[str, Any],
              not_before: datetime, not_after: datetime, id_column: Any = Customer.id,
              customer_column: Any = Customer.id) -> Select[Any]:
        now = self.clock.now()
        due = self.policy.morning(max(not_before, now))
        key = literal(key_prefix, String) + cast(id_column, String) + literal(key_suffix, String)
        return planned_rows(key, customer_column, kind=MARKETING, template=template, data=data,
                            not_before=not_before, not_after=not_after, due_at=due, now=now)

    async def birthdays(self) -> int:
        """Greet on the birthday's morning (29 February on the 28th in common years); the day
        after still catches up if the bot was down, and the key keeps it to one per year."""
        today = self.clock.now().astimezone(self.tz).date()
        rule = self.business.coupons.birthday
        planned = 0
        async with self.db.transaction() as repos:
            for day in (today, today - timedelta(days=1)):
                rows = self._rows("birthday:", f":{day.year}", "birthday_greeting", coupon_data(rule, "birthday"),
                                  self.policy.morning(self._start_of(day)), self._start_of(day + timedelta(days=2)))
                planned += await repos.outbox.plan(rows.where(_born_on(day), reachable()))
            ahead = self.business.birthday.remind_days_before
            if ahead:
                day = today + timedelta(days=ahead)
                rows = self._rows("birthday_soon:", f":{day.year}", "birthday_soon", {"days": ahead},
                                  self.policy.morning(self._start_of(today)), self._start_of(day))
                planned += await repos.outbox.plan(rows.where(_born_on(day), reachable()))
        return planned

    async def holidays(self) -> int:
        today = self.clock.now().astimezone(self.tz).date()
        planned = 0
        async with self.db.transaction() as repos:
            for holiday in self.business.holidays:
                if holiday.date != today.strftime("%m-%d"):
                    continue
                rows = self._rows(f"holiday:{holiday.id}:{today.year}:", "", holiday.template,
                                  coupon_data(holiday.coupon, "holiday", title=holiday.title),
                                  self.policy.morning(self._start_of(today)), self._start_of(today + timedelta(days=1)))
                query = rows.where(reachable())
                if holiday.audience:
                    query = query.where(exists().where(Purchase.customer_id == Customer.id,
                                                       Purchase.service_id.in_(holiday.audience)))
                planned += await repos.outbox.plan(query)
        return planned

    async def expiry_reminders(self) -> int:
        """One reminder a day before an unused coupon expires (not for one given in the last day)."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            rows = planned_rows(
                literal("expiry:", String) + cast(Coupon.id, String), Coupon.customer_id, coupon_id=Coupon.id,
                kind=MARKETING, template="coupon_expiring", data={}, not_before=now, not_after=Coupon.expires_at,
                due_at=self.policy.morning(now), now=now,
            ).join(Customer, Customer.id == Coupon.customer_id).where(
                reachable(), Coupon.redeemed_at.is_(None), Coupon.voided_at.is_(None),
                Coupon.expires_at > now, Coupon.expires_at <= now + timedelta(days=1),
                Coupon.issued_at <= now - timedelta(days=1),
            )
            return await repos.outbox.plan(rows)

    async def thanks_after_purchase(self, repos: Repos, event: PurchaseRecorded) -> None:
        """Subscribed to purchases: a thank-you with a time-limited offer, some hours later."""
        not_before = event.at + timedelta(hours=self.business.thanks.delay_hours)
        await repos.outbox.queue(
            key=f"thanks:{event.purchase_id}", customer_id=event.customer_id, kind=MARKETING,
            template="thanks_offer", data=coupon_data(self.business.coupons.thanks, "thanks"),
            not_before=not_before, not_after=not_before + timedelta(days=2), now=event.at)

    async def run_all(self) -> dict[str, int]:
        planned = {
            "birthdays": await self.birthdays(),
            "holidays": await self.holidays(),
            "expiry_reminders": await self.expiry_reminders(),
        }
        for name, planner in self._more.items():
            planned[name] = await planner()
        if any(planned.values()):
            log.info("planned %s", " ".join(f"{k}={v}" for k, v in planned.items()))
        return planned
