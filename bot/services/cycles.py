"""Cycles: each customer's own rhythm per service, and the due-offer with real free slots.

A purchase updates the customer's cycle for that service (the median of their last intervals
once there are two, the service's default before). The planner then works set-wise on the
`cycles` table: rows whose offer moment came are offered (one outbox row per cycle, keyed by
the last visit and the round), rows whose due date passed roll on to the next cycle, and a
customer who let `ignored_offers_limit` offers pass is left for the reactivation campaign.
"""

from __future__ import annotations

import itertools
import statistics
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from bot.business import Business, Service
from bot.buttons import Button, Keyboard, PostponeCycle
from bot.clock import Clock
from bot.db import queries
from bot.db.models import Customer, Cycle, OutboxMessage
from bot.db.repositories import Database, Repos
from bot.events import CustomerErased, PurchaseRecorded, SaleCancelled
from bot.outbox.compose import Obsolete
from bot.outbox.policy import Policy
from bot.services.booking import BookingService

if TYPE_CHECKING:
    from bot.features import Features

LEARN_FROM_VISITS = 7  # the median of the last six intervals: recent habits, robust to one odd gap
SAME_VISIT_DAYS = 0.5  # two sales within half a day are one visit, not an interval
ROLL_BATCH = 1000
HISTORY_BATCH = 1000  # customers whose cycles are learned from history per transaction


def learned_interval(visits: list[datetime], default_days: float) -> tuple[float, bool]:
    """The customer's usual interval in days from their visits (newest first), and whether it
    is their own (at least two intervals) rather than the service's default."""
    intervals = [(a - b).total_seconds() / 86400 for a, b in zip(visits, visits[1:], strict=False)]
    intervals = [i for i in intervals if i >= SAME_VISIT_DAYS]
    if len(intervals) >= 2:
        return float(statistics.median(intervals)), True
    return float(default_days), False


