"""Staff cancel a mistaken sale (a button under /sale's answer, or `/unsale <number>`), and what
it caused is undone in the same transaction.

- Only a sale recorded here in the last CANCEL_WITHIN (30 days) can be cancelled: an older one
  is in closed months of /stats, past tiers and campaigns, and is corrected by hand (`/points`).
  A visit imported from the owner's base is not a sale recorded here: not cancellable.
- The purchase is kept, marked cancelled with who and when (`purchases.cancelled_at`), and from
  then on no read counts it (bot/db/sales.py): /stats, the card's visits, cycles, segments,
  tiers. The closed days and months of /stats from its day on are counted again (as for a sale
  paid with points). A second cancel, or two at once, find it marked and change nothing (the
  customer's row lock, then a conditional update).
- Points, in the append-only ledger (corrections naming the sale, reason `sale_cancelled`, by
  the staff member who cancelled), in this order:
  1. points paid for it (pay with points) come back to the customer; they expire as the sale's
     own cashback would have (`expire_months` after the sale; never if points never expire);
  2. its cashback is taken back, but never below zero: if the customer spent some of it already,
     only what their balance still holds is taken, and the rest (`short`) is written off, shown
     to staff and kept in the audit;
  3. the bring-a-friend reward the sale earned (the friend's first purchase) is withdrawn from
     the referrer the same way, when the friend has no other purchase left; the referral waits
     for their next first purchase again. A reward notice not sent yet is dropped instead of told.
- Not sent yet, dropped: the sale's survey (and its unanswered row), its thank-you offer, a
  pay-with-points question waiting for the customer.
- The customer gets a receipt (a service message, through the outbox) when points came back or
  were taken; the referrer when a reward they were told of is withdrawn. The master hears nothing.
- Then `SaleCancelled` goes to the subscribers (stamps, packages, cycles...), in the transaction.
- The audit records it: `sale_cancel`, with the sale and the points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.business import Business
from bot.clock import Clock
from bot.db.models import Customer, LedgerKind, LoyaltyEntry, OutboxState, Purchase, StaffAction
from bot.db.repositories import Database, Repos
from bot.events import Events, SaleCancelled
from bot.outbox import SERVICE
from bot.services.loyalty import LoyaltyService
from bot.services.points_pay import REQUEST as POINTS_REQUEST
from bot.services.points_pay import recount_closed_days
from bot.services.referrals import REWARD_KEY
from bot.services.staff import Staff

CANCEL_WITHIN = timedelta(days=30)
REASON = "sale_cancelled"  # the ledger corrections' reason
RECEIPT = "sale_cancelled"  # the customer's receipt (template)
WITHDRAWN = "referral_withdrawn"  # the referrer's notice (template)
NOTICE_VALID = timedelta(days=7)


class CancelOutcome(StrEnum):
    ASK = "ask"  # preview: it can be cancelled
    CANCELLED = "cancelled"
    ALREADY = "already"  # cancelled before (a second tap, two staff at once)
    NOT_FOUND = "not_found"  # no such sale recorded here (an imported visit included)
    TOO_OLD = "too_old"


@dataclass(frozen=True)
class SaleCancel:
    outcome: CancelOutcome
    purchase_id: int
    customer_id: int | None = None
    customer_name: str | None = None
    amount_minor: int = 0
    at: datetime | None = None  # when the sale was made
    service_id: str | None = None
    master_id: str | None = None
    returned: int = 0  # points paid for it, given back
    taken: int = 0  # its cashback taken back
    short: int = 0  # its cashback spent already: not taken back
    balance: int = 0  # the customer's points after
    referral_taken: int = 0  # the referrer's reward taken back
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None


def purchase_number(text: str) -> int | None:
    """`12` or `#12`: a sale's number; None for anything else."""
    digits = text.strip().removeprefix("#")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 9:
        return None
    return int(digits)


