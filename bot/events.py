"""The one place domain events are emitted and subscribed to.

A purchase is what later features hang off (satisfaction survey, thank-you offer, loyalty
stamp, cycle learning). Subscribers run inside the transaction that records the purchase, so
whatever they queue is committed together with the sale, or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from bot.db.repositories import Repos


@dataclass(frozen=True)
class PurchaseRecorded:
    purchase_id: int
    customer_id: int
    amount_minor: int
    service_id: str | None
    master_id: str | None
    at: datetime


@dataclass(frozen=True)
class CustomerErased:
    """`/forget`: subscribers drop what they keep about the customer (their visits ahead are
    cancelled and the masters told, their cycles forgotten), in the same transaction."""

    customer_id: int
    at: datetime


@dataclass(frozen=True)
class SaleCancelled:
    """Staff cancelled a mistaken sale: subscribers undo what the purchase caused (cashback,
    referral reward, stamps, package visits, queued survey...), inside the cancelling
    transaction, so the cancel and every reversal commit together or not at all. `by` is the
    Telegram user id of the staff member who cancelled."""

    purchase_id: int
    customer_id: int
    service_id: str | None
    master_id: str | None
    amount_minor: int
    at: datetime
    by: int


@dataclass(frozen=True)
class SlotFreed:
    """A master's time that was taken is free again: a visit cancelled or moved, a request
    declined, an unpaid deposit hold released, a day off taken back. `starts_at` is the start of
    the time freed (aware, UTC), `service_id` the service that held it (its duration is how long
    the time is; "" for a day off taken back, one event per start of its hours), `reason` why
    (customer, declined, rescheduled, erased, hold_expired, day_back, ...).
    Subscribers (the waitlist) run inside the freeing transaction: what they queue commits with
    it."""

    master_id: str
    starts_at: datetime
    service_id: str
    reason: str
    at: datetime


PurchaseSubscriber = Callable[[Repos, PurchaseRecorded], Awaitable[None]]
ErasedSubscriber = Callable[[Repos, CustomerErased], Awaitable[None]]
CancelledSubscriber = Callable[[Repos, SaleCancelled], Awaitable[None]]
FreedSubscriber = Callable[[Repos, SlotFreed], Awaitable[None]]


@dataclass(frozen=True)
class PhoneShared:
    """A customer gave their own phone in onboarding (saved; an imported customer with it merged
    in: `recognised`). Subscribers credit what joining earns (the welcome bonus, a friend's
    bonus) inside the phone's transaction, so the phone and what it earned commit together or
    not at all. `ref`: the token of the friend's link they came by, if any."""

    customer_id: int
    tg_user_id: int
    phone: str
    recognised: bool
    ref: str | None
    at: datetime


@dataclass(frozen=True)
class Credited:
    """Points a subscriber of `PhoneShared` credited, and why (the ledger entry's reason)."""

    reason: str
    points: int


PhoneSubscriber = Callable[[Repos, PhoneShared], Awaitable[Credited | None]]


class Events:
    def __init__(self) -> None:
        self._purchase: list[PurchaseSubscriber] = []
        self._erased: list[ErasedSubscriber] = []
        self._cancelled: list[CancelledSubscriber] = []
        self._freed: list[FreedSubscriber] = []
        self._phone: list[PhoneSubscriber] = []

    def on_erased(self, subscriber: ErasedSubscriber) -> ErasedSubscriber:
        self._erased.append(subscriber)
        return subscriber

    async def customer_erased(self, repos: Repos, event: CustomerErased) -> None:
        for subscriber in self._erased:
            await subscriber(repos, event)

    def on_purchase(self, subscriber: PurchaseSubscriber) -> PurchaseSubscriber:
        self._purchase.append(subscriber)
        return subscriber

    async def purchase_recorded(self, repos: Repos, event: PurchaseRecorded) -> None:
        for subscriber in self._purchase:
            await subscriber(repos, event)

    def on_sale_cancelled(self, subscriber: CancelledSubscriber) -> CancelledSubscriber:
        self._cancelled.append(subscriber)
        return subscriber

    async def sale_cancelled(self, repos: Repos, event: SaleCancelled) -> None:
        for subscriber in self._cancelled:
            await subscriber(repos, event)

    def on_slot_freed(self, subscriber: FreedSubscriber) -> FreedSubscriber:
        self._freed.append(subscriber)
        return subscriber

    async def slot_freed(self, repos: Repos, event: SlotFreed) -> None:
        for subscriber in self._freed:
            await subscriber(repos, event)

    def on_phone_shared(self, subscriber: PhoneSubscriber) -> PhoneSubscriber:
        self._phone.append(subscriber)
        return subscriber

    async def phone_shared(self, repos: Repos, event: PhoneShared) -> list[Credited]:
        """Every subscriber in turn; what they credited."""
        credited = []
        for subscriber in self._phone:
            if (points := await subscriber(repos, event)) is not None:
                credited.append(points)
        return credited
