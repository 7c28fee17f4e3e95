"""The owner's numbers broken down (`bot.services.stats_breakdowns`): per master, per source, and
the onboarding funnel, set-wise.

Each figure is one GROUP BY statement, whatever the number of sales or customers: no row of a
purchase or a customer comes to Python, only one row per master or per source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.db.models import (
    Booking,
    BookingState,
    Consent,
    ConsentKind,
    ConsentVia,
    Coupon,
    Customer,
    Purchase,
    Survey,
)

WELCOME = "welcome"  # the welcome coupon's kind (bot.services.customers)


@dataclass(frozen=True)
class MasterSales:
    """One master's sales in a period (`master_id` None: sales recorded without a master)."""

    master_id: str | None
    sales: int = 0
    repeat: int = 0  # sales that were not the customer's first purchase ever
    money_minor: int = 0
    customers: int = 0  # distinct customers they served


@dataclass(frozen=True)
class MasterSurveys:
    """The satisfaction scores (1–5) given in a period about one master's visits."""

    master_id: str | None
    answers: int = 0
    score_sum: int = 0


@dataclass(frozen=True)
class MasterBookings:
    """One master's bookings of a period that came to an end: the visit done, or a no-show."""

    master_id: str
    done: int = 0
    no_show: int = 0


@dataclass(frozen=True)
class SourceJoined:
    """The customers of one deep-link source who joined in Telegram in a period (`source` None:
    no `src_…` link), and where they got to by now.

    The funnel columns are nested (each step also needs all before it); `bought` and
    `bought_again` are not (a customer who skipped the birthday and bought counts there)."""

    source: str | None
    joined: int = 0
    phone: int = 0
    birthday: int = 0
    coupon: int = 0
    first_purchase: int = 0
    second_purchase: int = 0
    bought: int = 0  # bought at least once since joining
    bought_again: int = 0  # at least twice


class StatsBreakdownRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def master_sales(self, start: datetime, end: datetime) -> list[MasterSales]:
        """Sales in [start, end) by master; a sale is a repeat one when its customer had bought
        before (the /stats summary's rule: imported visits count, of two sales at the same moment
        the earlier row is the first), so the masters' repeat sales add up to the summary's.

        Two statements: the totals by master, then the first sales among them, found from the
        period's buyers (one seek each in the (customer, at, id) index of migration 0013), so a
        long period costs a seek per customer, not per sale."""
        inside = and_(Purchase.at >= start, Purchase.at < end)
        totals = (
            select(
                Purchase.master_id,
                func.count(),
                func.coalesce(func.sum(Purchase.amount_minor), 0),
                func.count(func.distinct(Purchase.customer_id)),
            )
            .where(inside)
            .group_by(Purchase.master_id)
        )
        buyers = select(Purchase.customer_id.label("customer_id")).where(inside).distinct()
        buyer = buyers.subquery("buyers")
        earlier = aliased(Purchase)
        first_id = (
            select(earlier.id)
            .where(earlier.customer_id == buyer.c.customer_id)
            .order_by(earlier.at, earlier.id)
            .limit(1)
            .scalar_subquery()
        )
        firsts = select(first_id.label("id")).select_from(buyer).subquery("firsts")
        first_sales = (
            select(Purchase.master_id, func.count())
            .join(firsts, firsts.c.id == Purchase.id)
            .where(inside)
            .group_by(Purchase.master_id)
        )
        first = {m: n for m, n in await self.session.execute(first_sales)}
        return [
            MasterSales(m, int(sales), int(sales) - int(first.get(m, 0)), int(money), int(people))
            for m, sales, money, people in await self.session.execute(totals)
        ]

    async def master_surveys(self, start: datetime, end: datetime) -> list[MasterSurveys]:
        """Scores answered in [start, end), by the master of the visit asked about."""
        query = (
            select(Survey.master_id, func.count(Survey.score), func.sum(Survey.score))
            .where(
                Survey.answered_at >= start,
                Survey.answered_at < end,
                Survey.score.is_not(None),
            )
            .group_by(Survey.master_id)
        )
        return [
            MasterSurveys(m, int(answers), int(total or 0))
            for m, answers, total in await self.session.execute(query)
        ]

    async def master_bookings(self, start: datetime, end: datetime) -> list[MasterBookings]:
        """Bookings starting in [start, end) that ended done or as a no-show, by master (the
        index on state and start serves it)."""
        ended = (BookingState.DONE, BookingState.NO_SHOW)
        query = (
            select(
                Booking.master_id,
                func.count(case((Booking.state == BookingState.DONE, 1))),
                func.count(case((Booking.state == BookingState.NO_SHOW, 1))),
            )
            .where(Booking.state.in_(ended), Booking.starts_at >= start, Booking.starts_at < end)
            .group_by(Booking.master_id)
        )
        return [
            MasterBookings(m, int(done), int(no_show))
            for m, done, no_show in await self.session.execute(query)
        ]

    async def joined_by_source(self, start: datetime, end: datetime) -> list[SourceJoined]:
        """Customers who joined in Telegram in [start, end), by source, and how far they got.

        Joining is their first consent to the processing of their data given in Telegram (the
        customer row is made by it; nothing is stored before). An imported customer without
        Telegram never joined; one who joined later and was recognised by phone joined then.
        Purchases count from the moment of joining (imported history before it does not), up to
        now. Phone and birthday are as stored now: `/forget` empties them."""
        joined = (
            select(
                Consent.customer_id.label("customer_id"),
                func.min(Consent.at).label("joined_at"),
            )
            .where(
                Consent.kind == ConsentKind.PERSONAL_DATA,
                Consent.granted.is_(True),
                Consent.via != ConsentVia.IMPORT,
            )
            .group_by(Consent.customer_id)
            .having(and_(func.min(Consent.at) >= start, func.min(Consent.at) < end))
            .subquery("joined")
        )
        bought = (
            select(Purchase.customer_id.label("customer_id"), func.count().label("n"))
            .join(joined, joined.c.customer_id == Purchase.customer_id)
            .where(Purchase.at >= joined.c.joined_at)
            .group_by(Purchase.customer_id)
            .subquery("bought")
        )
        welcome = (
            select(Coupon.customer_id)
            .where(Coupon.customer_id == Customer.id, Coupon.kind == WELCOME)
            .exists()
        )
        n = func.coalesce(bought.c.n, 0)
        phone = Customer.phone.is_not(None)
        birthday = and_(phone, Customer.birth_month.is_not(None))
        coupon = and_(birthday, welcome)
        query = (
            select(
                Customer.source,
                func.count(),
                func.count(case((phone, 1))),
                func.count(case((birthday, 1))),
                func.count(case((coupon, 1))),
                func.count(case((and_(coupon, n >= 1), 1))),
                func.count(case((and_(coupon, n >= 2), 1))),
                func.count(case((n >= 1, 1))),
                func.count(case((n >= 2, 1))),
            )
            .select_from(joined)
            .join(Customer, Customer.id == joined.c.customer_id)
            .outerjoin(bought, bought.c.customer_id == joined.c.customer_id)
            .group_by(Customer.source)
        )
        return [
            SourceJoined(source, *(int(v) for v in values))
            for source, *values in await self.session.execute(query)
        ]
