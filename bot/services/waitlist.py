"""The waitlist (`[waitlist]`): a customer for whom no time fits waits for one; a freed time is
offered to the waiting ones whose wishes fit.

- An entry is a service, a master or any, a range of local days and optionally a time of day
  (`from_minute` ≤ the start's minute < `to_minute`). `/waitlist` lists them; an entry is left
  with a button, and deleted by the planner after its last day.
- A time frees (SlotFreed: a visit cancelled or moved, a request declined, an unpaid deposit hold
  released, a day off taken back: each of its starts): inside that transaction, the entries that
  fit it (its service fits there, on that master, that day, that time of day), in order of
  joining, get an offer, `offer_at_once` customers at a time, through the outbox (a service
  message: they asked for it); of a whole day freed at once, one offer a customer. Nobody
  took it by `answer_by`: the planner offers it to the next ones. Earlier offers stay valid:
  whoever taps first books it.
- A tap books through BookingService.book, the one booking path (its cells' primary key lets one
  of two racing customers in; the master confirms as for any request; a visit that asks a deposit
  is held while the taker pays, and an unpaid hold frees the time again: SlotFreed). The others
  who tap hear that it is gone and keep their entries.
- Quiet hours: an offer waits for their end, unless the time starts within `soon_hours` of that
  end; such a time goes at once as a service message (`soon_in_quiet_hours = "send"`) or is not
  offered at all (`"skip"`).
- /forget deletes the customer's entries and offers; /mydata shows them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.business import Business, Master, Service
from bot.buttons import Button, Keyboard, TakeWaitlistOffer
from bot.clock import Clock, local_today
from bot.db.models import Customer, OutboxMessage, WaitlistEntry, WaitlistOffer, WaitlistOfferState
from bot.db.repositories import Database, Repos
from bot.events import CustomerErased, SlotFreed
from bot.outbox import SERVICE
from bot.outbox.compose import Obsolete
from bot.outbox.policy import Policy
from bot.rendering import Renderer
from bot.services.booking import BookingService, BookingView, BookOutcome, BookResult

if TYPE_CHECKING:
    from bot.features import Features

OFFER_TEMPLATE = "waitlist_offer"
OFFER_KEY = "waitlist_offer:"  # + the offer's id


class DayPart(StrEnum):
    """The time of day a customer may choose: the visit starts within it."""

    ANY = "any"
    MORNING = "am"  # before 12:00
    AFTERNOON = "day"  # 12:00-17:00
    EVENING = "eve"  # from 17:00


PART_MINUTES: dict[DayPart, tuple[int | None, int | None]] = {
    DayPart.ANY: (None, None),
    DayPart.MORNING: (None, 12 * 60),
    DayPart.AFTERNOON: (12 * 60, 17 * 60),
    DayPart.EVENING: (17 * 60, None),
}


def part_of(from_minute: int | None, to_minute: int | None) -> DayPart | None:
    return next((p for p, span in PART_MINUTES.items() if span == (from_minute, to_minute)), None)


class JoinOutcome(enum.Enum):
    JOINED = "joined"
    ALREADY = "already"  # an entry of theirs covers it already
    TOO_MANY = "too_many"
    INVALID = "invalid"  # a forged or outdated button: no such service, master or days
    OFF = "off"  # the waitlist is switched off
    NOT_CUSTOMER = "not_customer"


class TakeOutcome(enum.Enum):
    BOOKED = "booked"
    HELD = "held"  # theirs while they pay the deposit ([deposits]): the invoice goes next
    GONE = "gone"  # someone was faster, or the time is no longer free or bookable
    ALREADY = "already"  # they have a visit for this service ahead
    NOT_YOURS = "not_yours"
    NOT_CUSTOMER = "not_customer"


@dataclass(frozen=True)
class EntryView:
    id: int
    service_id: str
    service: str
    master_id: str | None
    master: str | None
    first_day: date
    last_day: date
    part: DayPart | None


@dataclass(frozen=True)
class JoinResult:
    outcome: JoinOutcome
    entry: EntryView | None = None


@dataclass(frozen=True)
class TakeResult:
    outcome: TakeOutcome
    booking: BookingView | None = None
    held: BookResult | None = None  # HELD: the booking path's answer, for the invoice


def fits(entry: WaitlistEntry, service_id: str, master_id: str, day: date, minute: int) -> bool:
    """Whether a start on this master, local day and minute of the day is one the entry wants
    for this service."""
    return (
        entry.service_id == service_id
        and entry.master_id in (None, master_id)
        and entry.first_day <= day <= entry.last_day
        and (entry.from_minute is None or minute >= entry.from_minute)
        and (entry.to_minute is None or minute < entry.to_minute)
    )


def pick(
    entries: Iterable[WaitlistEntry],
    free_services: Iterable[str],
    master_id: str,
    day: date,
    minute: int,
    limit: int,
) -> list[WaitlistEntry]:
    """The entries to offer a freed start: in the order given (of joining), those it fits, for a
    service that fits there, one per customer, at most `limit`."""
    free = set(free_services)
    picked: list[WaitlistEntry] = []
    customers: set[int] = set()
    for entry in entries:
        if len(picked) >= limit:
            break
        if entry.customer_id in customers or entry.service_id not in free:
            continue
        if fits(entry, entry.service_id, master_id, day, minute):
            picked.append(entry)
            customers.add(entry.customer_id)
    return picked


class WaitlistService:
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
        self.settings = business.waitlist
        self.tz = tz
        self.render = render
        self.booking = booking
        self.finder = booking.finder
        self.policy = Policy(business.marketing, tz)

    def register(self, features: Features) -> None:
        """A freed time is offered in its own transaction; the planner drops ended entries and
        offers untaken times to the next ones; offers are composed at send time (a time booked
        meanwhile is not offered); /forget deletes the customer's rows."""
        features.on_slot_freed(self.slot_freed)
        features.on_erased(self.erase)
        features.plan("waitlist", self.plan)
        features.compose(self.compose, OFFER_TEMPLATE)

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def today(self) -> date:
        return local_today(self.clock, self.tz)

    def last_day(self) -> date:
        """The furthest day one can wait for: as far as one can book."""
        return self.today() + timedelta(days=self.business.booking.days_ahead - 1)

    # ---- the customer's entries ------------------------------------------------------------------

    def _view(self, entry: WaitlistEntry) -> EntryView:
        service = self.business.service(entry.service_id)
        master = self.business.master(entry.master_id) if entry.master_id else None
        return EntryView(
            id=entry.id,
            service_id=entry.service_id,
            service=service.name if service else entry.service_id,
            master_id=entry.master_id,
            master=master.name if master else entry.master_id,
            first_day=entry.first_day,
            last_day=entry.last_day,
            part=part_of(entry.from_minute, entry.to_minute),
        )

    async def join(
        self,
        tg_user_id: int,
        service_id: str,
        master_id: str | None,
        first_day: date,
        last_day: date,
        part: DayPart,
    ) -> JoinResult:
        if not self.enabled:
            return JoinResult(JoinOutcome.OFF)
        service = self.business.service(service_id)
        masters = self.business.masters_of(service) if service else []
        if (
            service is None
            or (master_id is not None and self.business.master(master_id) not in masters)
            or first_day < self.today()
            or last_day < first_day
            or last_day > self.last_day()
        ):
            return JoinResult(JoinOutcome.INVALID)
        from_minute, to_minute = PART_MINUTES[part]
        now = self.clock.now()
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id, for_update=True)
            if customer is None or customer.onboarded_at is None or customer.erased_at is not None:
                return JoinResult(JoinOutcome.NOT_CUSTOMER)
            mine = await repos.waitlist.entries_of(customer.id)
            for entry in mine:
                if (
                    entry.service_id == service_id
                    and entry.master_id == master_id
                    and entry.first_day <= first_day
                    and last_day <= entry.last_day
                    and (entry.from_minute, entry.to_minute) in ((None, None), PART_MINUTES[part])
                ):
                    return JoinResult(JoinOutcome.ALREADY, self._view(entry))
            if len(mine) >= self.settings.max_entries:
                return JoinResult(JoinOutcome.TOO_MANY)
            entry = await repos.waitlist.add_entry(
                WaitlistEntry(
                    customer_id=customer.id,
                    service_id=service_id,
                    master_id=master_id,
                    first_day=first_day,
                    last_day=last_day,
                    from_minute=from_minute,
                    to_minute=to_minute,
                    created_at=now,
                )
            )
            return JoinResult(JoinOutcome.JOINED, self._view(entry))

    async def entries(self, tg_user_id: int) -> list[EntryView]:
        """The customer's entries still waiting (one past its last day is not shown, even before
        the planner drops it)."""
        today = self.today()
        async with self.db.reading() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            if customer is None:
                return []
            return [
                self._view(e)
                for e in await repos.waitlist.entries_of(customer.id)
                if e.last_day >= today
            ]

    async def leave(self, tg_user_id: int, entry_id: int) -> bool:
        """Leave one entry of theirs; False: not theirs, or gone already."""
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            entry = await repos.waitlist.entry(entry_id)
            if customer is None or entry is None or entry.customer_id != customer.id:
                return False
            await repos.waitlist.drop_entries([entry.id])
            return True

    async def erase(self, repos: Repos, event: CustomerErased) -> None:
        await repos.waitlist.erase(event.customer_id)

    # ---- offering a freed time -------------------------------------------------------------------

    async def slot_freed(self, repos: Repos, event: SlotFreed) -> None:
        """Subscribed to SlotFreed: offer the time to the first waiting ones, in its transaction."""
        if self.enabled:
            await self._offer(repos, event.master_id, event.starts_at, event.at)

    def _when(self, starts_at: datetime, now: datetime) -> datetime | None:
        """When an offer of this time goes: now, at the end of the quiet hours, or (a time too
        soon to wait for the morning, with soon_in_quiet_hours = "skip") never."""
        quiet_end = self.policy.quiet_until(now)
        if quiet_end is None:
            return now
        if starts_at - quiet_end >= timedelta(hours=self.settings.soon_hours):
            return quiet_end
        return now if self.settings.soon_in_quiet_hours == "send" else None

    async def _free_services(
        self, repos: Repos, master: Master, starts_at: datetime, now: datetime
    ) -> list[Service]:
        """The master's services that could start at this time now (free for their whole length,
        not a day off, far enough ahead)."""
        day = self.finder.local_day(starts_at)
        start, end = self.finder.day_bounds(day)
        held = (await repos.bookings.held([master.id], start, end + timedelta(days=1))).get(
            master.id, set()
        )
        off = (await repos.bookings.days_off([master.id], day, day)).get(master.id, set())
        return [
            service
            for service in self.business.services
            if master in self.business.masters_of(service)
            and starts_at
            in {
                s.starts_at
                for s in self.finder.free(master, service, day, held=held, days_off=off, now=now)
            }
        ]

    async def _offer(self, repos: Repos, master_id: str, starts_at: datetime, now: datetime) -> int:
        """Offer this start to the next `offer_at_once` customers whose entries fit; how many."""
        master = self.business.master(master_id)
        if master is None or starts_at > now + timedelta(days=self.business.booking.days_ahead + 1):
            return 0
        when = self._when(starts_at, now)
        if when is None:
            return 0
        free = await self._free_services(repos, master, starts_at, now)
        if not free:
            return 0
        day = self.finder.local_day(starts_at)
        local = starts_at.astimezone(self.tz)
        waiting = await repos.waitlist.waiting_for(
            [s.id for s in free],
            master.id,
            day,
            starts_at,
            day_bounds=self.finder.day_bounds(day),
            offered_at=when,
        )
        chosen = pick(
            waiting,
            [s.id for s in free],
            master.id,
            day,
            local.hour * 60 + local.minute,
            self.settings.offer_at_once,
        )
        until = starts_at - timedelta(minutes=self.business.booking.min_notice_minutes)
        for entry in chosen:
            offer = await repos.waitlist.add_offer(
                WaitlistOffer(
                    customer_id=entry.customer_id,
                    entry_id=entry.id,
                    service_id=entry.service_id,
                    master_id=master.id,
                    starts_at=starts_at,
                    offered_at=when,
                    answer_by=when + timedelta(minutes=self.settings.answer_minutes),
                    state=WaitlistOfferState.OFFERED,
                )
            )
            await repos.outbox.queue(
                key=f"{OFFER_KEY}{offer.id}",
                kind=SERVICE,
                template=OFFER_TEMPLATE,
                customer_id=entry.customer_id,
                data={"offer_id": offer.id},
                not_before=when,
                not_after=max(until, when),
                now=now,
            )
        return len(chosen)

    async def plan(self) -> int:
        """Planner: entries past their last day are dropped; a time whose offers went unanswered
        is offered to the next ones (or, booked or no longer free, its offers are closed)."""
        now = self.clock.now()
        done = 0
        async with self.db.transaction() as repos:
            done += await repos.waitlist.drop_entries(await repos.waitlist.ended(self.today()))
            if not self.enabled:
                return done
            earliest = self.finder.earliest(now)
            for master_id, starts_at in await repos.waitlist.rounds_over(now, earliest):
                master = self.business.master(master_id)
                if master is None or not await self._free_services(repos, master, starts_at, now):
                    await self._close(repos, master_id, starts_at)
                    continue
                done += await self._offer(repos, master_id, starts_at, now)
        return done

    async def _close(self, repos: Repos, master_id: str, starts_at: datetime) -> None:
        """The time is booked or no longer free: its open offers are gone, unsent ones dropped."""
        ids = await repos.waitlist.close_offers(master_id, starts_at)
        if ids:
            await repos.outbox.skip_pending("taken", keys=[f"{OFFER_KEY}{i}" for i in ids])

    # ---- the tap -----------------------------------------------------------------------------------

    async def take(self, tg_user_id: int, offer_id: int) -> TakeResult:
        """The customer taps "book it": the booking path decides who gets the time; the others
        keep their entries."""
        async with self.db.reading() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            offer = await repos.waitlist.offer(offer_id)
            if customer is None or offer is None or offer.customer_id != customer.id:
                return TakeResult(TakeOutcome.NOT_YOURS)
            state, slot = offer.state, (offer.service_id, offer.master_id, offer.starts_at)
        if state == WaitlistOfferState.GONE:
            return TakeResult(TakeOutcome.GONE)
        if state == WaitlistOfferState.TAKEN:
            return TakeResult(TakeOutcome.ALREADY)
        result = await self.booking.book(tg_user_id, *slot, source="offer")
        if result.outcome is BookOutcome.NOT_CUSTOMER:
            return TakeResult(TakeOutcome.NOT_CUSTOMER)
        if result.outcome is BookOutcome.ALREADY:
            return TakeResult(TakeOutcome.ALREADY, result.booking)
        async with self.db.transaction() as repos:
            mine = await repos.waitlist.offer(offer_id, for_update=True)
            if mine is None:  # erased meanwhile
                return TakeResult(TakeOutcome.NOT_YOURS)
            if result.outcome not in (BookOutcome.BOOKED, BookOutcome.HELD):
                # taken, too late, no longer a slot
                if mine.state == WaitlistOfferState.OFFERED:
                    mine.state = WaitlistOfferState.GONE
                return TakeResult(TakeOutcome.GONE)
            mine.state = WaitlistOfferState.TAKEN
            await self._close(repos, mine.master_id, mine.starts_at)
            if mine.entry_id is not None:
                await repos.waitlist.drop_entries([mine.entry_id])
        if result.outcome is BookOutcome.HELD:  # a deposit first; unpaid, the hold frees it again
            return TakeResult(TakeOutcome.HELD, result.booking, result)
        return TakeResult(TakeOutcome.BOOKED, result.booking)

    # ---- composing the offer -----------------------------------------------------------------------

    async def compose(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard | None]:
        """The offer at send time: a time booked meanwhile (or taken by another waiting customer)
        is not offered."""
        offer = await repos.waitlist.offer(int(row.data["offer_id"]), for_update=True)
        if offer is None or offer.state != WaitlistOfferState.OFFERED:
            raise Obsolete("offer closed")
        master = self.business.master(offer.master_id)
        service = self.business.service(offer.service_id)
        if (
            master is None
            or service is None
            or service not in await self._free_services(repos, master, offer.starts_at, now)
        ):
            offer.state = WaitlistOfferState.GONE
            raise Obsolete("time no longer free")
        lang = customer.language if customer else self.business.staff_language
        keyboard: Sequence[Sequence[Button]] = [
            [Button(self.render.label(lang, "waitlist_take"), TakeWaitlistOffer(offer.id))]
        ]
        return {"service": service, "master": master, "at": offer.starts_at}, keyboard
