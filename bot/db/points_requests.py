"""Requests to pay part of a sale with points (`points_requests`, migration 0020)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import PointsRequest, PointsRequestState, Purchase


class PointsRequestRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, request: PointsRequest) -> PointsRequest:
        self.session.add(request)
        await self.session.flush()
        return request

    async def get(self, request_id: int, *, for_update: bool = False) -> PointsRequest | None:
        query = select(PointsRequest).where(PointsRequest.id == request_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query.execution_options(populate_existing=True))

    async def purchase(self, purchase_id: int, *, for_update: bool = False) -> Purchase | None:
        query = select(Purchase).where(Purchase.id == purchase_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query.execution_options(populate_existing=True))

    async def open_for(self, purchase_id: int, now: datetime) -> bool:
        """A request of this sale that still waits for the customer (not past its expiry) or
        was paid already."""
        return bool(
            await self.session.scalar(
                select(
                    exists().where(
                        PointsRequest.purchase_id == purchase_id,
                        or_(
                            PointsRequest.state == PointsRequestState.CONFIRMED,
                            and_(
                                PointsRequest.state == PointsRequestState.PENDING,
                                PointsRequest.expires_at > now,
                            ),
                        ),
                    )
                )
            )
        )

    async def unanswered(self, now: datetime, limit: int) -> list[PointsRequest]:
        """Pending requests past their expiry, the oldest first, locked (PostgreSQL; those a
        customer's tap holds right now are left to it); at most `limit`."""
        query = (
            select(PointsRequest)
            .where(
                PointsRequest.state == PointsRequestState.PENDING,
                PointsRequest.expires_at <= now,
            )
            .order_by(PointsRequest.expires_at, PointsRequest.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(query.execution_options(populate_existing=True)))
