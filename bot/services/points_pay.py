"""Paying part of a sale with points, confirmed by the customer in their chat.

- Staff ask after the sale is recorded (a button under /sale's answer, or `/sale … points:N`).
  The amount offered is the customer's balance, at most `[loyalty.cashback] max_share` of the
  sale (in whole points; 1 point = 1 ruble = 100 minor units); N above that cap, or above the
  balance, is refused politely. Nothing is spent then: a pending request is written and the
  customer gets a service message (through the outbox) with Confirm / Decline.
- Confirm: one transaction, under the customer's row lock, checks the request is still pending,
  not expired and the sale unchanged, then spends the points (a ledger spending entry tied to
  the sale) and reduces the sale's amount by their value. The request keeps the original amount
  (`amount_minor`). The cashback the sale accrued on its original amount stays as it was: the
  customer paid that amount, partly with points they had earned before.
- A day /stats has summed already is counted again when a sale in it is reduced.
- Decline or a late answer changes no points. Staff hear of every answer in the admin chat
  (through the outbox). A second tap, a stale or forged button, or someone else's request
  changes nothing; two confirms at once spend once (the row lock, then the state check).
  A request left unanswered past its expiry no longer blocks asking again for the same sale.
- A request nobody answered is closed by a planner once it expires (`close_unanswered`): the
  sale stays at its full amount, nothing is spent, and the staff member who asked hears of it in
  the admin chat (through the outbox, once: the notice has the same key as an answer's). A tap
  after that is told the time is over.
- While pending, /card shows the balance as it is: a request is never shown as spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

from bot.business import Business
from bot.buttons import AnswerPoints, Button, dump
from bot.clock import Clock
from bot.db.models import OutboxKind, PointsRequest, PointsRequestState
from bot.db.repositories import Database, Repos
from bot.features import Features
from bot.rendering import Renderer
from bot.services.loyalty import LoyaltyService
from bot.services.staff import Staff, UsageError

REQUEST_TTL = timedelta(minutes=30)  # how long the customer has to confirm
ASK_WITHIN = timedelta(days=1)  # only a sale this recent can be paid with points
REQUEST = "points_request"  # the customer's message (template)
ANSWERED = "points_answered_staff"  # the admin chat's notice (template)
MINOR_PER_POINT = 100
UNANSWERED_PER_RUN = 500  # requests closed per planner run (the rest at the next one)


class AnswerOutcome(StrEnum):
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    EXPIRED = "expired"  # answered too late: nothing spent
    ALREADY = "already"  # answered before (a second tap): nothing changes
    SHORT = "short"  # the balance no longer covers it: nothing spent
    STALE = "stale"  # no such request of theirs, or the sale changed
    UNANSWERED = "unanswered"  # nobody answered before it expired: closed by the planner


@dataclass(frozen=True)
class PointsAsk:
    """A request written and sent to the customer."""

    request_id: int
    customer_id: int
    purchase_id: int
    points: int
    amount_minor: int  # the sale's amount now
    balance: int
    expires_at: datetime


@dataclass(frozen=True)
class PointsAnswer:
    outcome: AnswerOutcome
    points: int = 0
    amount_minor: int = 0  # the sale's original amount
    paid_minor: int = 0  # what is left to pay in money
    balance: int = 0


def cap_of(amount_minor: int, max_share: float) -> int:
    """The most points a sale of this amount may take: `max_share` of it, in whole points."""
    share = Decimal(amount_minor) * Decimal(str(max_share)) / Decimal(MINOR_PER_POINT)
    return int(share.to_integral_value(rounding=ROUND_FLOOR))


async def recount_closed_days(repos: Repos, sold_at: datetime, window_days: int) -> None:
    """/stats keeps the days that are over summed (`sales_days`, `cohort_months`, the campaigns'
    days); a sale changed in one (reduced by points, cancelled) has its days counted again by the
    planner, from the day before its UTC date (whatever the business's zone, its local day is
    in), and the campaigns' days from `window_days` before that."""
    day = sold_at.date() - timedelta(days=1)
    closed = await repos.stats.days_closed_through()
    if closed is not None and closed >= day:
        await repos.stats.reopen_from(day)
    await repos.campaign_days.reopen_from(day - timedelta(days=window_days))


