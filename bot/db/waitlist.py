"""The waitlist's rows (`waitlist_entries`, `waitlist_offers`) and the no-shows the "we missed
you" message follows. The rules are bot/services/waitlist.py's and bot/services/missed_you.py's;
the rows are written in the callers' transactions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    ACTIVE_BOOKING,
    Booking,
    BookingState,
    Customer,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistOfferState,
)

CANDIDATES = 200  # waiting entries read per freed time (they are filtered by time of day after)


class WaitlistRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- entries ---------------------------------------------------------------------------------

    async def add_entry(self, entry: WaitlistEntry) -> WaitlistEntry:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def entries_of(self, customer_id: int) -> list[WaitlistEntry]:
        query = (
            select(WaitlistEntry)
            .where(WaitlistEntry.customer_id == customer_id)
            .order_by(WaitlistEntry.first_day, WaitlistEntry.id)
        )
        return list(await self.session.scalars(query))

    async def entry(self, entry_id: int) -> WaitlistEntry | None:
        return await self.session.get(WaitlistEntry, entry_id)

    async def drop_entries(self, ids: Iterable[int]) -> int:
        """Delete these entries (their offers stay, unlinked: a tap on one is still answered)."""
        ids = list(ids)
        if not ids:
            return 0
        await self.session.execute(
            update(WaitlistOffer)
            .where(WaitlistOffer.entry_id.in_(ids))
            .values(entry_id=None)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(
            delete(WaitlistEntry)
            .where(WaitlistEntry.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def ended(self, today: date, limit: int = 2000) -> list[int]:
        """Entries whose last day is past."""
        query = (
            select(WaitlistEntry.id)
            .where(WaitlistEntry.last_day < today)
            .order_by(WaitlistEntry.id)
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def waiting_for(
        self,
        service_ids: Iterable[str],
        master_id: str,
        day: date,
        starts_at: datetime,
        *,
        day_bounds: tuple[datetime, datetime],
        offered_at: datetime,
    ) -> list[WaitlistEntry]:
        """Entries that may want this master's time on this day (a service the master does,
        this master or any, the day in their range), whose customer was not offered this time
        yet, nor another of this master's on this day in the same batch (`offered_at`: a whole
        day freed at once is one offer a customer, not one per half hour), and who have no visit
        of that service ahead (booking would refuse them); in order of joining. The time of day is
        the caller's to check."""
        offered = exists().where(
            WaitlistOffer.customer_id == WaitlistEntry.customer_id,
            WaitlistOffer.master_id == master_id,
            WaitlistOffer.starts_at == starts_at,
        )
        booked = exists().where(  # they have that service booked ahead already
            Booking.customer_id == WaitlistEntry.customer_id,
            Booking.service_id == WaitlistEntry.service_id,
            Booking.state.in_(ACTIVE_BOOKING),
            Booking.starts_at > offered_at,
        )
        holding = exists().where(
            WaitlistOffer.customer_id == WaitlistEntry.customer_id,
            WaitlistOffer.master_id == master_id,
            WaitlistOffer.starts_at >= day_bounds[0],
            WaitlistOffer.starts_at < day_bounds[1],
            WaitlistOffer.state == WaitlistOfferState.OFFERED,
            WaitlistOffer.offered_at == offered_at,
        )
        query = (
            select(WaitlistEntry)
            .where(
                WaitlistEntry.service_id.in_(list(service_ids)),
                (WaitlistEntry.master_id.is_(None)) | (WaitlistEntry.master_id == master_id),
                WaitlistEntry.first_day <= day,
                WaitlistEntry.last_day >= day,
                ~offered,
                ~holding,
                ~booked,
                # not someone being erased (their visits' times free before their entries go)
                WaitlistEntry.customer_id.in_(
                    select(Customer.id).where(Customer.erased_at.is_(None))
                ),
            )
            .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
            .limit(CANDIDATES)
        )
        return list(await self.session.scalars(query))

    # ---- offers ----------------------------------------------------------------------------------

    async def add_offer(self, offer: WaitlistOffer) -> WaitlistOffer:
        self.session.add(offer)
        await self.session.flush()
        return offer

    async def offer(self, offer_id: int, *, for_update: bool = False) -> WaitlistOffer | None:
        return await self.session.get(WaitlistOffer, offer_id, with_for_update=for_update)

    async def offers_of(self, customer_id: int) -> list[WaitlistOffer]:
        query = (
            select(WaitlistOffer)
            .where(WaitlistOffer.customer_id == customer_id)
            .order_by(WaitlistOffer.offered_at, WaitlistOffer.id)
        )
        return list(await self.session.scalars(query))

    async def open_offers(self, master_id: str, starts_at: datetime) -> list[WaitlistOffer]:
        query = select(WaitlistOffer).where(
            WaitlistOffer.master_id == master_id,
            WaitlistOffer.starts_at == starts_at,
            WaitlistOffer.state == WaitlistOfferState.OFFERED,
        )
        return list(await self.session.scalars(query.order_by(WaitlistOffer.id)))

    async def close_offers(self, master_id: str, starts_at: datetime) -> list[int]:
        """The time is booked (or no longer free): its open offers are gone; their ids."""
        ids = [o.id for o in await self.open_offers(master_id, starts_at)]
        if ids:
            await self.session.execute(
                update(WaitlistOffer)
                .where(WaitlistOffer.id.in_(ids))
                .values(state=WaitlistOfferState.GONE)
                .execution_options(synchronize_session=False)
            )
        return ids

    async def rounds_over(self, now: datetime, after: datetime) -> list[tuple[str, datetime]]:
        """Offered times still ahead (starting after `after`) whose every offer's answer time is
        past, still open and taken by nobody: the next ones are to be offered them."""

        def count(state: WaitlistOfferState) -> Any:
            return func.sum(case((WaitlistOffer.state == state, 1), else_=0))

        query = (
            select(WaitlistOffer.master_id, WaitlistOffer.starts_at)
            .where(WaitlistOffer.starts_at > after)
            .group_by(WaitlistOffer.master_id, WaitlistOffer.starts_at)
            .having(
                func.max(WaitlistOffer.answer_by) <= now,
                count(WaitlistOfferState.TAKEN) == 0,
                count(WaitlistOfferState.OFFERED) > 0,
            )
            .order_by(WaitlistOffer.starts_at)
            .limit(500)
        )
        return [(m, at) for m, at in await self.session.execute(query)]

    # ---- the customer's erasure ------------------------------------------------------------------

    async def erase(self, customer_id: int) -> None:
        await self.session.execute(
            delete(WaitlistOffer).where(WaitlistOffer.customer_id == customer_id)
        )
        await self.session.execute(
            delete(WaitlistEntry).where(WaitlistEntry.customer_id == customer_id)
        )

    # ---- no-shows ("we missed you") --------------------------------------------------------------

    async def no_shows(self, start: datetime, end: datetime) -> list[Booking]:
        """Visits in [start, end) marked as no-show, by time."""
        query = select(Booking).where(
            Booking.state == BookingState.NO_SHOW,
            Booking.starts_at >= start,
            Booking.starts_at < end,
        )
        return list(await self.session.scalars(query.order_by(Booking.starts_at, Booking.id)))
