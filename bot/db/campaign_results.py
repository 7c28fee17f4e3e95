"""Campaigns' arms on outbox rows, the winners the owner chose, and what each arm brought.

`record_arms` is what the campaign assignment (`bot.services.campaigns`) writes right after a
planner's rows are inserted: set-wise, a few statements per planner run whatever its size.
`outcomes` is `/stats campaigns`'s one statement: per campaign and arm, the customers assigned in
the period (each by their first row of that campaign in it), how many of them were sent it, used
its coupon, and bought within N days of the assignment, and what they spent then.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
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


@dataclass(frozen=True)
class ArmRow:
    """One campaign's arm in a period, as counted (the service turns it into an ArmOutcome)."""

    campaign: str
    arm: str
    customers: int
    sent: int
    redeemed: int
    came_back: int
    revenue_minor: int


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

    async def outcomes(self, start: datetime, end: datetime, window_days: int) -> list[ArmRow]:
        """Per campaign and arm, the customers with a row of that campaign and arm planned in
        [start, end): assigned, sent, coupon redeemed, came back (a purchase within
        `window_days` after their first such row) and their spending then. A customer whose arm
        changed within the period (the owner changed the share, or chose a winner) counts in
        each arm they were in. One statement: the period's rows from the covering campaign
        index, one row per customer and arm, their purchases by the (customer_id, at) index,
        summed per arm."""
        o = OutboxMessage
        per_customer = (
            select(
                o.campaign.label("campaign"),
                o.customer_id.label("customer_id"),
                o.arm.label("arm"),
                func.min(o.created_at).label("at"),
                func.max(case((o.state == OutboxState.SENT, 1), else_=0)).label("sent"),
                func.max(case((Coupon.redeemed_at.is_not(None), 1), else_=0)).label("redeemed"),
            )
            .outerjoin(Coupon, Coupon.id == o.coupon_id)
            .where(
                o.campaign.is_not(None),
                o.customer_id.is_not(None),
                o.created_at >= start,
                o.created_at < end,
            )
            .group_by(o.campaign, o.customer_id, o.arm)
            .subquery("assigned")
        )
        a = per_customer.c
        with_purchases = (
            select(
                a.campaign,
                a.arm,
                a.sent,
                a.redeemed,
                case((func.count(Purchase.id) > 0, 1), else_=0).label("came_back"),
                func.coalesce(func.sum(Purchase.amount_minor), 0).label("revenue"),
            )
            .select_from(per_customer)
            .outerjoin(
                Purchase,
                and_(
                    Purchase.customer_id == a.customer_id,
                    # only the purchases that can fall in a window: a hash join reads no others
                    Purchase.at > start,
                    Purchase.at <= end + timedelta(days=window_days, seconds=1),
                    self._within(Purchase.at, a.at, window_days),
                ),
            )
            .group_by(a.campaign, a.customer_id, a.arm, a.sent, a.redeemed)
            .subquery("outcomes")
        )
        w = with_purchases.c
        query = (
            select(
                w.campaign,
                w.arm,
                func.count(),
                func.sum(w.sent),
                func.sum(w.redeemed),
                func.sum(w.came_back),
                func.sum(w.revenue),
            )
            .group_by(w.campaign, w.arm)
            .order_by(w.campaign, w.arm)
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
            )
            for campaign, arm, customers, sent, redeemed, came_back, revenue in (
                await self.session.execute(query)
            )
        ]

    async def welcome(self, start: datetime, end: datetime, window_days: int) -> ArmRow | None:
        """The welcome coupons given in [start, end), as the one arm of the campaign "welcome"
        (no outbox row and no holdout: onboarding promises it): the customers who got one, how
        many used it, came back (bought within `window_days` of it) and spent then."""
        given = (
            select(
                Coupon.id.label("id"),
                Coupon.customer_id.label("customer_id"),
                Coupon.issued_at.label("at"),
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
                g.redeemed,
                case((func.count(Purchase.id) > 0, 1), else_=0).label("came_back"),
                func.coalesce(func.sum(Purchase.amount_minor), 0).label("revenue"),
            )
            .select_from(given)
            .outerjoin(
                Purchase,
                and_(
                    Purchase.customer_id == g.customer_id,
                    Purchase.at > start,
                    Purchase.at <= end + timedelta(days=window_days, seconds=1),
                    self._within(Purchase.at, g.at, window_days),
                ),
            )
            .group_by(g.id, g.redeemed)
            .subquery("welcomed")
        )
        w = per_coupon.c
        customers, redeemed, came_back, revenue = (
            await self.session.execute(
                select(
                    func.count(), func.sum(w.redeemed), func.sum(w.came_back), func.sum(w.revenue)
                )
            )
        ).one()
        if not customers:
            return None
        return ArmRow(
            campaign=WELCOME,
            arm="a",
            customers=int(customers),
            sent=int(customers),
            redeemed=int(redeemed or 0),
            came_back=int(came_back or 0),
            revenue_minor=int(revenue or 0),
        )
