"""Planners: idempotent queries that fill the outbox. Each inserts rows by a unique key with
"on conflict do nothing", so running one twice, or in two processes at once, adds nothing twice.

They work set-wise in SQL (an index on the birthday's month and day, not a Python loop over
every customer), and leave rendering and coupons to the moment a row is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business, CouponRule
from bot.clock import Clock, local_today
from bot.db import queries
from bot.db.repositories import Database, Repos
from bot.events import PurchaseRecorded
from bot.metrics import PLANNER_RUNS, PLANNER_SECONDS
from bot.outbox import MARKETING
from bot.outbox.policy import Policy

log = logging.getLogger("carebot.planners")


def coupon_data(rule: CouponRule | None, kind: str, **extra: Any) -> dict[str, Any]:
    data = dict(extra)
    if rule is not None:
        data["coupon"] = {
            "kind": kind,
            "percent": rule.percent,
            "amount": rule.amount,
            "valid_days": rule.valid_days,
        }
    return data


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

    def _rows(
        self,
        key_prefix: str,
        key_suffix: str,
        template: str,
        data: dict[str, Any],
        not_before: datetime,
        not_after: datetime,
    ) -> Any:
        now = self.clock.now()
        return queries.customer_rows(
            key_prefix,
            key_suffix,
            template=template,
            data=data,
            not_before=not_before,
            not_after=not_after,
            due_at=self.policy.morning(max(not_before, now)),
            now=now,
        )

    async def birthdays(self) -> int:
        """Greet on the birthday's morning (29 February on the 28th in common years); the day
        after still catches up if the bot was down, and the key keeps it to one per year."""
        today = local_today(self.clock, self.tz)
        rule = self.business.coupons.birthday
        planned = 0
        async with self.db.transaction() as repos:
            for day in (today, today - timedelta(days=1)):
                rows = self._rows(
                    "birthday:",
                    f":{day.year}",
                    "birthday_greeting",
                    coupon_data(rule, "birthday"),
                    self.policy.morning(self._start_of(day)),
                    self._start_of(day + timedelta(days=2)),
                )
                planned += await repos.outbox.plan(
                    rows.where(queries.born_on(day), queries.may_get_offers())
                )
            ahead = self.business.birthday.remind_days_before
            if ahead:
                day = today + timedelta(days=ahead)
                rows = self._rows(
                    "birthday_soon:",
                    f":{day.year}",
                    "birthday_soon",
                    {"days": ahead},
                    self.policy.morning(self._start_of(today)),
                    self._start_of(day),
                )
                planned += await repos.outbox.plan(
                    rows.where(queries.born_on(day), queries.may_get_offers())
                )
        return planned

    async def holidays(self) -> int:
        today = local_today(self.clock, self.tz)
        planned = 0
        async with self.db.transaction() as repos:
            for holiday in self.business.holidays:
                if holiday.date != today.strftime("%m-%d"):
                    continue
                rows = self._rows(
                    f"holiday:{holiday.id}:{today.year}:",
                    "",
                    holiday.template,
                    coupon_data(holiday.coupon, "holiday", title=holiday.title),
                    self.policy.morning(self._start_of(today)),
                    self._start_of(today + timedelta(days=1)),
                )
                query = rows.where(queries.may_get_offers())
                if holiday.audience:
                    query = query.where(queries.bought_any(holiday.audience))
                planned += await repos.outbox.plan(query)
        return planned

    async def expiry_reminders(self) -> int:
        """One reminder a day before an unused coupon expires (not for one given in the last day)."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            rows = queries.expiry_reminder_rows(
                now=now,
                due_at=self.policy.morning(now),
                window_start=now,
                window_end=now + timedelta(days=1),
                issued_before=now - timedelta(days=1),
            )
            return await repos.outbox.plan(rows)

    async def thanks_after_purchase(self, repos: Repos, event: PurchaseRecorded) -> None:
        """Subscribed to purchases: a thank-you with a time-limited offer, some hours later."""
        not_before = event.at + timedelta(hours=self.business.thanks.delay_hours)
        rows = queries.one_customer_row(
            f"thanks:{event.purchase_id}",
            event.customer_id,
            kind=MARKETING,
            template="thanks_offer",
            data=coupon_data(self.business.coupons.thanks, "thanks"),
            not_before=not_before,
            not_after=not_before + timedelta(days=2),
            due_at=not_before,
            now=event.at,
        )
        # None to someone with no consent to offers, or no Telegram account yet (a visit of a
        # customer imported from the owner's base, recorded at the desk)
        await repos.outbox.plan(rows.where(queries.may_get_offers()))

    async def run_all(self) -> dict[str, int]:
        planned: dict[str, int] = {}
        everything: list[tuple[str, Callable[[], Awaitable[int]]]] = [
            ("birthdays", self.birthdays),
            ("holidays", self.holidays),
            ("expiry_reminders", self.expiry_reminders),
            *self._more.items(),
        ]
        for name, planner in everything:
            with PLANNER_SECONDS.labels(name).time():
                planned[name] = await planner()
        PLANNER_RUNS.inc()
        if any(planned.values()):
            log.info("planned %s", " ".join(f"{k}={v}" for k, v in planned.items()))
        return planned
