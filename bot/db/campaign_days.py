"""What each campaign's arm brought per local day, for the days whose window has passed
(`campaign_days`): `/stats campaigns` over years sums these rather than seeking every assigned
customer's purchases again. Counts only (per day, campaign and arm), nothing about a person:
erasure (/forget) need not touch it.

A closed day is written whole, with a marker row (campaign "" and arm "") even when nothing was
assigned that day, so "closed through" is the latest marker; an import of old visits deletes the
days it may change (`reopen_from`), and the planner closes them again. A closed day is frozen:
a coupon used or a message sent after its window no longer changes it (the live count would).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.campaign_results import WELCOME, ArmRow
from bot.db.models import CampaignDay, Coupon, OutboxMessage, Purchase

MARKER = ""  # campaign and arm of the row saying "this day is closed"


class CampaignDaysRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def closed_through(self) -> date | None:
        """The last closed day; every day up to it is closed (the planner closes them oldest
        first, a reopening deletes a day and all after it)."""
        return await self.session.scalar(select(func.max(CampaignDay.day)))

    async def earliest(self) -> datetime | None:
        """The first campaign row or welcome coupon: where closing starts on an empty table."""
        planned = await self.session.scalar(
            select(func.min(OutboxMessage.created_at)).where(OutboxMessage.campaign.is_not(None))
        )
        welcomed = await self.session.scalar(
            select(func.min(Coupon.issued_at)).where(Coupon.kind == WELCOME)
        )
        moments = [moment for moment in (planned, welcomed) if moment is not None]
        return min(moments) if moments else None

    async def first_bought_after(self, purchase_id: int) -> datetime | None:
        """The earliest moment among the purchases written after that one (by the primary
        key: a range of the newest ids)."""
        return await self.session.scalar(
            select(func.min(Purchase.at)).where(Purchase.id > purchase_id)
        )

    async def replace(self, days: Sequence[date], rows: Sequence[ArmRow]) -> None:
        """These days closed with these counts (recomputing a day replaces its rows)."""
        await self.session.execute(delete(CampaignDay).where(CampaignDay.day.in_(list(days))))
        values = [
            {
                "campaign": MARKER,
                "arm": MARKER,
                "day": day,
                "assigned": 0,
                "sent": 0,
                "redeemed": 0,
                "came_back": 0,
                "revenue_minor": 0,
            }
            for day in days
        ]
        values += [
            {
                "campaign": row.campaign,
                "arm": row.arm,
                "day": row.day,
                "assigned": row.customers,
                "sent": row.sent,
                "redeemed": row.redeemed,
                "came_back": row.came_back,
                "revenue_minor": row.revenue_minor,
            }
            for row in rows
        ]
        await self.session.execute(insert(CampaignDay), values)

    async def totals(self, first: date, last: date) -> list[ArmRow]:
        """Per campaign and arm, the closed days' counts from `first` to `last` summed."""
        c = CampaignDay
        rows = await self.session.execute(
            select(
                c.campaign,
                c.arm,
                func.sum(c.assigned),
                func.sum(c.sent),
                func.sum(c.redeemed),
                func.sum(c.came_back),
                func.sum(c.revenue_minor),
            )
            .where(c.day >= first, c.day <= last, c.campaign != MARKER)
            .group_by(c.campaign, c.arm)
        )
        return [
            ArmRow(
                campaign=str(campaign),
                arm=str(arm),
                customers=int(customers or 0),
                sent=int(sent or 0),
                redeemed=int(redeemed or 0),
                came_back=int(came_back or 0),
                revenue_minor=int(revenue or 0),
            )
            for campaign, arm, customers, sent, redeemed, came_back, revenue in rows
        ]

    async def reopen_from(self, day: date) -> int:
        """Forget the closed days from `day` on (old visits imported: their "came back" may
        change); the planner closes them again. How many rows went."""
        result = await self.session.execute(delete(CampaignDay).where(CampaignDay.day >= day))
        return int(getattr(result, "rowcount", 0) or 0)