class SaleCancelService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        business: Business,
        loyalty: LoyaltyService,
        events: Events,
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.loyalty = loyalty
        self.events = events

    def _refusal(self, purchase: Purchase | None, now: datetime) -> CancelOutcome | None:
        if purchase is None or purchase.import_key is not None:
            return CancelOutcome.NOT_FOUND
        if purchase.cancelled_at is not None:
            return CancelOutcome.ALREADY
        if now - purchase.at > CANCEL_WITHIN:
            return CancelOutcome.TOO_OLD
        return None

    @staticmethod
    def _of(
        outcome: CancelOutcome, purchase: Purchase, customer: Customer | None, **more: int
    ) -> SaleCancel:
        return SaleCancel(
            outcome,
            purchase.id,
            purchase.customer_id,
            customer.name if customer and customer.erased_at is None else None,
            purchase.amount_minor,
            purchase.at,
            purchase.service_id,
            purchase.master_id,
            cancelled_at=purchase.cancelled_at,
            cancelled_by=purchase.cancelled_by_name,
            **more,
        )

    async def preview(self, purchase_id: int) -> SaleCancel:
        """What the confirmation shows: the sale, or why it cannot be cancelled."""
        async with self.db.reading() as repos:
            purchase = await repos.sale_cancels.purchase(purchase_id)
            if purchase is None:
                return SaleCancel(CancelOutcome.NOT_FOUND, purchase_id)
            customer = await repos.customers.get(purchase.customer_id)
            refused = self._refusal(purchase, self.clock.now())
            return self._of(refused or CancelOutcome.ASK, purchase, customer)

    async def cancel(self, staff: Staff, purchase_id: int) -> SaleCancel:
        now = self.clock.now()
        async with self.db.transaction() as repos:
            found = await repos.sale_cancels.purchase(purchase_id)
            # the customer's row first: their ledger's writers, and a second cancel, queue on it
            if found is None or not await repos.loyalty.lock(found.customer_id):
                return SaleCancel(CancelOutcome.NOT_FOUND, purchase_id)
            purchase = await repos.sale_cancels.purchase(purchase_id, for_update=True)
            customer = await repos.customers.get(found.customer_id)
            refused = self._refusal(purchase, now)
            if purchase is None or refused is not None:
                return (
                    SaleCancel(CancelOutcome.NOT_FOUND, purchase_id)
                    if purchase is None
                    else self._of(refused or CancelOutcome.NOT_FOUND, purchase, customer)
                )
            if not await repos.sale_cancels.cancel(purchase.id, now, staff.id, staff.name):
                return self._of(CancelOutcome.ALREADY, purchase, customer)
            await repos.session.refresh(purchase)  # marked: who and when
            returned, taken, short = await self._points(repos, staff, purchase, now)
            referral_taken = await self._withdraw_referral(repos, staff, purchase, now)
            await self._drop_pending(repos, purchase)
            await recount_closed_days(repos, purchase.at, self.business.campaigns.window_days)
            balance = await repos.loyalty.balance(purchase.customer_id)
            self._audit(repos, staff, purchase, now, returned, taken, short, referral_taken)
            await self.events.sale_cancelled(
                repos,
                SaleCancelled(
                    purchase_id=purchase.id,
                    customer_id=purchase.customer_id,
                    service_id=purchase.service_id,
                    master_id=purchase.master_id,
                    amount_minor=purchase.amount_minor,
                    at=now,
                    by=staff.id,
                ),
            )
            if (returned or taken) and customer is not None and customer.erased_at is None:
                await repos.outbox.queue(
                    key=f"{RECEIPT}:{purchase.id}",
                    kind=SERVICE,
                    template=RECEIPT,
                    customer_id=customer.id,
                    data={
                        "amount_minor": purchase.amount_minor,
                        "sold_at": purchase.at.isoformat(),
                        "returned": returned,
                        "taken": taken,
                        "balance": balance,
                    },
                    not_before=now,
                    not_after=now + NOTICE_VALID,
                    now=now,
                )
            return self._of(
                CancelOutcome.CANCELLED,
                purchase,
                customer,
                returned=returned,
                taken=taken,
                short=short,
                balance=balance,
                referral_taken=referral_taken,
            )

    async def _points(
        self, repos: Repos, staff: Staff, purchase: Purchase, now: datetime
    ) -> tuple[int, int, int]:
        """(returned, taken, short): the points paid for the sale back first, then its cashback
        taken back as far as the balance goes (so points paid with its own cashback net out)."""
        customer_id = purchase.customer_id
        await self.loyalty.expire_in(repos, customer_id, now)
        returned = await repos.sale_cancels.spent_on(purchase.id)
        if returned > 0:
            expires = self.loyalty.expiry_of(purchase.at)
            if expires is not None and expires <= now:
                expires = self.loyalty.expiry_of(now)
            await repos.loyalty.add(
                LoyaltyEntry(
                    customer_id=customer_id,
                    kind=LedgerKind.CORRECTION,
                    points=returned,
                    purchase_id=purchase.id,
                    expires_at=expires,
                    staff_id=staff.id,
                    staff_name=staff.name,
                    reason=REASON,
                    created_at=now,
                )
            )
        accrued = await repos.sale_cancels.accrued_on(purchase.id)
        taken = await self._take_back(repos, staff, customer_id, accrued, purchase.id, now)
        return returned, taken, accrued - taken

    async def _take_back(
        self,
        repos: Repos,
        staff: Staff,
        customer_id: int,
        points: int,
        purchase_id: int,
        now: datetime,
    ) -> int:
        """Up to `points` off the customer's balance, never below zero; the points taken."""
        if points <= 0:
            return 0
        taken = min(points, await repos.loyalty.balance(customer_id))
        if taken <= 0:
            return 0
        await repos.loyalty.debit(
            customer_id,
            LedgerKind.CORRECTION,
            taken,
            now,
            purchase_id=purchase_id,
            staff_id=staff.id,
            staff_name=staff.name,
            reason=REASON,
        )
        return taken

    async def _withdraw_referral(
        self, repos: Repos, staff: Staff, purchase: Purchase, now: datetime
    ) -> int:
        """The referrer's reward, when this was the friend's only purchase; the points taken."""
        referral = await repos.referrals.of_friend(purchase.customer_id)
        if referral is None or referral.bought_at is None:
            return 0
        visits, _, _ = await repos.purchases.summary(purchase.customer_id)  # without this one
        if visits or not await repos.sale_cancels.unreward(referral.id):
            return 0
        points = self.business.loyalty.referral.referrer_reward
        if referral.referrer_id is None or points <= 0:
            return 0
        notice = f"{REWARD_KEY}{referral.id}"
        told = await repos.outbox.state_of(notice) in (OutboxState.SENT, OutboxState.SENDING)
        await repos.outbox.skip_pending(REASON, keys=[notice])
        await self.loyalty.expire_in(repos, referral.referrer_id, now)
        taken = await self._take_back(repos, staff, referral.referrer_id, points, purchase.id, now)
        if told:
            await repos.outbox.queue(
                key=f"{WITHDRAWN}:{referral.id}:{purchase.id}",
                kind=SERVICE,
                template=WITHDRAWN,
                customer_id=referral.referrer_id,
                data={
                    "points": taken,
                    "balance": await repos.loyalty.balance(referral.referrer_id),
                },
                not_before=now,
                not_after=now + NOTICE_VALID,
                now=now,
            )
        return taken

    async def _drop_pending(self, repos: Repos, purchase: Purchase) -> None:
        """What the sale queued and was not sent yet: its survey (and the unanswered row, so the
        sale recorded again instead gets its own), its thank-you offer, a pay-with-points
        question."""
        survey = f"survey:{purchase.id}"
        if await repos.outbox.state_of(survey) == OutboxState.PENDING:
            await repos.sale_cancels.drop_unanswered_survey(purchase.id)
        requests = await repos.sale_cancels.pending_requests(purchase.id)
        await repos.outbox.skip_pending(
            REASON,
            keys=[
                survey,
                f"thanks:{purchase.id}",
                *(f"{POINTS_REQUEST}:{request_id}" for request_id in requests),
            ],
        )

    def _audit(
        self,
        repos: Repos,
        staff: Staff,
        purchase: Purchase,
        now: datetime,
        returned: int,
        taken: int,
        short: int,
        referral_taken: int,
    ) -> None:
        service = self.business.service(purchase.service_id)
        master = self.business.master(purchase.master_id)
        repos.audit.record(
            StaffAction(
                at=now,
                staff_id=staff.id,
                staff_name=staff.name,
                action="sale_cancel",
                customer_id=purchase.customer_id,
                details={
                    "purchase_id": purchase.id,
                    "amount_minor": purchase.amount_minor,
                    "sold_at": purchase.at.isoformat(),
                    "service": service.name if service else None,
                    "master": master.name if master else None,
                    "points_returned": returned,
                    "points_taken": taken,
                    "points_short": short,
                    "referral_taken": referral_taken,
                },
            )
        )
