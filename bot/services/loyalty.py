"""Cashback points: the ledger's rules (bot/db/loyalty.py keeps the rows).

- A recorded sale credits `[loyalty.cashback] percent` of its amount, rounded down to whole
  points (1 point = 1 ruble; amounts are in kopecks), in the sale's own transaction (a purchase
  subscriber), expiring `expire_months` after the sale (0: never).
- Points are used soonest-expiring first (FIFO by expiry, then by age; a correction upward never
  expires and is used last). What expires is what is left of an accrual at its `expires_at`
  after the debits before it took their share: `lots` replays the ledger to find it. The expiry
  planner writes one expiry entry per expired accrual (0 points when it was all spent: the entry
  says the accrual is settled), a bounded number of accruals per run.
- The balance never goes negative: a debit (spending, a correction downward) is a conditional
  insert under the customer's row lock (`LoyaltyRepo.debit`), after their expired points went.
- A staff correction needs a reason and is in the audit.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business, Cashback, Tier
from bot.buttons import Keyboard
from bot.clock import Clock
from bot.db.loyalty import Line
from bot.db.models import Customer, LedgerKind, LoyaltyEntry, OutboxMessage, StaffAction
from bot.db.repositories import Database, Repos
from bot.events import PurchaseRecorded
from bot.features import Features
from bot.outbox import SERVICE
from bot.outbox.compose import Obsolete
from bot.outbox.policy import Policy
from bot.services.staff import Staff, UsageError

REMINDER = "points_expiring"  # the template of the reminder before points expire
REMINDER_KEY = "points_expiry:"  # + the accrual's id: one reminder per accrual
EXPIRE_PER_RUN = 500  # accruals settled per planner run (the rest go at the next one)
SETTLE_PER_TRANSACTION = 50  # customers
MAX_CORRECTION = 1_000_000
MAX_REASON = 500
HISTORY = 5  # movements of points /card shows, newest first
# accruals without a sale, by their reason (bonuses.py, referrals.py)
BONUS_REASONS = ("welcome_bonus", "birthday_bonus", "referral_bonus", "referral_reward")


@dataclass
class Lot:
    """What is left of one credit (an accrual, a correction upward)."""

    entry_id: int
    points: int
    left: int
    created_at: datetime
    expires_at: datetime | None
    settled: bool = False  # an expiry entry closed it


def _order(lot: Lot) -> tuple[bool, datetime, int]:
    """Soonest-expiring first; those that never expire last; then the oldest."""
    return (lot.expires_at is None, lot.expires_at or lot.created_at, lot.entry_id)


def lots(lines: list[Line]) -> list[Lot]:
    """Replay a customer's ledger (oldest first): each debit takes from the credits it found
    open at its time, soonest-expiring first; an expiry entry closes its own accrual."""
    credits: dict[int, Lot] = {}
    for line in lines:
        if line.kind == LedgerKind.EXPIRY and line.accrual_id in credits:
            lot = credits[line.accrual_id]
            lot.left += line.points
            lot.settled = True
        elif line.points > 0:
            credits[line.id] = Lot(
                line.id, line.points, line.points, line.created_at, line.expires_at
            )
        elif line.points < 0:
            owed = -line.points
            for lot in sorted(credits.values(), key=_order):
                if owed == 0:
                    break
                if lot.settled or lot.left == 0:
                    continue
                if lot.expires_at is not None and lot.expires_at <= line.created_at:
                    continue  # had expired by then (its expiry entry may come later)
                taken = min(owed, lot.left)
                lot.left -= taken
                owed -= taken
    return sorted(credits.values(), key=_order)


def alive(all_lots: list[Lot], now: datetime) -> list[Lot]:
    """The lots with points left that have not expired by `now`, soonest-expiring first: what
    the balance is made of."""
    return [
        lot
        for lot in all_lots
        if not lot.settled and lot.left > 0 and (lot.expires_at is None or lot.expires_at > now)
    ]


def add_months(at: datetime, months: int) -> datetime:
    """The same day and time `months` later (the month's last day if it is shorter)."""
    year, month = divmod(at.month - 1 + months, 12)
    year += at.year
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def expires_after(at: datetime, months: int) -> datetime | None:
    """An `expire_months` of the business file counted from `at` (0: never, None)."""
    return add_months(at, months) if months else None


def points_expiry(cashback: Cashback, at: datetime) -> datetime | None:
    """When points credited at `at` expire: `expire_months` later (None: they never do)."""
    return expires_after(at, cashback.expire_months)


BONUS_RECEIPT_VALID = timedelta(days=7)  # a bonus's receipt goes within a week, or not at all


async def credit_bonus(
    repos: Repos,
    cashback: Cashback,
    customer_id: int,
    points: int,
    reason: str,
    at: datetime,
    *,
    key: str | None = None,
) -> None:
    """Bonus points (a welcome or birthday bonus, a friend's bonus or reward): an accrual for no
    sale, named by its `reason`, expiring as cashback does; `key` keeps it to once (the
    birthday's)."""
    await repos.loyalty.add(
        LoyaltyEntry(
            customer_id=customer_id,
            kind=LedgerKind.ACCRUAL,
            points=points,
            reason=reason,
            expires_at=points_expiry(cashback, at),
            created_at=at,
            bonus_key=key,
        )
    )


async def queue_bonus_receipt(
    repos: Repos, key: str, template: str, customer_id: int, points: int, at: datetime
) -> None:
    """The customer's receipt for bonus points credited: a service message (`points` in its
    text), once by its `key`."""
    await repos.outbox.queue(
        key=key,
        kind=SERVICE,
        template=template,
        customer_id=customer_id,
        data={"points": points},
        not_before=at,
        not_after=at + BONUS_RECEIPT_VALID,
        now=at,
    )


@dataclass(frozen=True)
class Wallet:
    """A customer's points as shown: the balance without what expired already, and the soonest
    expiry ahead with how many points it takes."""

    enabled: bool
    points: int
    next_expiry: datetime | None = None
    expiring: int = 0
    tier: Tier | None = None  # the club tier (`[[loyalty.tiers]]`), its percent their cashback
    tier_drops_at: datetime | None = None  # a warned drop


@dataclass(frozen=True)
class HistoryLine:
    """One movement of points as the customer's /card shows it: `what` names it (an accrual for
    a sale, a bonus by its reason, a spending, an expiry, a correction); a staff member's typed
    reason stays in the audit and /mydata."""

    at: datetime
    points: int
    what: str


def history_line(entry: LoyaltyEntry) -> HistoryLine:
    if entry.kind == LedgerKind.ACCRUAL:
        what = entry.reason if entry.reason in BONUS_REASONS else "purchase"
    elif entry.kind == LedgerKind.CORRECTION:
        what = "sale_cancelled" if entry.reason == "sale_cancelled" else "correction"
    else:
        what = str(entry.kind)  # spending, expiry
    return HistoryLine(at=entry.created_at, points=entry.points, what=what)


@dataclass(frozen=True)
class Correction:
    customer_id: int
    points: int
    balance: int
    reason: str


class LoyaltyService:
    def __init__(self, db: Database, clock: Clock, business: Business, tz: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.policy = Policy(business.marketing, tz)

    @property
    def cashback(self):  # type: ignore[no-untyped-def]
        return self.business.loyalty.cashback

    def register(self, features: Features) -> None:
        """A sale credits its cashback; the planner expires points; erasure is ErasureRepo's."""
        features.on_purchase(self.accrue_for_purchase)
        features.plan("loyalty_expiry", self.expire)
        features.plan("loyalty_reminders", self.remind)
        features.compose(self.compose_reminder, REMINDER)

    def points_for(self, amount_minor: int, percent: float | None = None) -> int:
        """Cashback of an amount in kopecks: percent of it (the customer's tier's, else the flat
        one), in whole rubles, rounded down."""
        percent = self.cashback.percent if percent is None else percent
        share = Decimal(amount_minor) * Decimal(str(percent)) / Decimal(10_000)
        return int(share.to_integral_value(rounding=ROUND_FLOOR))

    def expiry_of(self, at: datetime) -> datetime | None:
        return points_expiry(self.cashback, at)

    async def accrue_for_purchase(self, repos: Repos, event: PurchaseRecorded) -> None:
        """Subscribed to purchases: the sale's cashback, in the sale's transaction (once). The
        customer's expired points go first, so the balance the sale shows staff is what is left."""
        await self.expire_in(repos, event.customer_id, event.at)
        if not self.cashback.enabled:
            return
        tier = self.business.loyalty.tier(await repos.tiers.name_of(event.customer_id))
        points = self.points_for(event.amount_minor, tier.percent if tier else None)
        if points <= 0 or await repos.loyalty.has_accrual(event.purchase_id):
            return
        await repos.loyalty.add(
            LoyaltyEntry(
                customer_id=event.customer_id,
                kind=LedgerKind.ACCRUAL,
                points=points,
                purchase_id=event.purchase_id,
                expires_at=self.expiry_of(event.at),
                created_at=event.at,
            )
        )

    # ---- reading ------------------------------------------------------------------------------

    async def wallet(self, customer_id: int) -> Wallet:
        async with self.db.reading() as repos:
            return await self.wallet_in(repos, customer_id)

    async def wallet_in(self, repos: Repos, customer_id: int) -> Wallet:
        spendable = alive(lots(await repos.loyalty.lines(customer_id)), self.clock.now())
        dated = [lot for lot in spendable if lot.expires_at is not None]
        soonest = dated[0].expires_at if dated else None
        held = await repos.tiers.get(customer_id)
        return Wallet(
            tier=self.business.loyalty.tier(held.tier if held else None),
            tier_drops_at=held.drops_at if held else None,
            enabled=self.cashback.enabled,
            points=sum(lot.left for lot in spendable),
            next_expiry=soonest,
            expiring=sum(lot.left for lot in dated if lot.expires_at == soonest),
        )

    async def history(self, customer_id: int, limit: int = HISTORY) -> list[HistoryLine]:
        """The customer's last movements of points, newest first (accruals and spending)."""
        async with self.db.reading() as repos:
            return [history_line(entry) for entry in await repos.loyalty.recent(customer_id, limit)]

    # ---- expiry -------------------------------------------------------------------------------

    async def expire_in(self, repos: Repos, customer_id: int, now: datetime) -> int:
        """Close the customer's accruals expired by `now` (their row locked): one expiry entry
        each, of what is left of it. Returns the points that expired."""
        return (await self._settle(repos, customer_id, now))[1]

    async def _settle(self, repos: Repos, customer_id: int, now: datetime) -> tuple[int, int]:
        """`expire_in`'s work: (accruals settled, points expired)."""
        await repos.loyalty.lock(customer_id)
        settled = expired = 0
        for lot in lots(await repos.loyalty.lines(customer_id)):
            if lot.settled or lot.expires_at is None or lot.expires_at > now:
                continue
            await repos.loyalty.add(
                LoyaltyEntry(
                    customer_id=customer_id,
                    kind=LedgerKind.EXPIRY,
                    points=-lot.left,
                    accrual_id=lot.entry_id,
                    created_at=now,
                )
            )
            expired += lot.left
            settled += 1
        return settled, expired

    async def expire(self) -> int:
        """The planner: settle the customers of up to EXPIRE_PER_RUN expired accruals, soonest
        first, SETTLE_PER_TRANSACTION customers a transaction (on SQLite a write transaction holds
        off every writer, staff sales too); returns the accruals settled. Idempotent: a settled
        accrual is never found again, and each customer's are settled under their row's lock."""
        now = self.clock.now()
        async with self.db.reading() as repos:
            customers = await repos.loyalty.expiring_customers(now, EXPIRE_PER_RUN)
        settled = 0
        for first in range(0, len(customers), SETTLE_PER_TRANSACTION):
            async with self.db.transaction() as repos:
                for customer_id in customers[first : first + SETTLE_PER_TRANSACTION]:
                    settled += (await self._settle(repos, customer_id, now))[0]
        return settled

    async def remind(self) -> int:
        """The planner: a reminder (an offer) `remind_days_before` days before each accrual
        expires, to those who may get offers; the sender's composer says how many of its points
        are left then, and drops it if none are (`compose_reminder`). Keyed by the accrual."""
        days = self.cashback.remind_days_before
        if not days:
            return 0
        now = self.clock.now()
        async with self.db.transaction() as repos:
            return await repos.outbox.plan(
                repos.loyalty.reminder_rows(
                    REMINDER_KEY,
                    REMINDER,
                    now=now,
                    until=now + timedelta(days=days),
                    due_at=self.policy.morning(now),
                )
            )

    async def compose_reminder(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard | None]:
        """What is left of the accrual when the reminder goes; none left: not sent."""
        accrual_id = int(row.key.removeprefix(REMINDER_KEY))
        if customer is None:
            raise Obsolete("no customer")
        every = lots(await repos.loyalty.lines(customer.id))  # the ledger read once
        lot = next((lot for lot in every if lot.entry_id == accrual_id), None)
        if lot is None or lot.settled or lot.left <= 0 or lot.expires_at is None:
            raise Obsolete("the points are spent")
        if lot.expires_at <= now:
            raise Obsolete("the points expired")
        balance = sum(lot.left for lot in alive(every, now))
        return {"points": lot.left, "expires_at": lot.expires_at, "balance": balance}, None

    # ---- spending and corrections ---------------------------------------------------------------

    async def spend_in(
        self, repos: Repos, customer_id: int, points: int, purchase_id: int | None = None
    ) -> bool:
        """Spend `points` if the balance (after what expired) covers them; False otherwise and
        nothing is written. Two spends of the same points at once: one of them wins."""
        now = self.clock.now()
        await self.expire_in(repos, customer_id, now)
        return await repos.loyalty.debit(
            customer_id, LedgerKind.SPENDING, points, now, purchase_id=purchase_id
        )

    async def spend(self, customer_id: int, points: int, purchase_id: int | None = None) -> bool:
        async with self.db.transaction() as repos:
            return await self.spend_in(repos, customer_id, points, purchase_id)

    async def correct(self, staff: Staff, customer_id: int, points: int, reason: str) -> Correction:
        """A staff member's correction (+ or -), with a reason; audited. UsageError when the
        reason is missing, the number is 0 or huge, or a debit is more than the balance."""
        why = " ".join(reason.split())
        if not why:
            raise UsageError("points_reason")
        if len(why) > MAX_REASON:
            raise UsageError("points_reason_long", limit=MAX_REASON)
        if points == 0 or abs(points) > MAX_CORRECTION:
            raise UsageError("points_usage")
        now = self.clock.now()
        async with self.db.transaction() as repos:
            customer = await repos.customers.get(customer_id, for_update=True)
            if customer is None or customer.erased_at is not None:
                raise UsageError("not_found", query=f"#{customer_id}")
            await self.expire_in(repos, customer_id, now)
            if points > 0:
                await repos.loyalty.add(
                    LoyaltyEntry(
                        customer_id=customer_id,
                        kind=LedgerKind.CORRECTION,
                        points=points,
                        staff_id=staff.id,
                        staff_name=staff.name,
                        reason=why,
                        created_at=now,
                    )
                )
            elif not await repos.loyalty.debit(
                customer_id,
                LedgerKind.CORRECTION,
                -points,
                now,
                staff_id=staff.id,
                staff_name=staff.name,
                reason=why,
            ):
                balance = await repos.loyalty.balance(customer_id)
                raise UsageError("points_short", balance=balance, points=-points)
            repos.audit.record(
                StaffAction(
                    at=now,
                    staff_id=staff.id,
                    staff_name=staff.name,
                    action="points",
                    customer_id=customer_id,
                    details={"points": points, "reason": why},
                )
            )
            balance = await repos.loyalty.balance(customer_id)
        return Correction(customer_id, points, balance, why)
