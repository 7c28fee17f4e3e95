""" "We missed you": the day after a visit marked as a no-show (by its master or the staff, the
booking's `no_show` state), a gentle word with a button into the booking of that service, once
(one message a customer a day, by its key), as a service message: it is about their own visit,
not an offer. It waits for the end of the quiet hours, and is not sent when they have booked
again meanwhile."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.business import Business
from bot.buttons import BookService, Button, Keyboard
from bot.clock import Clock, local_today
from bot.db.models import Customer, OutboxMessage
from bot.db.repositories import Database, Repos
from bot.outbox import SERVICE
from bot.outbox.compose import Obsolete
from bot.outbox.policy import Policy
from bot.rendering import Renderer
from bot.services.booking import BookingService

if TYPE_CHECKING:
    from bot.features import Features

TEMPLATE = "missed_you"


class MissedYou:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        business: Business,
        tz: ZoneInfo,
        render: Renderer,
        booking: BookingService,
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz
        self.render = render
        self.booking = booking
        self.policy = Policy(business.marketing, tz)

    def register(self, features: Features) -> None:
        features.plan("missed_you", self.plan)
        features.compose(self.compose, TEMPLATE)

    async def plan(self) -> int:
        """Planner: yesterday's no-shows get their message today (after the quiet hours); a key
        per customer and day, so however often it runs, it is once."""
        now = self.clock.now()
        today = local_today(self.clock, self.tz)
        yesterday = today - timedelta(days=1)
        start, _ = self.booking.finder.day_bounds(yesterday)
        today_start, today_end = self.booking.finder.day_bounds(today)
        when = self.policy.morning(max(now, today_start))
        if when >= today_end:
            return 0
        queued = 0
        async with self.db.transaction() as repos:
            for visit in await repos.waitlist.no_shows(start, today_start):
                queued += await repos.outbox.queue(
                    key=f"{TEMPLATE}:{visit.customer_id}:{yesterday.isoformat()}",
                    kind=SERVICE,
                    template=TEMPLATE,
                    customer_id=visit.customer_id,
                    data={"booking_id": visit.id},
                    not_before=when,
                    not_after=today_end,
                    now=now,
                )
        return queued

    async def compose(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard | None]:
        """Not sent to someone who booked again meanwhile; the button opens the booking of the
        same service."""
        visit = await repos.bookings.get(int(row.data["booking_id"]))
        if visit is None or customer is None:
            raise Obsolete("visit gone")
        if await repos.bookings.upcoming_of(customer.id, now):
            raise Obsolete("booked again")
        service = self.business.service(visit.service_id)
        if service is None:
            raise Obsolete("service no longer offered")
        lang = customer.language
        keyboard = [[Button(self.render.label(lang, "missed_you_book"), BookService(service.id))]]
        master = self.business.master(visit.master_id)
        return {"service": service, "master": master, "at": visit.starts_at}, keyboard
