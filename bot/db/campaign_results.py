"""Campaigns' arms on outbox rows, the winners the owner chose, and what each arm brought.

`record_arms` is what the campaign assignment (`bot.services.campaigns`) writes right after a
planner's rows are inserted: set-wise, a few statements per planner run whatever its size.
`outcomes` is `/stats campaigns`'s live statement: per local day, campaign and arm, the customers
assigned that day (each by their first row of that campaign that day), how many of them were sent
it, used its coupon, and bought within N days of the assignment, and what they spent then. The
unit is the assignment per day: a customer assigned on two days counts twice. The same
statement fills `campaign_days` for the days whose window has passed (`CampaignDaysRepo`), so
the report over years sums those and counts only the last days live.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Interval, and_, case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    CampaignWinner,
    Coupon,
    OutboxError,
    OutboxMessage,
    OutboxState,
    Purchase,
)

CHUNK = 5000  # ids per statement: under every driver's limit on bound parameters
HOLDOUT = "holdout"
WELCOME = "welcome"  # the welcome coupon's kind, and its campaign's name in the report
JULIAN_SLACK = 1e-8  # days (under a millisecond): the rounding of SQLite's julianday()


class Planned(NamedTuple):
    """An outbox row a planner just wrote (what `OutboxRepo.plan` returns to the assignment)."""

    id: int
    key: str
    customer_id: int | None
    kind: str


# The campaign assignment: called by `OutboxRepo.plan` with the rows it just inserted, in the
# same transaction, when the composition root set one (`Database.assign`).
Assign = Callable[["CampaignResultsRepo", list[Planned]], Awaitable[None]]


class Day(NamedTuple):
    """One local day of the business as [start, end) in time (23 or 25 hours on a DST change)."""

    day: date
    start: datetime
    end: datetime


@dataclass(frozen=True)
class ArmRow:
    """One campaign's arm on one local day (or summed over days), as counted (the service turns
    it into an ArmOutcome). `customers` counts assignments: a customer per day."""

    campaign: str
    arm: str
    customers: int
    sent: int
    redeemed: int
    came_back: int
    revenue_minor: int
    day: date | None = None


def day_of(column: Any, days: Sequence[Day]) -> Any:
    """Which of these consecutive days (its index) a moment falls on; the caller keeps the
    moments within [days[0].start, days[-1].end). Bounds computed in Python, so each database
    tells the business's local day the same way, DST included."""
    if len(days) == 1:
        return literal(0)
    return case(
        *((column < day.end, index) for index, day in enumerate(days[:-1])), else_=len(days) - 1
    )


class CampaignResultsRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- assignment ------------------------------------------------------------------------------

    async def winners(self) -> dict[str, str]:
        """campaign → the arm the owner made its default."""
        rows = await self.session.execute(select(CampaignWinner.campaign, CampaignWinner.arm))
        return {campaign: arm for campaign, arm in rows}

    async def record_arms(self, campaign: str, arm: str, ids: Iterable[int]) -> None:
        """These rows are the campaign's, in this arm; a held-out row is closed at once (skipped,
        error code `holdout`): it stays to be counted and is never sent."""
        values: dict[str, Any] = {"campaign": campaign, "arm": arm}
        if arm == HOLDOUT:
            values.update(
                state=OutboxState.SKIPPED, error_code=OutboxError.HOLDOUT, last_error=HOLDOUT
            )
        wanted = list(ids)
        for start in range(0, len(wanted), CHUNK):
            await self.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(wanted[start : start + CHUNK]))
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    async def choose_winner(self, campaign: str, arm: str, by: str, now: datetime) -> bool:
        """Record the default variant; False when one was chosen already (a second tap)."""
        if await self.session.get(CampaignWinner, campaign, with_for_update=True) is not None:
            return False
        self.session.add(CampaignWinner(campaign=campaign, arm=arm, chosen_at=now, chosen_by=by))
        await self.session.flush()
        return True

    # ---- results ---------------------------------------------------------------------------------

    def _within(self, later: Any, earlier: Any, days: int) -> ColumnElement[bool]:
        """`later` after `earlier` by at most `days` days (each database's date arithmetic)."""
        if self.session.get_bind().dialect.name == "postgresql":
            return and_(later > earlier, later <= earlier + literal(timedelta(days=days), Interval))
        # SQLite keeps text datetimes: compared as text for the index, as days for the span (to
        # a millisecond: a julian day's double holds about 50 µs)
        span = func.julianday(later) - func.julianday(earlier)
        return and_(later > earlier, span <= days + JULIAN_SLACK)

    def _purchases_after(
        self, customer_id: Any, at: Any, start: datetime, end: datetime, window_days: int
    ) -> ColumnElement[bool]:
        """The join to the purchases of `customer_id` within `window_days` after `at`, for
        moments `at` in [start, end): only the purchases that can fall in a window, so a hash
        join reads no others."""
        return and_(
            Purchase.customer_id == customer_id,
            Purchase.at > start,
            Purchase.at <= end + timedelta(days=window_days, seconds=1),
            self._within(Purchase.at, at, window_days),
        )

    async def outcomes(self, days: Sequence[Day], window_days: int) -> list[ArmRow]:
        """Per consecutive local day, campaign and arm, the customers with a row of that
        campaign and arm planned that day: assigned, sent, coupon redeemed, came back (a
        purchase within `window_days` after their first such row that day) and their spending
        then. A customer counts once per day and arm, on each day they were assigned; one whose
        arm changed (the owner changed the share, or chose a winner) counts in each arm they
        were in. One statement: the days' rows from the covering campaign index, one row per
        customer, day and arm, their purchases by the (customer_id, at) index, summed per day
        and arm."""
        if not days:
            return []
        start, end = days[0].start, days[-1].end
        o = OutboxMessage
        # the day computed once per row, in a subquery: PostgreSQL would not match a grouped
        # expression's bound parameters with the selected one's
        planned = (
            select(
                o.campaign.label("campaign"),
                o.customer_id.label("customer_id"),
                o.arm.label("arm"),
                day_of(o.created_at, days).label("day"),
                o.created_at.label("at"),
                o.state.label("state"),
                o.coupon_id.label("coupon_id"),
            )
            .where(
                o.campaign.is_not(None),
                o.customer_id.is_not(None),
                o.created_at >= start,
                o.created_at < end,
            )
            .subquery("planned")
        )
        p = planned.c
        per_customer = (
            select(
                p.campaign,
                p.customer_id,
                p.arm,
                p.day,
                func.min(p.at).label("at"),
                func.max(case((p.state == OutboxState.SENT, 1), else_=0)).label("sent"),
                func.max(case((Coupon.redeemed_at.is_not(None), 1), else_=0)).label("redeemed"),
            )
            .select_from(planned)
            .outerjoin(Coupon, Coupon.id == p.coupon_id)
            .group_by(p.campaign, p.customer_id, p.arm, p.day)
            .subquery("assigned")
        )
        a = per_customer.c
        with_purchases = (
            select(
                a.campaign,
                a.arm,
                a.day,
                a.sent,
                a.redeemed,
                case((func.count(Purchase.id) > 0, 1), else_=0).label("came_back"),
                func.coalesce(func.sum(Purchase.amount_minor), 0).label("revenue"),
            )
            .select_from(per_customer)
            .outerjoin(
                Purchase,
                self._purchases_after(a.customer_id, a.at, start, end, window_days),
            )
            .group_by(a.campaign, a.customer_id, a.arm, a.day, a.sent, a.redeemed)
            .subquery("outcomes")
        )
        w = with_purchases.c
        query = (
            select(
                w.day,
                w.campaign,
                w.arm,
                func.count(),
                func.sum(w.sent),
                func.sum(w.redeemed),
                func.sum(w.came_back),
                func.sum(w.revenue),
            )
            .group_by(w.day, w.campaign, w.arm)
            .order_by(w.day, w.campaign, w.arm)
        )
        return [
            ArmRow(
                campaign=str(campaign),
                arm=str(arm or "a"),  # the assignment always records both
                customers=int(customers),
                sent=int(sent or 0),
                redeemed=int(redeemed or 0),
                came_back=int(came_back or 0),
                revenue_minor=int(revenue or 0),
                day=days[int(index)].day,
            )
            for index, campaign, arm, customers, sent, redeemed, came_back, revenue in (
                await self.session.execute(query)
            )
        ]

    async def welcome(self, days: Sequence[Day], window_days: int) -> list[ArmRow]:
        """The welcome coupons given on these consecutive days, per day, as the one arm of the
        campaign "welcome" (no outbox row and no holdout: onboarding promises it): the customers
        who got one, how many used it, came back (bought within `window_days` of it) and spent
        then."""
        if not days:
            return []
        start, end = days[0].start, days[-1].end
        given = (
            select(
                Coupon.id.label("id"),
                Coupon.customer_id.label("customer_id"),
                Coupon.issued_at.label("at"),
                day_of(Coupon.issued_at, days).label("day"),
                case((Coupon.redeemed_at.is_not(None), 1), else_=0).label("redeemed"),
            )
            .where(
                Coupon.kind == WELCOME,
                Coupon.customer_id.is_not(None),
                Coupon.issued_at >= start,
                Coupon.issued_at < end,
            )
            .subquery("given")
        )
        g = given.c
        per_coupon = (
            select(
                g.day,
                g.redeemed,
                case((func.count(Purchase.id) > 0, 1), else_=0).label("came_back"),
                func.coalesce(func.sum(Purchase.amount_minor), 0).label("revenue"),
            )
            .select_from(given)
            .outerjoin(
                Purchase,
                self._purchases_after(g.customer_id, g.at, start, end, window_days),
            )
            .group_by(g.id, g.day, g.redeemed)
            .subquery("welcomed")
        )
        w = per_coupon.c
        rows = await self.session.execute(
            select(
                w.day,
                func.count(),
                func.sum(w.redeemed),
                func.sum(w.came_back),
                func.sum(w.revenue),
            )
            .group_by(w.day)
            .order_by(w.day)
        )
        return [
            ArmRow(
                campaign=WELCOME,
                arm="a",
                customers=int(customers),
                sent=int(customers),
                redeemed=int(redeemed or 0),
                came_back=int(came_back or 0),
                revenue_minor=int(revenue or 0),
                day=days[int(index)].day,
            )
            for index, customers, redeemed, came_back, revenue in rows
        ]
