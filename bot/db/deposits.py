"""Deposits and the no-show count (`deposits`, `deposit_marks`, migration 0027)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    ACTIVE_BOOKING,
    Booking,
    BookingState,
    Deposit,
    DepositMark,
    DepositState,
    Purchase,
)

LATE_CANCEL = "late"  # a booking's `reason` when it was cancelled inside the cancel window


class DepositRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, deposit: Deposit) -> Deposit:
        self.session.add(deposit)
        await self.session.flush()
        return deposit

    async def _one(self, where: object, *, for_update: bool) -> Deposit | None:
        query = select(Deposit).where(where)  # type: ignore[arg-type]
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query.execution_options(populate_existing=True))

    async def of_booking(self, booking_id: int, *, for_update: bool = False) -> Deposit | None:
        return await self._one(Deposit.booking_id == booking_id, for_update=for_update)

    async def by_token(self, token: str, *, for_update: bool = False) -> Deposit | None:
        return await self._one(Deposit.token == token, for_update=for_update)

    async def by_charge(self, telegram_charge_id: str) -> Deposit | None:
        return await self._one(Deposit.telegram_charge_id == telegram_charge_id, for_update=False)

    async def expired_holds(self, now: datetime, limit: int = 500) -> list[Deposit]:
        """Deposits still awaited whose hold ran out (their bookings still held)."""
        query = (
            select(Deposit)
            .where(Deposit.state == DepositState.AWAITING, Deposit.hold_until <= now)
            .order_by(Deposit.hold_until, Deposit.id)
            .limit(limit)
            .with_for_update()
        )
        return list(await self.session.scalars(query))

    async def holds_of(self, customer_id: int) -> list[Booking]:
        """The customer's bookings held for a deposit not paid yet."""
        query = select(Booking).where(
            Booking.customer_id == customer_id, Booking.state == BookingState.HELD
        )
        return list(await self.session.scalars(query.with_for_update()))

    async def misses(self, customer_id: int) -> int:
        """No-shows and late cancellations: what the no-show policy counts."""
        query = select(func.count(Booking.id)).where(
            Booking.customer_id == customer_id,
            or_(
                Booking.state == BookingState.NO_SHOW,
                and_(Booking.state == BookingState.CANCELLED, Booking.reason == LATE_CANCEL),
            ),
        )
        return int(await self.session.scalar(query) or 0)

    async def has_visited(self, customer_id: int) -> bool:
        """A sale recorded (or imported) for them, or a visit marked done: not a first-timer."""
        bought = select(Purchase.id).where(Purchase.customer_id == customer_id).limit(1)
        done = (
            select(Booking.id)
            .where(Booking.customer_id == customer_id, Booking.state == BookingState.DONE)
            .limit(1)
        )
        return (await self.session.scalar(bought)) is not None or (
            await self.session.scalar(done)
        ) is not None

    async def mark(self, customer_id: int) -> DepositMark | None:
        return await self.session.get(DepositMark, customer_id)

    async def set_mark(self, mark: DepositMark) -> None:
        self.session.add(mark)
        await self.session.flush()

    async def unmark(self, customer_id: int) -> None:
        await self.session.execute(
            delete(DepositMark).where(DepositMark.customer_id == customer_id)
        )

    async def paid_for_sale(
        self, customer_id: int, service_id: str | None, until: datetime
    ) -> list[tuple[Deposit, Booking]]:
        """Paid deposits of this customer's visits for this service starting before `until` (the
        end of the sale's day), earliest first: what a sale of that service settles."""
        query = (
            select(Deposit, Booking)
            .join(Booking, Booking.id == Deposit.booking_id)
            .where(
                Deposit.customer_id == customer_id,
                Deposit.state == DepositState.PAID,
                Booking.state.in_((*ACTIVE_BOOKING, BookingState.DONE)),
                Booking.starts_at < until,
            )
            .order_by(Booking.starts_at)
            .with_for_update(of=Deposit)
        )
        if service_id is not None:
            query = query.where(Deposit.service_id == service_id)
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def of_customer(self, customer_id: int) -> list[Deposit]:
        query = select(Deposit).where(Deposit.customer_id == customer_id).order_by(Deposit.id)
        return list(await self.session.scalars(query))

    async def forget(self, customer_id: int) -> int:
        """`/forget`: the mark deleted; the money records kept (accounting), unlinked."""
        await self.unmark(customer_id)
        result = await self.session.execute(
            update(Deposit).where(Deposit.customer_id == customer_id).values(customer_id=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)