class CycleService:
    def __init__(
        self, db: Database, clock: Clock, business: Business, tz: ZoneInfo, booking: BookingService
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.settings = business.booking
        self.tz = tz
        self.booking = booking
        self.policy = Policy(business.marketing, tz)

    def register(self, features: Features) -> None:
        """Purchases teach each service's rhythm, an erasure forgets it; due-offers are planned and
        composed (with real free slots) here."""
        features.on_purchase(self.learn_after_purchase)
        features.on_erased(self.forget)
        features.on_sale_cancelled(self.unlearn_cancelled)
        features.plan("due_offers", self.plan_due_offers)
        features.compose(self.compose_offer, "due_offer")

    def lead(self, interval_days: float) -> timedelta:
        """How long before the due date to offer: at `offer_at_share` of the cycle, but within
        [lead_min_days, lead_max_days] (and never before the first half of a very short cycle)."""
        lead = interval_days * (1 - self.settings.offer_at_share)
        lead = min(
            max(lead, self.settings.lead_min_days), self.settings.lead_max_days, interval_days / 2
        )
        return timedelta(days=lead)

    def _schedule(self, cycle: Cycle, due: datetime) -> None:
        cycle.due_at, cycle.offer_at = due, due - self.lead(cycle.interval_days)

    async def learn_after_purchase(self, repos: Repos, event: PurchaseRecorded) -> None:
        """Subscribed to purchases: a visit resets that service's cycle from this day."""
        service = self.business.service(event.service_id)
        if service is None:
            return
        visits = await repos.cycles.visits(event.customer_id, service.id, LEARN_FROM_VISITS)
        interval, own = learned_interval(visits, service.cycle_days)
        cycle = await repos.cycles.get(event.customer_id, service.id)
        if cycle is None:
            cycle = Cycle(customer_id=event.customer_id, service_id=service.id)
            repos.cycles.add(cycle)
        cycle.master_id = event.master_id or cycle.master_id
        self._reset(cycle, event.purchase_id, event.at, interval, own)
        self._schedule(cycle, event.at + timedelta(days=interval))

    def _reset(
        self, cycle: Cycle, purchase_id: int, at: datetime, interval: float, own: bool
    ) -> None:
        cycle.last_purchase_id, cycle.last_visit_at = purchase_id, at
        cycle.interval_days, cycle.learned = interval, own
        cycle.round, cycle.offered_round, cycle.ignored = 0, None, 0
        cycle.sleeps_at = at + timedelta(days=interval * self.business.sleeping.factor)

    async def unlearn_cancelled(self, repos: Repos, event: SaleCancelled) -> None:
        """Subscribed to cancelled sales: a cycle the sale reset is learned again from the visits
        left of that service (scheduled as of now, as from history), or forgotten if none is."""
        service = self.business.service(event.service_id)
        if service is None:
            return
        cycle = await repos.cycles.get(event.customer_id, service.id, for_update=True)
        if cycle is None or cycle.last_purchase_id != event.purchase_id:
            return
        latest = await repos.sale_cancels.latest_visit(event.customer_id, service.id)
        if latest is None:
            await repos.session.delete(cycle)
            return
        visits = await repos.cycles.visits(event.customer_id, service.id, LEARN_FROM_VISITS)
        interval, own = learned_interval(visits, service.cycle_days)
        cycle.master_id = latest[2] or cycle.master_id
        self._reset(cycle, latest[0], latest[1], interval, own)
        self._schedule_from_history(cycle, event.at)

    async def learn_from_history(self) -> int:
        """Cycles from visits that taught none yet: those imported from the owner's previous
        base, and a recognised customer's (their cycles start again the moment they join). Each
        is scheduled as of now: a cycle already past its due date is offered now (due within
        the offer's lead), one past its sleep moment is left to the sleeping-customer campaign.
        Runs first in the due-offer planner, so the first tick after an import (or after
        someone is recognised) plans from their history."""
        services = {s.id: s for s in self.business.services}
        async with self.db.reading() as repos:
            if not await repos.cycles.unlearned(list(services), 0, 1):
                return 0
        learned, after = 0, 0
        while True:
            # Read and worked out outside the write transaction, which only inserts: the write
            # lock is held for milliseconds a page, not while a page of visits is read.
            now = self.clock.now()
            async with self.db.reading() as repos:
                customers = await repos.cycles.unlearned(list(services), after, HISTORY_BATCH)
                visits = await repos.cycles.visits_of(customers, list(services))
            cycles = [
                self._from_history(customer_id, services[service_id], list(rows), now)
                for (customer_id, service_id), rows in itertools.groupby(
                    visits, key=lambda v: (v[0], v[1])
                )
            ]
            async with self.db.transaction() as repos:
                await repos.cycles.add_many(cycles)
            learned += len(cycles)
            if len(customers) < HISTORY_BATCH:
                return learned
            after = customers[-1]

    def _from_history(
        self,
        customer_id: int,
        service: Service,
        visits: list[tuple[int, str, int, datetime, str | None]],
        now: datetime,
    ) -> dict[str, Any]:
        """A cycle learned from a customer's visits of one service (newest first), as a row."""
        latest = visits[:LEARN_FROM_VISITS]
        interval, own = learned_interval([v[3] for v in latest], service.cycle_days)
        # A plain namespace with a cycle's attributes, not a Cycle: an ORM instance costs more to
        # build than everything else here (a first run learns a whole imported base at once).
        row = SimpleNamespace(
            customer_id=customer_id,
            service_id=service.id,
            master_id=next((v[4] for v in latest if v[4]), None),
        )
        cycle = cast(Cycle, row)
        self._reset(cycle, latest[0][2], latest[0][3], interval, own)
        self._schedule_from_history(cycle, now)
        return vars(row)

    def _schedule_from_history(self, cycle: Cycle, now: datetime) -> None:
        due = cycle.last_visit_at + timedelta(days=cycle.interval_days)
        if cycle.sleeps_at is not None and cycle.sleeps_at <= now:
            cycle.due_at = cycle.offer_at = None  # asleep: the reactivation campaign's
        elif due <= now:
            cycle.due_at, cycle.offer_at = now + self.lead(cycle.interval_days), now
        else:
            self._schedule(cycle, due)

    async def forget(self, repos: Repos, event: CustomerErased) -> None:
        """Subscribed to `/forget`: no more due-offers, and their rhythm is not kept."""
        await repos.cycles.forget(event.customer_id)

    # ---- the planner ---------------------------------------------------------------------------

    async def plan_due_offers(self) -> int:
        await self.learn_from_history()
        await self._roll_passed()
        now = self.clock.now()
        async with self.db.transaction() as repos:
            limit = self.settings.ignored_offers_limit
            planned = await repos.outbox.plan(
                queries.due_offer_rows(
                    now=now, due_at=self.policy.morning(now), ignored_limit=limit
                )
            )
            await repos.cycles.mark_offered(queries.offer_ready(now, limit), queries.offered())
            return planned

    async def _roll_passed(self) -> int:
        """Cycles whose due date passed without a visit or a booking move on to the next cycle;
        an offer that went unanswered counts as ignored, and after the limit the customer is left
        to the sleeping-customer campaign. Only the rows that just passed are touched."""
        rolled = 0
        limit = self.settings.ignored_offers_limit
        while True:
            now = self.clock.now()
            async with self.db.transaction() as repos:
                batch = await repos.cycles.passed(now, ROLL_BATCH)
                for cycle in batch:
                    assert cycle.due_at is not None
                    if cycle.offered_round == cycle.round:
                        cycle.ignored += 1
                    if cycle.ignored >= limit:
                        cycle.due_at = cycle.offer_at = None
                        continue
                    due = cycle.due_at
                    while due <= now:  # a bot that was off for weeks catches up in one step
                        due += timedelta(days=cycle.interval_days)
                        cycle.round += 1
                    self._schedule(cycle, due)
            rolled += len(batch)
            if len(batch) < ROLL_BATCH:
                return rolled

    # ---- the customer's answers ----------------------------------------------------------------

    async def postpone(self, tg_user_id: int, service_id: str, round_: int) -> datetime | None:
        """ "Not now" on the offer of this round: no more offers this cycle; the next one comes
        a cycle later. None when the offer is not the current one (a second tap, an old message)."""
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            cycle = await repos.cycles.get(customer.id, service_id) if customer else None
            if cycle is None or cycle.due_at is None or cycle.round != round_:
                return None
            cycle.round += 1
            self._schedule(cycle, cycle.due_at + timedelta(days=cycle.interval_days))
            return cycle.due_at

    async def compose_offer(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard]:
        """The due-offer at the moment it goes: real free slots now, their usual master first."""
        service = self.business.service(row.data.get("service"))
        if customer is None or service is None:
            raise Obsolete("no such service")
        if await repos.bookings.upcoming_of(customer.id, now):
            raise Obsolete("booked meanwhile")
        cycle = await repos.cycles.get(customer.id, service.id, for_update=False)
        due = cycle.due_at if cycle and cycle.due_at else now
        first_day = max(
            self.booking.finder.local_day(now),
            self.booking.finder.local_day(due) - timedelta(days=1),
        )
        slots = await self.booking.offer(
            repos, service, row.data.get("master"), first_day, self.settings.offer_slots
        )
        lang = customer.language
        markup = [
            *self.booking.slot_keyboard(lang, service.id, slots),
            [
                self.booking.other_time_button(lang, service.id),
                Button(
                    self.booking.render.label(lang, "not_now"),
                    PostponeCycle(service.id, cycle.round if cycle else 0),
                ),
            ],
        ]
        master = self.business.master(row.data.get("master"))
        return {
            "service": service.name,
            "master": master.name if master else None,
            "slots": len(slots),
            "due": due.astimezone(self.tz),
            "learned": bool(cycle and cycle.learned),
        }, markup
