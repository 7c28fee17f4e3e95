"""Booking: free slots, the customer's booking, the master's answer, reminders, the visit's end.

No double booking is a database fact: a booking holds its grid cells in `booking_cells`,
whose primary key (master, start) lets only one of two overlapping bookings in.
Every notice (to the master, the admin chat, the customer) goes through the outbox.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from bot.business import WEEKDAYS, Business, Master, Service
from bot.buttons import BookingAct, BookingAction, BookService, BookSlot, Button, Keyboard, dump
from bot.clock import Clock, local_today
from bot.db.deposits import LATE_CANCEL
from bot.db.models import (
    Booking,
    BookingSource,
    BookingState,
    Customer,
    MasterInvite,
    OutboxMessage,
)
from bot.db.repositories import ACTIVE_BOOKING, Database, Repos
from bot.events import CustomerErased, Events, SlotFreed
from bot.outbox import SERVICE
from bot.outbox.compose import Obsolete
from bot.rendering import Renderer
from bot.services.slots import Slot, SlotFinder, cells, spread
from bot.services.staff import Staff, StaffService

if TYPE_CHECKING:
    from bot.features import Features
    from bot.services.deposits import DepositService

INVITE_DAYS = 7


class BookOutcome(enum.Enum):
    BOOKED = "booked"
    TAKEN = "taken"  # someone was faster, or the master took the day off
    TOO_LATE = "too_late"  # in the past, or closer than the minimal notice
    INVALID = "invalid"  # not a slot we offer (a forged or outdated button)
    ALREADY = "already"  # the customer has an upcoming visit for this service
    NOT_CUSTOMER = "not_customer"
    HELD = "held"  # held while the customer pays its deposit (bot/services/deposits.py)
    CLOSED = "closed"  # a move inside the cancel window: the customer is asked to call


class ActOutcome(enum.Enum):
    DONE = "done"
    NOT_YOURS = "not_yours"
    ALREADY = "already"  # no longer in a state this action applies to
    TOO_EARLY = "too_early"  # marking a visit done before its day
    GONE = "gone"
    CLOSED = "closed"  # inside the cancel window: the customer is asked to call


@dataclass(frozen=True)
class Actor:
    """Who presses a booking button: the master (in their chat), a staff member (in the admin
    chat, checked by the handler's filter), or the customer."""

    tg_user_id: int
    name: str
    staff: bool = False


@dataclass(frozen=True)
class BookingView:
    id: int
    state: str
    customer_id: int
    customer_name: str | None
    customer_phone: str | None
    customer_tg: int | None
    service_id: str
    service: str
    price: int
    master_id: str
    master: str
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    decided_by: str | None
    customer_confirmed: bool


@dataclass(frozen=True)
class BookResult:
    outcome: BookOutcome
    booking: BookingView | None = None
    deposit_minor: int = 0  # HELD: the deposit asked
    why: str | None = None  # HELD: why they pay one (bot/services/deposits.py who_pays)


@dataclass(frozen=True)
class ActResult:
    outcome: ActOutcome
    booking: BookingView | None = None


class BookingService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        business: Business,
        tz: ZoneInfo,
        render: Renderer,
        staff: StaffService,
        admin_chat_id: int | None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.settings = business.booking
        self.tz = tz
        self.render = render
        self.staff = staff
        self.admin_chat_id = admin_chat_id
        self.finder = SlotFinder(business, tz)
        self.deposits: DepositService | None = None  # set by DepositService itself
        self.events = Events()  # the app's own once registered (SlotFreed's subscribers)

    def register(self, features: Features) -> None:
        """A customer's erasure cancels their visits ahead; unanswered requests are escalated; the
        booking notices are composed at send time, from the visit as it is then; a slot freed is
        told to whoever follows SlotFreed (the waitlist)."""
        self.events = features.events
        features.on_erased(self.cancel_for_erased)
        features.plan("escalations", self.escalate_unanswered)
        features.compose(
            self.compose,
            "booking_request",
            "booking_new_staff",
            "booking_escalated",
            "booking_confirmed",
            "booking_reminder",
            "booking_declined",
            "booking_cancelled_staff",
        )

    # ---- slots ---------------------------------------------------------------------------------

    def _days(self, first: date, count: int) -> list[date]:
        return [first + timedelta(days=i) for i in range(count)]

    async def _search(
        self, repos: Repos, service: Service, masters: list[Master], days: list[date]
    ) -> list[Slot]:
        if not days or not masters:
            return []
        ids = [m.id for m in masters]
        start, _ = self.finder.day_bounds(days[0])
        _, end = self.finder.day_bounds(days[-1])
        held = await repos.bookings.held(ids, start, end + timedelta(days=1))
        off = await repos.bookings.days_off(ids, days[0], days[-1])
        return self.finder.search(
            service, masters, days, held=held, days_off=off, now=self.clock.now()
        )

    def _masters(self, service: Service, master_id: str | None) -> list[Master]:
        masters = self.business.masters_of(service)
        return [m for m in masters if m.id == master_id] if master_id else masters

    def bookable_days(self) -> list[date]:
        return self._days(self.today(), self.settings.days_ahead)

    async def days_with_slots(self, service_id: str, master_id: str | None) -> list[date]:
        service = self.business.service(service_id)
        if service is None:
            return []
        async with self.db.transaction() as repos:
            slots = await self._search(
                repos, service, self._masters(service, master_id), self.bookable_days()
            )
        return sorted({self.finder.local_day(s.starts_at) for s in slots})

    async def slots_on(self, service_id: str, master_id: str | None, day: date) -> list[Slot]:
        """Free times of one day; with any master, one slot per time (the first master free)."""
        service = self.business.service(service_id)
        if service is None or day not in self.bookable_days():
            return []
        async with self.db.transaction() as repos:
            slots = await self._search(repos, service, self._masters(service, master_id), [day])
        first_per_time: dict[datetime, Slot] = {}
        for slot in slots:
            first_per_time.setdefault(slot.starts_at, slot)
        return list(first_per_time.values())

    async def offer(
        self, repos: Repos, service: Service, usual_master: str | None, first_day: date, limit: int
    ) -> list[Slot]:
        """Slots to offer a customer: their usual master first, then the others, a few a day."""
        days = self._days(
            first_day, max(1, self.settings.days_ahead - (first_day - self.bookable_days()[0]).days)
        )
        masters = self.business.masters_of(service)
        usual = [m for m in masters if m.id == usual_master]
        others = [m for m in masters if m.id != usual_master]
        picked = (
            spread(await self._search(repos, service, usual, days), limit, tz=self.tz)
            if usual
            else []
        )
        if len(picked) < limit:
            picked += spread(
                await self._search(repos, service, others, days), limit - len(picked), tz=self.tz
            )
        return picked

    def slot_keyboard(
        self,
        lang: str,
        service_id: str,
        slots: list[Slot],
        *,
        ask_first: bool = False,
        replaces: int = 0,
        show_master: bool = True,
    ) -> list[list[Button]]:
        """A button a row for each slot: it books at once (an offer), or asks first (the menu)."""
        rows = []
        for slot in slots:
            master = self.business.master(slot.master_id)
            text = self.render.label(
                lang,
                "slot_button",
                at=slot.starts_at.astimezone(self.tz),
                master=master.name if master and show_master else "",
            )
            rows.append(
                [
                    Button(
                        text,
                        BookSlot(service_id, slot.master_id, slot.starts_at, replaces, ask_first),
                    )
                ]
            )
        return rows

    def other_time_button(self, lang: str, service_id: str, replaces: int = 0) -> Button:
        return Button(self.render.label(lang, "other_time"), BookService(service_id, replaces))

    # ---- booking ---------------------------------------------------------------------------------

    async def book(
        self,
        tg_user_id: int,
        service_id: str,
        master_id: str,
        starts_at: datetime,
        *,
        source: str,
        replaces: int = 0,
    ) -> BookResult:
        service, master = self.business.service(service_id), self.business.master(master_id)
        if service is None or master is None or master not in self.business.masters_of(service):
            return BookResult(BookOutcome.INVALID)
        now = self.clock.now()
        if not self.finder.is_start(master, service, starts_at) or starts_at > now + timedelta(
            days=self.settings.days_ahead + 1
        ):
            return BookResult(BookOutcome.INVALID)
        if starts_at < self.finder.earliest(now):
            return BookResult(BookOutcome.TOO_LATE)
        try:
            async with self.db.transaction() as repos:
                customer = await repos.customers.by_tg_user(tg_user_id, for_update=True)
                if (
                    customer is None
                    or customer.onboarded_at is None
                    or customer.erased_at is not None
                ):
                    return BookResult(BookOutcome.NOT_CUSTOMER)
                day = self.finder.local_day(starts_at)
                if day in (await repos.bookings.days_off([master.id], day, day)).get(
                    master.id, set()
                ):
                    return BookResult(BookOutcome.TAKEN)
                upcoming = await repos.bookings.upcoming_of(customer.id, now)
                old = next((b for b in upcoming if b.id == replaces), None) if replaces else None
                if replaces and old is None:
                    return BookResult(BookOutcome.INVALID)
                same = next(
                    (b for b in upcoming if b.service_id == service_id and b.id != replaces), None
                )
                if same is not None:
                    return BookResult(BookOutcome.ALREADY, await self._view(repos, same))
                if old is not None and self.closed(old.starts_at):
                    return BookResult(BookOutcome.CLOSED, await self._view(repos, old))
                # a move keeps its deposit, paid or not asked; a new visit may ask one
                need = (
                    await self.deposits.required(repos, customer, service)
                    if self.deposits is not None and old is None
                    else None
                )
                if self.deposits is not None and old is None:  # a new hold replaces their last
                    await self.deposits.release_holds_of(repos, customer.id, now, service.id)
                if old is not None:
                    await self._cancel(repos, old, customer, reason="rescheduled", now=now)
                booking = await repos.bookings.add(
                    Booking(
                        customer_id=customer.id,
                        service_id=service.id,
                        master_id=master.id,
                        starts_at=starts_at,
                        ends_at=starts_at + timedelta(minutes=service.duration_minutes),
                        state=BookingState.HELD if need else BookingState.PENDING,
                        source=BookingSource.RESCHEDULE if old else source,
                        created_at=now,
                        answer_due_at=await self._answer_due(repos, master, now, starts_at),
                    ),
                    cells(starts_at, service.duration_minutes, self.finder.grid),
                )
                view = await self._view(repos, booking)
                if self.deposits is not None and old is not None:
                    await self.deposits.moved(repos, old, booking)
                if self.deposits is not None and need is not None:
                    await self.deposits.hold(repos, booking, customer, need[0], now)
                    return BookResult(BookOutcome.HELD, view, deposit_minor=need[0], why=need[1])
                await self._ask_master(repos, booking, now)
                return BookResult(BookOutcome.BOOKED, view)
        except IntegrityError:
            return BookResult(BookOutcome.TAKEN)

    async def _answer_due(
        self, repos: Repos, master: Master, now: datetime, starts_at: datetime
    ) -> datetime:
        """`master_answer_hours` of the master's working time from now (a request at night waits
        for the morning), and never after the visit itself."""
        remaining = timedelta(hours=self.settings.master_answer_hours)
        today = self.finder.local_day(now)
        off = (await repos.bookings.days_off([master.id], today, today + timedelta(days=14))).get(
            master.id, set()
        )
        for day in self._days(today, 14):
            hours = master.hours.get(WEEKDAYS[day.weekday()])
            if hours is None or day in off:
                continue
            begin = self.finder.at(day, hours.start.hour * 60 + hours.start.minute)
            end = self.finder.at(day, hours.end.hour * 60 + hours.end.minute)
            begin = max(begin, now)
            if begin >= end:
                continue
            if end - begin >= remaining:
                return min(begin + remaining, starts_at)
            remaining -= end - begin
        return min(now + timedelta(hours=self.settings.master_answer_hours), starts_at)

    async def _ask_master(self, repos: Repos, booking: Booking, now: datetime) -> None:
        """The master gets the request with accept/decline; the admin chat hears of it too (and,
        when the master has not joined yet, gets the buttons itself)."""
        account = await repos.bookings.account(booking.master_id)
        lang = self.business.staff_language
        buttons = self._decide_buttons(lang, booking.id)
        until = booking.starts_at
        if account is not None:
            await repos.outbox.queue(
                key=f"booking_request:{booking.id}",
                kind=SERVICE,
                template="booking_request",
                chat_id=account.tg_user_id,
                data={"booking_id": booking.id},
                markup=dump(buttons),
                not_before=now,
                not_after=until,
                now=now,
            )
        if self.admin_chat_id is not None:
            await repos.outbox.queue(
                key=f"booking_new:{booking.id}",
                kind=SERVICE,
                template="booking_new_staff",
                chat_id=self.admin_chat_id,
                data={"booking_id": booking.id, "master_joined": account is not None},
                markup=None if account is not None else dump(buttons),
                not_before=now,
                not_after=until,
                now=now,
            )

    def _decide_buttons(self, lang: str, booking_id: int) -> Keyboard:
        return [
            [
                Button(
                    self.render.label(lang, "booking_accept"),
                    BookingAction(BookingAct.ACCEPT, booking_id),
                ),
                Button(
                    self.render.label(lang, "booking_decline"),
                    BookingAction(BookingAct.DECLINE, booking_id),
                ),
            ]
        ]

    async def _view(self, repos: Repos, booking: Booking) -> BookingView:
        return (await self._views(repos, [booking]))[0]

    async def _views(self, repos: Repos, bookings: list[Booking]) -> list[BookingView]:
        """Views of these bookings with their customers, in one query however many they are."""
        ids = {b.customer_id for b in bookings}
        if len(ids) == 1:  # one customer: often in the session already, at no query
            (only,) = ids
            customers = {c.id: c for c in [await repos.customers.get(only)] if c is not None}
        else:
            customers = await repos.customers.by_ids(ids) if ids else {}
        return [self._view_of(b, customers.get(b.customer_id)) for b in bookings]

    def _view_of(self, booking: Booking, customer: Customer | None) -> BookingView:
        service, master = (
            self.business.service(booking.service_id),
            self.business.master(booking.master_id),
        )
        return BookingView(
            id=booking.id,
            state=booking.state,
            customer_id=booking.customer_id,
            customer_name=customer.name if customer else None,
            customer_phone=customer.phone if customer else None,
            customer_tg=customer.tg_user_id if customer else None,
            service_id=booking.service_id,
            service=service.name if service else booking.service_id,
            price=service.price if service else 0,
            master_id=booking.master_id,
            master=master.name if master else booking.master_id,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
            reason=booking.reason,
            decided_by=booking.decided_by,
            customer_confirmed=booking.customer_confirmed_at is not None,
        )

    async def view(self, booking_id: int) -> BookingView | None:
        async with self.db.transaction() as repos:
            booking = await repos.bookings.get(booking_id)
            return await self._view(repos, booking) if booking else None

    async def _acting(
        self, repos: Repos, booking_id: int, actor: Actor
    ) -> tuple[Booking | None, ActResult]:
        """The booking a master or the staff act on, locked; or why they cannot (gone, not theirs):
        a master acts on their own bookings only, the staff on any."""
        booking = await repos.bookings.get(booking_id, for_update=True)
        if booking is None:
            return None, ActResult(ActOutcome.GONE)
        if not actor.staff:
            account = await repos.bookings.account(booking.master_id)
            if account is None or account.tg_user_id != actor.tg_user_id:
                return None, ActResult(ActOutcome.NOT_YOURS)
        return booking, ActResult(ActOutcome.DONE)

    # ---- the master's answer -----------------------------------------------------------------

    def today(self) -> date:
        return local_today(self.clock, self.tz)

    async def may_decide(self, booking_id: int, actor: Actor) -> ActResult:
        """Whether this person may still answer this request (before asking them for a reason)."""
        async with self.db.transaction() as repos:
            booking, refused = await self._acting(repos, booking_id, actor)
            if booking is None:
                return refused
            view = await self._view(repos, booking)
            return ActResult(
                ActOutcome.DONE if booking.state == BookingState.PENDING else ActOutcome.ALREADY,
                view,
            )

    async def decide(
        self, booking_id: int, actor: Actor, *, accept: bool, reason: str | None = None
    ) -> ActResult:
        now = self.clock.now()
        async with self.db.transaction() as repos:
            booking, refused = await self._acting(repos, booking_id, actor)
            if booking is None:
                return refused
            if booking.state != BookingState.PENDING:
                return ActResult(ActOutcome.ALREADY, await self._view(repos, booking))
            booking.decided_at, booking.decided_by = now, actor.name
            await repos.outbox.skip_pending("answered", keys=[f"booking_escalated:{booking.id}"])
            if accept:
                booking.state = BookingState.CONFIRMED
                await repos.outbox.queue(
                    key=f"booking_confirmed:{booking.id}",
                    kind=SERVICE,
                    template="booking_confirmed",
                    customer_id=booking.customer_id,
                    data={"booking_id": booking.id, "buttons": "visit"},
                    not_before=now,
                    not_after=booking.starts_at,
                    now=now,
                )
                await self._plan_reminders(repos, booking, now)
            else:
                booking.state, booking.reason = (
                    BookingState.DECLINED,
                    (reason or "").strip()[:500] or None,
                )
                await repos.bookings.release(booking.id)
                await self._freed(repos, booking, "declined", now)
                if self.deposits is not None:
                    await self.deposits.cancelled(repos, booking, "declined", now)
                await repos.outbox.queue(
                    key=f"booking_declined:{booking.id}",
                    kind=SERVICE,
                    template="booking_declined",
                    customer_id=booking.customer_id,
                    data={"booking_id": booking.id},
                    not_before=now,
                    not_after=now + timedelta(days=2),
                    now=now,
                )
            return ActResult(ActOutcome.DONE, await self._view(repos, booking))

    async def _plan_reminders(self, repos: Repos, booking: Booking, now: datetime) -> None:
        for hours in sorted(set(self.settings.reminders_hours), reverse=True):
            at = booking.starts_at - timedelta(hours=hours)
            if at <= now + timedelta(minutes=30):
                continue  # the confirmation just came; a reminder now would only repeat it
            await repos.outbox.queue(
                key=f"reminder:{booking.id}:{hours:g}h",
                kind=SERVICE,
                template="booking_reminder",
                customer_id=booking.customer_id,
                data={"booking_id": booking.id, "hours": hours, "buttons": "visit_confirm"},
                not_before=at,
                not_after=booking.starts_at,
                now=now,
            )

    async def escalate_unanswered(self) -> int:
        """Planner: a request the master left unanswered goes to the admin chat, with the buttons."""
        if self.admin_chat_id is None:
            return 0
        now = self.clock.now()
        async with self.db.transaction() as repos:
            late = await repos.bookings.unanswered(now)
            for booking in late:
                booking.escalated_at = now
                await repos.outbox.queue(
                    key=f"booking_escalated:{booking.id}",
                    kind=SERVICE,
                    template="booking_escalated",
                    chat_id=self.admin_chat_id,
                    data={"booking_id": booking.id},
                    markup=dump(self._decide_buttons(self.business.staff_language, booking.id)),
                    not_before=now,
                    not_after=booking.starts_at,
                    now=now,
                )
        return len(late)

    # ---- the customer's actions ----------------------------------------------------------------

    async def _customer_booking(
        self, repos: Repos, booking_id: int, tg_user_id: int
    ) -> tuple[Booking | None, Customer | None]:
        customer = await repos.customers.by_tg_user(tg_user_id)
        booking = await repos.bookings.get(booking_id, for_update=True)
        if customer is None or booking is None or booking.customer_id != customer.id:
            return None, customer
        return booking, customer

    async def customer_view(self, tg_user_id: int, booking_id: int) -> BookingView | None:
        async with self.db.transaction() as repos:
            booking, _ = await self._customer_booking(repos, booking_id, tg_user_id)
            return await self._view(repos, booking) if booking else None

    async def confirm_attendance(self, tg_user_id: int, booking_id: int) -> ActResult:
        now = self.clock.now()
        async with self.db.transaction() as repos:
            booking, _ = await self._customer_booking(repos, booking_id, tg_user_id)
            if booking is None:
                return ActResult(ActOutcome.NOT_YOURS)
            if booking.state != BookingState.CONFIRMED or booking.starts_at <= now:
                return ActResult(ActOutcome.ALREADY, await self._view(repos, booking))
            booking.customer_confirmed_at = booking.customer_confirmed_at or now
            return ActResult(ActOutcome.DONE, await self._view(repos, booking))

    async def cancel(self, tg_user_id: int, booking_id: int) -> ActResult:
        now = self.clock.now()
        async with self.db.transaction() as repos:
            booking, customer = await self._customer_booking(repos, booking_id, tg_user_id)
            if booking is None or customer is None:
                return ActResult(ActOutcome.NOT_YOURS)
            if booking.state not in ACTIVE_BOOKING or booking.starts_at <= now:
                return ActResult(ActOutcome.ALREADY, await self._view(repos, booking))
            if self.closed(booking.starts_at):
                return ActResult(ActOutcome.CLOSED, await self._view(repos, booking))
            await self._cancel(repos, booking, customer, reason="customer", now=now)
            return ActResult(ActOutcome.DONE, await self._view(repos, booking))

    def closed(self, starts_at: datetime) -> bool:
        """Inside the cancel window ([deposits] cancel_window_hours): the customer can no longer
        cancel or move this visit in the bot; they call, and the staff cancel it (late)."""
        return self.deposits is not None and self.deposits.closed(starts_at)

    async def staff_cancel(self, booking_id: int, actor: Actor) -> ActResult:
        """The staff cancel a visit ahead (the customer called): inside the cancel window it is a
        late cancellation (counted like a no-show; a paid deposit is kept)."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            booking, refused = await self._acting(repos, booking_id, actor)
            if booking is None or not actor.staff:
                return refused if booking is None else ActResult(ActOutcome.NOT_YOURS)
            if booking.state not in ACTIVE_BOOKING or booking.starts_at <= now:
                return ActResult(ActOutcome.ALREADY, await self._view(repos, booking))
            customer = await repos.customers.get(booking.customer_id)
            assert customer is not None
            reason = LATE_CANCEL if self.closed(booking.starts_at) else "staff"
            booking.decided_by = actor.name
            await self._cancel(repos, booking, customer, reason=reason, now=now)
            return ActResult(ActOutcome.DONE, await self._view(repos, booking))

    async def _cancel(
        self, repos: Repos, booking: Booking, customer: Customer, *, reason: str, now: datetime
    ) -> None:
        """Free the slot, drop the reminders, and tell the master (and the admin chat)."""
        booking.state, booking.reason, booking.decided_at = BookingState.CANCELLED, reason, now
        await repos.bookings.release(booking.id)
        await self._freed(repos, booking, reason, now)
        if self.deposits is not None:
            await self.deposits.cancelled(repos, booking, reason, now)
        await repos.outbox.skip_pending(
            "cancelled",
            prefix=f"reminder:{booking.id}:",
            keys=[
                f"{kind}:{booking.id}"
                for kind in ("booking_request", "booking_confirmed", "booking_escalated")
            ],
        )
        await self.tell_staff(
            repos,
            booking,
            "booking_cancelled_staff",
            not_after=max(booking.starts_at, now + timedelta(hours=1)),
            now=now,
        )

    async def tell_staff(
        self, repos: Repos, booking: Booking, template: str, *, not_after: datetime, now: datetime
    ) -> None:
        """A service message about this visit to its master's chat and to the admin chat (once
        where they are one chat), keyed by template, visit and chat."""
        account = await repos.bookings.account(booking.master_id)
        chats = ([account.tg_user_id] if account else []) + (
            [self.admin_chat_id] if self.admin_chat_id else []
        )
        for chat_id in dict.fromkeys(chats):
            await repos.outbox.queue(
                key=f"{template.removesuffix('_staff')}:{booking.id}:{chat_id}",
                kind=SERVICE,
                template=template,
                chat_id=chat_id,
                data={"booking_id": booking.id},
                not_before=now,
                not_after=not_after,
                now=now,
            )

    async def _freed(self, repos: Repos, booking: Booking, reason: str, now: datetime) -> None:
        """The visit's time is free again: SlotFreed, in this transaction (a visit already past
        frees nothing anyone could take)."""
        if booking.starts_at > now:
            await self.events.slot_freed(
                repos,
                SlotFreed(booking.master_id, booking.starts_at, booking.service_id, reason, now),
            )

    def is_active(self, visit: BookingView) -> bool:
        """Still ahead and not cancelled: the customer may move or cancel it."""
        return visit.state in ACTIVE_BOOKING and visit.starts_at > self.clock.now()

    async def cancel_for_erased(self, repos: Repos, event: CustomerErased) -> None:
        """Subscribed to `/forget`: the visits ahead are cancelled and their masters told."""
        customer = await repos.customers.get(event.customer_id)
        if customer is None:
            return
        for booking in await repos.bookings.upcoming_of(customer.id, event.at):
            await self._cancel(repos, booking, customer, reason="erased", now=event.at)

    async def upcoming(self, tg_user_id: int) -> list[BookingView]:
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            if customer is None:
                return []
            return await self._views(
                repos, await repos.bookings.upcoming_of(customer.id, self.clock.now())
            )

    # ---- the master's day ----------------------------------------------------------------------

    async def master_of(self, tg_user_id: int) -> Master | None:
        async with self.db.transaction() as repos:
            return self.business.master(await repos.bookings.master_of_user(tg_user_id))

    async def schedule(self, master_ids: list[str], day: date) -> list[BookingView]:
        start, end = self.finder.day_bounds(day)
        async with self.db.transaction() as repos:
            found = await repos.bookings.of_masters(master_ids, start, end)
            return await self._views(repos, sorted(found, key=lambda b: (b.starts_at, b.master_id)))

    async def close(self, booking_id: int, actor: Actor, *, done: bool) -> ActResult:
        """After the visit: done records the sale (price from the service), so the survey, the
        thank-you offer and cycle learning follow; no-show is counted on the customer's card."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            booking, refused = await self._acting(repos, booking_id, actor)
            if booking is None:
                return refused
            if booking.state not in ACTIVE_BOOKING:
                return ActResult(ActOutcome.ALREADY, await self._view(repos, booking))
            if self.finder.local_day(booking.starts_at) > self.finder.local_day(now):
                return ActResult(ActOutcome.TOO_EARLY, await self._view(repos, booking))
            booking.decided_by = booking.decided_by or actor.name
            await repos.outbox.skip_pending("visit closed", prefix=f"reminder:{booking.id}:")
            if done:
                service = self.business.service(booking.service_id)
                sale = await self.staff.record_sale_in(
                    repos,
                    Staff(actor.tg_user_id, actor.name),
                    booking.customer_id,
                    (service.price if service else 0) * 100 or 1,
                    booking.service_id,
                    booking.master_id,
                    as_booked=True,
                )
                booking.state, booking.purchase_id = BookingState.DONE, sale.purchase_id
            else:
                booking.state = BookingState.NO_SHOW
                if self.deposits is not None:
                    await self.deposits.no_show(repos, booking, now)
            return ActResult(ActOutcome.DONE, await self._view(repos, booking))

    # ---- masters and their days off ----------------------------------------------------------

    async def invite(self, master_id: str, by: str) -> str:
        now = self.clock.now()
        token = secrets.token_urlsafe(12)
        async with self.db.transaction() as repos:
            repos.bookings.add_invite(
                MasterInvite(
                    token=token,
                    master_id=master_id,
                    created_by=by,
                    created_at=now,
                    expires_at=now + timedelta(days=INVITE_DAYS),
                )
            )
        return token

    async def join(self, tg_user_id: int, token: str) -> Master | None:
        """A master opens their invite link: one use, within its week."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            invite = await repos.bookings.invite(token)
            if invite is None or invite.used_at is not None or invite.expires_at <= now:
                return None
            master = self.business.master(invite.master_id)
            if master is None:
                return None
            invite.used_at = now
            await repos.bookings.bind_master(master.id, tg_user_id, now)
            return master

    async def day_off(self, master_id: str, day: date, by: str) -> tuple[bool, list[BookingView]]:
        """Mark a day off; returns whether it is new, and the visits already booked that day
        (they stay: someone has to call those customers, and the answer lists them)."""
        start, end = self.finder.day_bounds(day)
        async with self.db.transaction() as repos:
            added = await repos.bookings.set_day_off(master_id, day, by, self.clock.now())
            booked = [
                b
                for b in await repos.bookings.of_masters([master_id], start, end)
                if b.state in ACTIVE_BOOKING
            ]
            return added, await self._views(repos, booked)

    async def day_back(self, master_id: str, day: date) -> bool:
        """A day off taken back (`/workday`): the master works that day after all; False when it
        was no day off. Its working hours are free again: SlotFreed for each start of them, so
        the waitlist offers them (one time a customer, bot/services/waitlist.py)."""
        master = self.business.master(master_id)
        now = self.clock.now()
        async with self.db.transaction() as repos:
            if master is None or not await repos.bookings.drop_day_off(master_id, day):
                return False
            hours = master.hours.get(WEEKDAYS[day.weekday()])
            if hours is None:
                return True
            grid = self.finder.grid
            first = -(-(hours.start.hour * 60 + hours.start.minute) // grid) * grid
            for minute in range(first, hours.end.hour * 60 + hours.end.minute, grid):
                at = self.finder.at(day, minute)
                if at > now:
                    freed = SlotFreed(master_id, at, "", "day_back", now)
                    await self.events.slot_freed(repos, freed)
            return True

    # ---- composing the outbox messages about bookings ----------------------------------------

    async def compose(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard | None]:
        """Context and buttons for a booking message at the moment it is sent (None: the row's
        own); a message whose visit changed meanwhile (cancelled, already answered) is not sent."""
        booking = await repos.bookings.get(int(row.data["booking_id"]))
        if booking is None:
            raise Obsolete("booking gone")
        view = await self._view(repos, booking)
        wanted = {
            "booking_request": BookingState.PENDING,
            "booking_escalated": BookingState.PENDING,
            "booking_confirmed": BookingState.CONFIRMED,
            "booking_reminder": BookingState.CONFIRMED,
            "booking_declined": BookingState.DECLINED,
        }.get(row.template)
        if wanted and booking.state != wanted:
            raise Obsolete(f"booking is {booking.state}")
        keyboard: Keyboard | None = None
        lang = customer.language if customer else self.business.staff_language
        buttons = row.data.get("buttons")  # the customer's buttons, in their language
        if buttons in ("visit", "visit_confirm"):
            keyboard = self._customer_buttons(lang, booking.id, confirm=buttons == "visit_confirm")
        if row.template == "booking_declined":
            service = self.business.service(booking.service_id)
            slots = (
                await self.offer(
                    repos,
                    service,
                    booking.master_id,
                    self.finder.local_day(now),
                    self.settings.offer_slots,
                )
                if service
                else []
            )
            keyboard = [
                *self.slot_keyboard(lang, booking.service_id, slots),
                [self.other_time_button(lang, booking.service_id)],
            ]
        return {"booking": view}, keyboard

    def _customer_buttons(self, lang: str, booking_id: int, *, confirm: bool) -> Keyboard:
        actions = ([BookingAct.CONFIRM] if confirm else []) + [
            BookingAct.RESCHEDULE,
            BookingAct.CANCEL,
        ]
        return [
            [
                Button(self.render.label(lang, f"visit_{a}"), BookingAction(a, booking_id))
                for a in actions
            ]
        ]
