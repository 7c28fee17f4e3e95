"""Deposits through Telegram Payments, and the no-show policy (`[deposits]` in the business file).

Who pays (`who_pays`): nobody when the policy is "none"; otherwise customers staff marked "only
with deposit", and by the policy first-time customers, customers with `no_show_threshold`
no-shows or late cancellations, or everyone — for the `services` listed (empty: any). Without a
PAYMENT_PROVIDER_TOKEN nobody is asked (the start-up log says deposits are off).

A booking that asks a deposit is HELD: a booking in state `held` whose grid cells are taken as
any booking's (so the time is race-safe in the database), with a `deposits` row awaiting the
payment until `hold_until`. The customer gets an invoice; Telegram's `pre_checkout_query` is
approved only while the hold is still theirs; `successful_payment` confirms the visit (the
master and the admin chat are told, reminders planned). A hold not paid in time is released by
the `deposit_holds` planner (the time is free again: `SlotFreed`). A payment that arrives after
its hold was released takes the time back if it is still free; if someone else has it, the
payment is recorded as refund due, the staff are told and the customer is answered politely:
never two visits in one time.

The deposit is settled when the visit is: counted into the sale of that visit's service (staff's
/sale or the master's "done"; the sale keeps the full price, the admin chat is told the deposit
was paid already and what is left to collect), kept on a no-show or a late cancellation, or
refund due (cancelled in time, declined, a payment whose time was lost; staff refund it by hand).
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision
from sqlalchemy.exc import IntegrityError

from bot.business import Business, Service
from bot.buttons import BookingAct, BookingAction, BookService, Button, Keyboard
from bot.clock import Clock
from bot.db.deposits import LATE_CANCEL
from bot.db.models import (
    ACTIVE_BOOKING,
    Booking,
    BookingCell,
    BookingState,
    Customer,
    Deposit,
    DepositMark,
    DepositState,
    OutboxMessage,
    StaffAction,
)
from bot.db.repositories import Database, Repos
from bot.events import CustomerErased, Events, PurchaseRecorded, SlotFreed
from bot.outbox import SERVICE
from bot.outbox.compose import Obsolete
from bot.rendering import Renderer
from bot.services.slots import cells

if TYPE_CHECKING:
    from bot.features import Features
    from bot.services.booking import BookingService, BookingView

log = logging.getLogger("carebot.deposits")

PAYLOAD_PREFIX = "dep:"
# Why a customer pays, as the hold message explains it.
MARKED, FIRST_VISIT, NO_SHOWS, EVERYONE = "marked", "first_visit", "no_shows", "everyone"
# The admin chat's notice of a deposit settled (its key's prefix; its template adds "_staff").
STAFF_NOTICE = {DepositState.KEPT: "deposit_kept", DepositState.REFUND_DUE: "deposit_refund"}


def who_pays(
    policy: str, *, marked: bool, visited: bool, misses: int, threshold: int
) -> str | None:
    """Why this customer pays a deposit under this policy (None: they do not). The staff's mark
    counts under any policy but "none" (deposits off)."""
    if policy == "none":
        return None
    if marked:
        return MARKED
    if policy == "everyone":
        return EVERYONE
    if policy == "first_visit" and not visited:
        return FIRST_VISIT
    if policy == "no_shows" and misses >= threshold:
        return NO_SHOWS
    return None


def minor_units(amount: float, currency: str) -> int:
    """An amount in the currency's units as Telegram counts it: in its smallest units (kopecks,
    cents; `exp` of Telegram's currencies.json, Babel's precision)."""
    return int(round(amount * 10 ** get_currency_precision(currency)))


@dataclass(frozen=True)
class Invoice:
    """An invoice to send (the Telegram edge turns it into sendInvoice)."""

    chat_id: int
    title: str
    description: str
    payload: str
    currency: str
    label: str
    amount_minor: int
    provider_token: str


@dataclass(frozen=True)
class DepositView:
    id: int
    booking_id: int
    amount_minor: int
    currency: str
    state: str
    hold_until: datetime
    reason: str | None
    telegram_charge_id: str | None
    provider_charge_id: str | None

    @classmethod
    def of(cls, deposit: Deposit) -> DepositView:
        return cls(
            deposit.id,
            deposit.booking_id,
            deposit.amount_minor,
            deposit.currency,
            deposit.state,
            deposit.hold_until,
            deposit.reason,
            deposit.telegram_charge_id,
            deposit.provider_charge_id,
        )


class PaidOutcome(enum.Enum):
    CONFIRMED = "confirmed"  # the visit stands
    REFUND_DUE = "refund_due"  # the time was lost: the staff refund it
    ALREADY = "already"  # the same payment told twice: nothing more
    UNKNOWN = "unknown"  # no deposit of ours (the staff are told)


@dataclass(frozen=True)
class Paid:
    outcome: PaidOutcome
    booking: BookingView | None = None
    deposit: DepositView | None = None


class DepositService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        business: Business,
        tz: ZoneInfo,
        render: Renderer,
        events: Events,
        booking: BookingService,
        admin_chat_id: int | None,
        provider_token: str | None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.rule = business.deposits
        self.tz = tz
        self.render = render
        self.events = events
        self.booking = booking
        self.admin_chat_id = admin_chat_id
        self.provider_token = provider_token
        self.currency = business.deposit_currency or ""
        # asked only with a provider connected; the policy's counts and window work without one
        self.enabled = self.rule.on and bool(provider_token)
        booking.deposits = self

    def register(self, features: Features) -> None:
        features.plan("deposit_holds", self.release_expired)
        features.on_erased(self.forget)
        features.on_purchase(self.count_into_sale)
        features.compose(
            self.compose,
            "deposit_expired",
            "deposit_paid_staff",
            "deposit_refund_staff",
            "deposit_counted_staff",
            "deposit_kept_staff",
            "deposit_policy_on",
        )

    def startup_note(self) -> str | None:
        """The start-up log's word on deposits when the business file asks for them but they
        cannot be taken (None: nothing to say)."""
        if self.rule.on and not self.provider_token:
            return (
                f"deposits are OFF: the business file's [deposits] policy is {self.rule.policy!r} "
                "but PAYMENT_PROVIDER_TOKEN is not set (@BotFather → Payments); nobody is asked "
                "to pay, the cancel window and the no-show count still apply"
            )
        return None

    # ---- who pays, and how much ----------------------------------------------------------------

    def amount_for(self, service: Service) -> int:
        """The deposit for this service, in the currency's smallest units (0: none)."""
        if self.rule.amount is not None:
            return minor_units(self.rule.amount, self.currency)
        percent = self.rule.percent or 0
        return max(0, math.floor(minor_units(service.price, self.currency) * percent / 100))

    async def required(
        self, repos: Repos, customer: Customer, service: Service
    ) -> tuple[int, str] | None:
        """(amount, why) when this customer pays a deposit for this service; None otherwise."""
        if not self.enabled or (self.rule.services and service.id not in self.rule.services):
            return None
        amount = self.amount_for(service)
        if amount <= 0:
            return None
        policy = self.rule.policy
        why = who_pays(
            policy,
            marked=await repos.deposits.mark(customer.id) is not None,
            visited=policy == "first_visit" and await repos.deposits.has_visited(customer.id),
            misses=await repos.deposits.misses(customer.id) if policy == "no_shows" else 0,
            threshold=self.rule.no_show_threshold,
        )
        return (amount, why) if why else None

    def closed(self, starts_at: datetime) -> bool:
        """Inside the cancel window: the customer can no longer cancel or move it in the bot."""
        window = self.rule.cancel_window_hours
        return (
            self.rule.on and window > 0 and starts_at - self.clock.now() < timedelta(hours=window)
        )

    # ---- the hold -------------------------------------------------------------------------------

    async def hold(
        self, repos: Repos, booking: Booking, customer: Customer, amount: int, now: datetime
    ) -> Deposit:
        return await repos.deposits.add(
            Deposit(
                booking_id=booking.id,
                customer_id=customer.id,
                service_id=booking.service_id,
                amount_minor=amount,
                currency=self.currency,
                state=DepositState.AWAITING,
                created_at=now,
                hold_until=now + timedelta(minutes=self.rule.hold_minutes),
                token=secrets.token_urlsafe(12),
            )
        )

    async def release_holds_of(
        self, repos: Repos, customer_id: int, now: datetime, service_id: str | None = None
    ) -> None:
        """A new booking of a service replaces their unpaid hold of it (of any, with None)."""
        for booking in await repos.deposits.holds_of(customer_id):
            if service_id is not None and booking.service_id != service_id:
                continue
            deposit = await repos.deposits.of_booking(booking.id, for_update=True)
            await self._let_go(repos, booking, deposit, now)

    async def _let_go(
        self, repos: Repos, booking: Booking, deposit: Deposit | None, now: datetime
    ) -> None:
        booking.state, booking.reason, booking.decided_at = BookingState.CANCELLED, "unpaid", now
        await repos.bookings.release(booking.id)
        if deposit is not None and deposit.state == DepositState.AWAITING:
            deposit.state, deposit.settled_at = DepositState.EXPIRED, now
        if booking.starts_at > now:  # a time already past frees nothing anyone could take
            await self.events.slot_freed(
                repos,
                SlotFreed(
                    booking.master_id, booking.starts_at, booking.service_id, "hold_expired", now
                ),
            )

    async def release_expired(self) -> int:
        """Planner: holds not paid in time are let go; the time is free again, the customer told."""
        now = self.clock.now()
        released = 0
        async with self.db.transaction() as repos:
            for deposit in await repos.deposits.expired_holds(now):
                booking = await repos.bookings.get(deposit.booking_id, for_update=True)
                if booking is None or booking.state != BookingState.HELD:
                    deposit.state, deposit.settled_at = DepositState.EXPIRED, now
                    continue
                await self._let_go(repos, booking, deposit, now)
                released += 1
                await repos.outbox.queue(
                    key=f"deposit_expired:{deposit.id}",
                    kind=SERVICE,
                    template="deposit_expired",
                    customer_id=booking.customer_id,
                    data={"booking_id": booking.id},
                    not_before=now,
                    not_after=now + timedelta(hours=6),
                    now=now,
                )
        return released

    async def invoice(self, tg_user_id: int, booking_id: int, lang: str) -> Invoice | None:
        """The invoice of this customer's held visit (None: not held for them, or paid)."""
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            booking = await repos.bookings.get(booking_id)
            deposit = await repos.deposits.of_booking(booking_id)
            if (
                customer is None
                or booking is None
                or deposit is None
                or booking.customer_id != customer.id
                or booking.state != BookingState.HELD
                or deposit.state != DepositState.AWAITING
                or not self.provider_token
            ):
                return None
            view = await self.booking._view(repos, booking)
        context = {"booking": view, "business": self.business}
        return Invoice(
            chat_id=tg_user_id,
            title=self.render.label(lang, "deposit_invoice_title", **context)[:32],
            description=self.render.label(lang, "deposit_invoice_description", **context)[:255],
            payload=f"{PAYLOAD_PREFIX}{deposit.token}",
            currency=deposit.currency,
            label=self.render.label(lang, "deposit_invoice_label", **context)[:64],
            amount_minor=deposit.amount_minor,
            provider_token=self.provider_token,
        )

    async def drop_hold(self, tg_user_id: int, booking_id: int) -> None:
        """The invoice could not be sent: the time is let go at once (nobody could pay it)."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            booking = await repos.bookings.get(booking_id, for_update=True)
            if customer is None or booking is None or booking.customer_id != customer.id:
                return
            if booking.state == BookingState.HELD:
                deposit = await repos.deposits.of_booking(booking.id, for_update=True)
                await self._let_go(repos, booking, deposit, now)

    # ---- the payment ------------------------------------------------------------------------------

    async def checkout(
        self, tg_user_id: int, payload: str, currency: str, total_minor: int
    ) -> str | None:
        """Telegram asks before charging (`pre_checkout_query`): None approves; otherwise the
        label of the polite refusal. Approved only while the hold is still theirs."""
        now = self.clock.now()
        async with self.db.reading() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            deposit = await repos.deposits.by_token(payload.removeprefix(PAYLOAD_PREFIX))
            if (
                customer is None
                or deposit is None
                or not payload.startswith(PAYLOAD_PREFIX)
                or deposit.customer_id != customer.id
                or deposit.currency != currency
                or deposit.amount_minor != total_minor
            ):
                return "deposit_checkout_unknown"
            booking = await repos.bookings.get(deposit.booking_id)
            if (
                deposit.state != DepositState.AWAITING
                or deposit.hold_until <= now
                or booking is None
                or booking.state != BookingState.HELD
            ):
                return "deposit_checkout_late"
        return None

    async def paid(
        self,
        tg_user_id: int,
        payload: str,
        currency: str,
        total_minor: int,
        telegram_charge_id: str,
        provider_charge_id: str,
    ) -> Paid:
        """`successful_payment`: the money is ours. The visit is confirmed if its time is still
        theirs (or still free); else the payment is recorded as refund due and staff are told."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            if await repos.deposits.by_charge(telegram_charge_id) is not None:
                return Paid(PaidOutcome.ALREADY)
            deposit = await repos.deposits.by_token(
                payload.removeprefix(PAYLOAD_PREFIX), for_update=True
            )
            if deposit is None or deposit.telegram_charge_id is not None:
                # not a deposit of ours, or a second payment of one: staff refund it by hand
                await self._tell_staff_unknown(
                    repos, tg_user_id, currency, total_minor, telegram_charge_id, provider_charge_id
                )
                return Paid(PaidOutcome.UNKNOWN)
            deposit.paid_at, deposit.paid_minor = now, total_minor
            deposit.telegram_charge_id = telegram_charge_id
            deposit.provider_charge_id = provider_charge_id
            booking = await repos.bookings.get(deposit.booking_id, for_update=True)
            assert booking is not None
            if deposit.state == DepositState.AWAITING and booking.state == BookingState.HELD:
                return await self._confirm(repos, booking, deposit, now)
            retake = booking.state == BookingState.CANCELLED and booking.reason == "unpaid"
        if retake:  # let go unpaid: the time back if nobody took it meanwhile (the cells decide)
            try:
                async with self.db.transaction() as repos:
                    booking = await repos.bookings.get(deposit.booking_id, for_update=True)
                    deposit = await repos.deposits.of_booking(deposit.booking_id, for_update=True)
                    assert booking is not None and deposit is not None
                    if await self._may_retake(repos, booking, now):
                        repos.session.add_all(
                            BookingCell(
                                master_id=booking.master_id, starts_at=c, booking_id=booking.id
                            )
                            for c in cells(
                                booking.starts_at,
                                int((booking.ends_at - booking.starts_at).total_seconds() // 60),
                                self.booking.finder.grid,
                            )
                        )
                        await repos.session.flush()
                        return await self._confirm(repos, booking, deposit, now)
            except IntegrityError:
                pass  # someone else has the time now
        async with self.db.transaction() as repos:
            deposit = await repos.deposits.by_token(
                payload.removeprefix(PAYLOAD_PREFIX), for_update=True
            )
            assert deposit is not None
            booking = await repos.bookings.get(deposit.booking_id)
            assert booking is not None
            await self._settle(repos, deposit, DepositState.REFUND_DUE, "hold_lost", now)
            return Paid(
                PaidOutcome.REFUND_DUE,
                await self.booking._view(repos, booking),
                DepositView.of(deposit),
            )

    async def _may_retake(self, repos: Repos, booking: Booking, now: datetime) -> bool:
        """A time let go unpaid may be taken back by its late payment: still ahead, not on a day
        off, and the customer has not booked that service again meanwhile (the cells decide
        whether someone else took it)."""
        if booking.starts_at <= now:
            return False
        day = self.booking.finder.local_day(booking.starts_at)
        off = await repos.bookings.days_off([booking.master_id], day, day)
        if day in off.get(booking.master_id, set()):
            return False
        ahead = await repos.bookings.upcoming_of(booking.customer_id, now)
        held = await repos.deposits.holds_of(booking.customer_id)
        return not any(b.service_id == booking.service_id for b in [*ahead, *held])

    async def _confirm(
        self, repos: Repos, booking: Booking, deposit: Deposit, now: datetime
    ) -> Paid:
        """Paid in time: the visit is confirmed (no master's answer to wait for: the time was
        free in the master's hours and the customer paid for it); the customer gets the usual
        confirmation with its buttons, the master and the admin chat a notice, reminders."""
        deposit.state = DepositState.PAID
        booking.state, booking.decided_at, booking.decided_by = (
            BookingState.CONFIRMED,
            now,
            "deposit",
        )
        await repos.outbox.queue(
            key=f"booking_confirmed:{booking.id}",
            kind=SERVICE,
            template="booking_confirmed",
            customer_id=booking.customer_id,
            data={"booking_id": booking.id, "buttons": "visit", "deposit": deposit.amount_minor},
            not_before=now,
            not_after=booking.starts_at,
            now=now,
        )
        await self.booking._plan_reminders(repos, booking, now)
        await self.booking.tell_staff(
            repos, booking, "deposit_paid_staff", not_after=booking.starts_at, now=now
        )
        return Paid(
            PaidOutcome.CONFIRMED, await self.booking._view(repos, booking), DepositView.of(deposit)
        )

    async def _settle(
        self, repos: Repos, deposit: Deposit, state: DepositState, reason: str, now: datetime
    ) -> None:
        """The deposit kept (a no-show, a late cancellation), or due back, which the staff refund
        by hand (the provider's dashboard): recorded, and the admin chat told."""
        deposit.state, deposit.reason, deposit.settled_at = state, reason, now
        if self.admin_chat_id is not None:
            notice = STAFF_NOTICE[state]
            await repos.outbox.queue(
                key=f"{notice}:{deposit.id}",
                kind=SERVICE,
                template=f"{notice}_staff",
                chat_id=self.admin_chat_id,
                data={"booking_id": deposit.booking_id, "reason": reason},
                not_before=now,
                not_after=now + timedelta(days=7),
                now=now,
            )

    async def _tell_staff_unknown(
        self,
        repos: Repos,
        tg_user_id: int,
        currency: str,
        total_minor: int,
        telegram_charge_id: str,
        provider_charge_id: str,
    ) -> None:
        log.error(
            "a payment for no deposit of ours: refund it by hand tg_user=%s amount=%s %s "
            "telegram_charge=%s provider_charge=%s",
            tg_user_id,
            total_minor,
            currency,
            telegram_charge_id,
            provider_charge_id,
        )
        if self.admin_chat_id is None:
            return
        now = self.clock.now()
        await repos.outbox.queue(
            key=f"deposit_unknown:{telegram_charge_id}",
            kind=SERVICE,
            template="deposit_unknown_staff",
            chat_id=self.admin_chat_id,
            data={
                "amount": total_minor,
                "currency": currency,
                "telegram_charge_id": telegram_charge_id,
                "provider_charge_id": provider_charge_id,
            },
            not_before=now,
            not_after=now + timedelta(days=7),
            now=now,
        )

    # ---- what happens to a deposit with its visit ------------------------------------------------

    async def moved(self, repos: Repos, old: Booking, new: Booking) -> None:
        """A visit moved: its paid deposit goes with it (the new time asks nothing more)."""
        deposit = await repos.deposits.of_booking(old.id, for_update=True)
        if deposit is not None and deposit.state == DepositState.PAID:
            deposit.booking_id = new.id

    async def cancelled(self, repos: Repos, booking: Booking, reason: str, now: datetime) -> None:
        """A visit cancelled (by the customer in time, by staff, at /forget) or declined: a paid
        deposit is kept when the cancellation is late, else refund due; a late one counts."""
        if reason == "rescheduled":
            return  # its deposit goes with the visit to its new time (`moved`)
        deposit = await repos.deposits.of_booking(booking.id, for_update=True)
        if deposit is not None and deposit.state == DepositState.PAID:
            if reason == LATE_CANCEL:
                await self._settle(repos, deposit, DepositState.KEPT, "late_cancel", now)
            else:
                await self._settle(repos, deposit, DepositState.REFUND_DUE, reason, now)
        if reason == LATE_CANCEL:
            await self._counted_miss(repos, booking.customer_id, now)

    async def no_show(self, repos: Repos, booking: Booking, now: datetime) -> None:
        """A no-show recorded (staff or master): a paid deposit is kept, and it counts."""
        deposit = await repos.deposits.of_booking(booking.id, for_update=True)
        if deposit is not None and deposit.state == DepositState.PAID:
            await self._settle(repos, deposit, DepositState.KEPT, "no_show", now)
        await self._counted_miss(repos, booking.customer_id, now)

    async def _counted_miss(self, repos: Repos, customer_id: int, now: datetime) -> None:
        """At the threshold (the no_shows policy, deposits on) the customer is told, once, that
        from the next booking a deposit is asked, and why."""
        if not self.enabled or self.rule.policy != "no_shows":
            return
        if await repos.deposits.misses(customer_id) != self.rule.no_show_threshold:
            return
        await repos.outbox.queue(
            key=f"deposit_policy_on:{customer_id}",
            kind=SERVICE,
            template="deposit_policy_on",
            customer_id=customer_id,
            data={"threshold": self.rule.no_show_threshold},
            not_before=now,
            not_after=now + timedelta(days=3),
            now=now,
        )

    async def count_into_sale(self, repos: Repos, event: PurchaseRecorded) -> None:
        """A sale of a visit's service to its customer (staff's /sale, the master's "done"): the
        visit's paid deposit is counted into it (the sale keeps the full price; the admin chat
        is told it was paid already and what is left to collect), and the visit is done."""
        day = self.booking.finder.local_day(event.at)
        until = datetime.combine(day + timedelta(days=1), time(0), self.tz)
        found = await repos.deposits.paid_for_sale(event.customer_id, event.service_id, until)
        if not found:
            return
        deposit, booking = found[0]
        deposit.state, deposit.settled_at = DepositState.COUNTED, event.at
        deposit.purchase_id = event.purchase_id
        if booking.state in ACTIVE_BOOKING:
            booking.state, booking.purchase_id = BookingState.DONE, event.purchase_id
            await repos.outbox.skip_pending("visit closed", prefix=f"reminder:{booking.id}:")
        if self.admin_chat_id is not None:
            await repos.outbox.queue(
                key=f"deposit_counted:{deposit.id}",
                kind=SERVICE,
                template="deposit_counted_staff",
                chat_id=self.admin_chat_id,
                data={
                    "booking_id": booking.id,
                    "sale": event.amount_minor,
                    "due": max(0, event.amount_minor - deposit.amount_minor),
                },
                not_before=event.at,
                not_after=event.at + timedelta(days=1),
                now=event.at,
            )

    async def refund_kept(
        self, booking_id: int, staff_id: int, staff_name: str
    ) -> tuple[bool, DepositView | None]:
        """The staff decide to refund a kept deposit after all (they do it by hand in the
        provider's dashboard): recorded as refund due. (True, it) when it changed now; (False,
        it) when it was not kept (already refund due, or never paid); (False, None): none."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            deposit = await repos.deposits.of_booking(booking_id, for_update=True)
            if deposit is None:
                return False, None
            if deposit.state != DepositState.KEPT:
                return False, DepositView.of(deposit)
            kept_for = deposit.reason
            deposit.state, deposit.reason, deposit.settled_at = (
                DepositState.REFUND_DUE,
                "staff",
                now,
            )
            repos.audit.record(
                StaffAction(
                    at=now,
                    staff_id=staff_id,
                    staff_name=staff_name,
                    action="deposit_refund",
                    customer_id=deposit.customer_id,
                    details={"booking_id": booking_id, "kept_for": kept_for},
                )
            )
            return True, DepositView.of(deposit)

    # ---- staff's mark ---------------------------------------------------------------------------

    async def is_marked(self, customer_id: int) -> bool:
        async with self.db.reading() as repos:
            return await repos.deposits.mark(customer_id) is not None

    async def toggle_mark(self, customer_id: int, staff_id: int, staff_name: str) -> bool | None:
        """Mark or unmark "only with deposit" (None: no such customer); returns the new mark."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            customer = await repos.customers.get(customer_id)
            if customer is None or customer.erased_at is not None:
                return None
            if await repos.deposits.mark(customer_id) is not None:
                await repos.deposits.unmark(customer_id)
                marked = False
            else:
                await repos.deposits.set_mark(
                    DepositMark(
                        customer_id=customer_id, staff_id=staff_id, staff_name=staff_name, at=now
                    )
                )
                marked = True
            repos.audit.record(
                StaffAction(
                    at=now,
                    staff_id=staff_id,
                    staff_name=staff_name,
                    action="deposit_mark" if marked else "deposit_unmark",
                    customer_id=customer_id,
                    details={},
                )
            )
            return marked

    # ---- /forget, and the messages ----------------------------------------------------------------

    async def forget(self, repos: Repos, event: CustomerErased) -> None:
        """`/forget`: the mark goes; the payments stay as money records without the person (what
        accounting keeps), and a hold of theirs is let go."""
        await self.release_holds_of(repos, event.customer_id, event.at)
        await repos.deposits.forget(event.customer_id)

    async def compose(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard | None]:
        context: dict[str, Any] = {"rule": self.rule}
        booking_id = row.data.get("booking_id")
        if booking_id is None:
            return context, None
        booking = await repos.bookings.get(int(booking_id))
        if booking is None:
            raise Obsolete("booking gone")
        if row.template == "deposit_expired" and booking.reason != "unpaid":
            raise Obsolete("paid after all")
        deposit = await repos.deposits.of_booking(booking.id)
        context["booking"] = await self.booking._view(repos, booking)
        context["deposit"] = DepositView.of(deposit) if deposit else None
        keyboard: Keyboard | None = None
        lang = customer.language if customer else self.business.staff_language
        if row.template == "deposit_expired":
            keyboard = [
                [Button(self.render.label(lang, "book_again"), BookService(booking.service_id))]
            ]
        if row.template == "deposit_kept_staff" and deposit and deposit.state == DepositState.KEPT:
            refund = BookingAction(BookingAct.REFUND_DEPOSIT, booking.id)
            keyboard = [[Button(self.render.label(lang, "deposit_refund_button"), refund)]]
        return context, keyboard
