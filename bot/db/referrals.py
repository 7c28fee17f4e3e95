"""Bring a friend: personal link tokens (`referral_links`) and who brought whom (`referrals`).
The rules are bot/services/referrals.py's; the rows are written in the callers' transactions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Customer, Referral, ReferralLink, ReferralState, WelcomeClaim


@dataclass(frozen=True)
class Referrer:
    """One line of `/referrals`: who brought friends, how many joined, how many of them bought."""

    customer_id: int
    name: str | None
    phone: str | None
    joined: int
    bought: int


class ReferralRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def token_of(self, customer_id: int) -> str | None:
        return await self.session.scalar(
            select(ReferralLink.token).where(ReferralLink.customer_id == customer_id)
        )

    async def add_link(self, customer_id: int, token: str, now: datetime) -> None:
        self.session.add(ReferralLink(customer_id=customer_id, token=token, created_at=now))
        await self.session.flush()

    async def owner_of(self, token: str) -> Customer | None:
        """The (not erased) customer whose link this is."""
        return await self.session.scalar(
            select(Customer)
            .join(ReferralLink, ReferralLink.customer_id == Customer.id)
            .where(ReferralLink.token == token, Customer.erased_at.is_(None))
        )

    async def of_friend(self, friend_id: int) -> Referral | None:
        return await self.session.scalar(select(Referral).where(Referral.friend_id == friend_id))

    async def phone_used(self, phone_key: str) -> bool:
        found = await self.session.scalar(
            select(Referral.id).where(Referral.phone_key == phone_key).limit(1)
        )
        return found is not None

    async def phone_elsewhere(self, phone: str, customer_id: int) -> bool:
        """Another customer (an imported one too) has had this phone."""
        found = await self.session.scalar(
            select(Customer.id).where(Customer.phone == phone, Customer.id != customer_id).limit(1)
        )
        return found is not None

    async def claimed(self, fingerprints: list[str]) -> bool:
        """A welcome coupon went to this account or phone before (they outlive /forget)."""
        found = await self.session.scalar(
            select(WelcomeClaim.fingerprint).where(WelcomeClaim.fingerprint.in_(fingerprints))
        )
        return found is not None

    async def brought_by(self, referrer_id: int, friend_id: int) -> bool:
        """`friend_id` brought `referrer_id` (taking them back would be a loop)."""
        found = await self.session.scalar(
            select(Referral.id).where(
                Referral.referrer_id == friend_id, Referral.friend_id == referrer_id
            )
        )
        return found is not None

    async def add(self, referral: Referral) -> Referral:
        self.session.add(referral)
        await self.session.flush()
        return referral

    async def mark_bought(self, referral_id: int, at: datetime) -> bool:
        """The first purchase: JOINED becomes REWARDED once (a conditional update: two sales
        at once reward once)."""
        done = await self.session.execute(
            update(Referral)
            .where(Referral.id == referral_id, Referral.state == ReferralState.JOINED)
            .values(state=ReferralState.REWARDED, bought_at=at)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(done, "rowcount", 0))

    async def top(self, start: datetime, end: datetime, limit: int) -> list[Referrer]:
        """Referrers of friends who joined in [start, end), most friends first."""
        joined = func.count(Referral.id)
        bought = func.count(case((Referral.bought_at.is_not(None), Referral.id)))
        rows = await self.session.execute(
            select(Customer.id, Customer.name, Customer.phone, joined, bought)
            .join(Referral, Referral.referrer_id == Customer.id)
            .where(
                and_(
                    Referral.state != ReferralState.REFUSED,
                    Referral.joined_at >= start,
                    Referral.joined_at < end,
                )
            )
            .group_by(Customer.id, Customer.name, Customer.phone)
            .order_by(joined.desc(), bought.desc(), Customer.id)
            .limit(limit)
        )
        return [Referrer(*row) for row in rows]

    async def erase(self, customer_id: int) -> int:
        """/forget: their link goes; they are unlinked from who brought whom (the phone's key
        stays, so the bonus is not given twice). Returns the rows touched."""
        touched = 0
        for statement in (
            delete(ReferralLink).where(ReferralLink.customer_id == customer_id),
            update(Referral).where(Referral.friend_id == customer_id).values(friend_id=None),
            update(Referral).where(Referral.referrer_id == customer_id).values(referrer_id=None),
        ):
            result = await self.session.execute(
                statement.execution_options(synchronize_session=False)
            )
            touched += int(getattr(result, "rowcount", 0) or 0)
        return touched