class PointsPayService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        business: Business,
        loyalty: LoyaltyService,
        admin_chat_id: int | None,
        render: Renderer,
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.loyalty = loyalty
        self.admin_chat_id = admin_chat_id
        self.render = render

    def register(self, features: Features) -> None:
        """Requests nobody answered: closed when they expire, the staff told."""
        features.plan("points_unanswered", self.close_unanswered)

    async def close_unanswered(self) -> int:
        """The planner: pending requests past their expiry become expired, and the admin chat
        is told of each, naming who asked (the sale stays at its full amount). The rows are
        taken locked (a customer's tap at that instant waits, or is skipped here and answered
        there), so each is closed once; the notice's key is an answer's, so it is sent once
        whatever happened first. Returns how many were closed."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            requests = await repos.points_requests.unanswered(now, UNANSWERED_PER_RUN)
            for request in requests:
                request.state, request.decided_at = PointsRequestState.EXPIRED, now
                if await repos.points_requests.purchase(request.purchase_id) is None:
                    continue  # the sale was cancelled meanwhile: nothing is left to pay
                await self._tell_staff(repos, request, AnswerOutcome.UNANSWERED, now)
            return len(requests)

    async def ask(self, staff: Staff, purchase_id: int, points: int | None = None) -> PointsAsk:
        """Ask the customer to pay `points` (None: as many as allowed) of this sale; UsageError
        (`pay_*`) when it cannot be asked, and then nothing is written."""
        cashback = self.business.loyalty.cashback
        if not cashback.enabled:
            raise UsageError("pay_off")
        if points is not None and points <= 0:
            raise UsageError("pay_usage")
        now = self.clock.now()
        async with self.db.transaction() as repos:
            purchase = await repos.points_requests.purchase(purchase_id)
            if purchase is None:
                raise UsageError("pay_stale")
            customer = await repos.customers.get(purchase.customer_id, for_update=True)
            if customer is None or customer.erased_at is not None:
                raise UsageError("pay_stale")
            if customer.tg_user_id is None or customer.blocked_at is not None:
                raise UsageError("pay_no_chat")
            if now - purchase.at > ASK_WITHIN:
                raise UsageError("pay_late")
            if await repos.points_requests.open_for(purchase.id, now):
                raise UsageError("pay_open")
            await self.loyalty.expire_in(repos, customer.id, now)
            balance = await repos.loyalty.balance(customer.id)
            cap = cap_of(purchase.amount_minor, cashback.max_share)
            allowed = min(balance, cap)
            if points is None:
                points = allowed
            if points <= 0:
                raise UsageError("pay_nothing", balance=balance, cap=cap)
            if points > allowed:
                raise UsageError("pay_too_many", points=points, balance=balance, cap=cap)
            request = await repos.points_requests.add(
                PointsRequest(
                    customer_id=customer.id,
                    purchase_id=purchase.id,
                    points=points,
                    amount_minor=purchase.amount_minor,
                    state=PointsRequestState.PENDING,
                    staff_id=staff.id,
                    staff_name=staff.name,
                    created_at=now,
                    expires_at=now + REQUEST_TTL,
                )
            )
            lang = customer.language
            await repos.outbox.queue(
                key=f"{REQUEST}:{request.id}",
                kind=OutboxKind.SERVICE,
                template=REQUEST,
                customer_id=customer.id,
                data={
                    "points": points,
                    "amount_minor": purchase.amount_minor,
                    "pay_minor": purchase.amount_minor - points * MINOR_PER_POINT,
                    "balance": balance,
                    "minutes": int(REQUEST_TTL.total_seconds() // 60),
                },
                markup=dump(
                    [
                        [
                            Button(
                                self.render.label(lang, "points_confirm"),
                                AnswerPoints(request.id, True),
                            ),
                            Button(
                                self.render.label(lang, "points_decline"),
                                AnswerPoints(request.id, False),
                            ),
                        ]
                    ]
                ),
                not_before=now,
                not_after=request.expires_at,
                now=now,
            )
            return PointsAsk(
                request.id,
                customer.id,
                purchase.id,
                points,
                purchase.amount_minor,
                balance,
                request.expires_at,
            )

    async def answer(self, customer_id: int, request_id: int, confirm: bool) -> PointsAnswer:
        """The customer's tap. Only their own pending request, before it expires, changes
        anything; the customer's row is locked first, so two taps at once are answered one
        after the other and the second finds it answered."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            if not await repos.loyalty.lock(customer_id):
                return PointsAnswer(AnswerOutcome.STALE)
            request = await repos.points_requests.get(request_id, for_update=True)
            if request is None or request.customer_id != customer_id:
                return PointsAnswer(AnswerOutcome.STALE)
            original = request.amount_minor
            if request.state == PointsRequestState.EXPIRED:  # too late (the staff were told)
                return PointsAnswer(AnswerOutcome.EXPIRED, request.points, original)
            if request.state != PointsRequestState.PENDING:
                return PointsAnswer(AnswerOutcome.ALREADY, request.points, original)
            if now >= request.expires_at:
                request.state, request.decided_at = PointsRequestState.EXPIRED, now
                await self._tell_staff(repos, request, AnswerOutcome.EXPIRED, now)
                return PointsAnswer(AnswerOutcome.EXPIRED, request.points, original)
            if not confirm:
                request.state, request.decided_at = PointsRequestState.DECLINED, now
                await self._tell_staff(repos, request, AnswerOutcome.DECLINED, now)
                balance = await repos.loyalty.balance(customer_id)
                return PointsAnswer(
                    AnswerOutcome.DECLINED, request.points, original, original, balance
                )
            purchase = await repos.points_requests.purchase(request.purchase_id, for_update=True)
            if purchase is None or purchase.amount_minor != original:
                return PointsAnswer(AnswerOutcome.STALE)
            if not await self.loyalty.spend_in(repos, customer_id, request.points, purchase.id):
                balance = await repos.loyalty.balance(customer_id)
                return PointsAnswer(AnswerOutcome.SHORT, request.points, original, 0, balance)
            purchase.amount_minor = original - request.points * MINOR_PER_POINT
            await self._recount_closed_days(repos, purchase.at)
            request.state, request.decided_at = PointsRequestState.CONFIRMED, now
            await self._tell_staff(repos, request, AnswerOutcome.CONFIRMED, now)
            balance = await repos.loyalty.balance(customer_id)
            return PointsAnswer(
                AnswerOutcome.CONFIRMED, request.points, original, purchase.amount_minor, balance
            )

    async def _recount_closed_days(self, repos: Repos, sold_at: datetime) -> None:
        await recount_closed_days(repos, sold_at, self.business.campaigns.window_days)

    async def _tell_staff(
        self, repos: Repos, request: PointsRequest, outcome: AnswerOutcome, now: datetime
    ) -> None:
        """The admin chat hears of the answer (the customer by number: no personal data is
        copied into the outbox row)."""
        if self.admin_chat_id is None:
            return
        await repos.outbox.queue(
            key=f"points_answered:{request.id}",
            kind=OutboxKind.SERVICE,
            template=ANSWERED,
            chat_id=self.admin_chat_id,
            data={
                "outcome": str(outcome),
                "customer_id": request.customer_id,
                "purchase_id": request.purchase_id,
                "points": request.points,
                "amount_minor": request.amount_minor,
                "pay_minor": request.amount_minor - request.points * MINOR_PER_POINT,
                "staff_name": request.staff_name,
            },
            not_before=now,
            not_after=now + timedelta(days=1),
            now=now,
        )
