"""Reads for `carebot export`, `/export` and `/mydata`: the whole base page by page, and one
customer's every row.

The base is read in pages of plain rows (columns, not ORM objects), each page the next ids after
the last one seen (keyset pagination: an index range, the same cost on page 1 and page 500), so
a base of 100,000 customers and a million visits is never held in memory at once. Each page
carries what a file needs from the customer row (their phone, whether they were erased) by a
join, and a page of customers their staff notes in one more query.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Booking,
    BusinessConnection,
    BusinessMessage,
    CareMessage,
    Certificate,
    CertificateUse,
    Consent,
    Coupon,
    Customer,
    CustomerPackage,
    Cycle,
    Deposit,
    DepositMark,
    LoyaltyEntry,
    LoyaltyTier,
    OutboxMessage,
    OutboxState,
    PackageVisit,
    PointsRequest,
    Purchase,
    Referral,
    ReferralLink,
    StaffAction,
    StaffNote,
    StampEntry,
    Survey,
    WaitlistEntry,
    WaitlistOffer,
)
from bot.db.sales import WITH_CANCELLED

PAGE = 2000  # rows per statement: memory stays flat, and ids in one IN (...) stay few

Page = Sequence[Any]  # rows (sqlalchemy.Row) of the columns each query names


class ExportRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def one_snapshot(self) -> None:
        """The rest of this read transaction sees the base as it was at its first statement, so
        the files agree with each other (a visit's customer is in the customers' file). SQLite's
        read transaction is a snapshot already; PostgreSQL's default (READ COMMITTED) takes a new
        one per statement. Call it first."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})

    async def _pages(self, query: Any, key: Any) -> AsyncIterator[Page]:
        """`query`'s rows in pages, by `key` (an integer primary key, selected first)."""
        last: int | None = None
        while True:
            page = query.order_by(key).limit(PAGE)
            if last is not None:
                page = page.where(key > last)
            rows = (await self.session.execute(page)).all()
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def customers(self) -> AsyncIterator[Page]:
        query = select(
            Customer.id,
            Customer.name,
            Customer.phone,
            Customer.birth_day,
            Customer.birth_month,
            Customer.birth_year,
            Customer.tg_user_id,
            Customer.username,
            Customer.language,
            Customer.source,
            Customer.marketing_opt_out,
            Customer.data_consent_version,
            Customer.created_at,
            Customer.onboarded_at,
            Customer.imported_at,
            Customer.blocked_at,
            Customer.erased_at,
        )
        return self._pages(query, Customer.id)

    async def notes_of(self, customer_ids: Iterable[int]) -> dict[int, list[str]]:
        """The staff notes of these customers (a page of them), oldest first, in one query."""
        query = (
            select(StaffNote.customer_id, StaffNote.text)
            .where(StaffNote.customer_id.in_(list(customer_ids)))
            .order_by(StaffNote.customer_id, StaffNote.id)
        )
        found: dict[int, list[str]] = {}
        for customer_id, text in await self.session.execute(query):
            found.setdefault(customer_id, []).append(text)
        return found

    def visits(self) -> AsyncIterator[Page]:
        query = select(
            Purchase.id,
            Purchase.at,
            Customer.phone,
            Customer.name,
            Purchase.service_id,
            Purchase.master_id,
            Purchase.amount_minor,
            Purchase.customer_id,
            Purchase.staff_name,
            Customer.erased_at,
        ).join(Customer, Customer.id == Purchase.customer_id)
        return self._pages(query, Purchase.id)

    def coupons(self) -> AsyncIterator[Page]:
        query = select(
            Coupon.id,
            Coupon.code,
            Coupon.customer_id,
            Customer.phone,
            Coupon.kind,
            Coupon.percent,
            Coupon.amount,
            Coupon.issued_at,
            Coupon.expires_at,
            Coupon.redeemed_at,
            Coupon.redeemed_by_name,
            Coupon.voided_at,
            Customer.erased_at,
        ).outerjoin(Customer, Customer.id == Coupon.customer_id)
        return self._pages(query, Coupon.id)

    def bookings(self) -> AsyncIterator[Page]:
        query = select(
            Booking.id,
            Booking.customer_id,
            Customer.phone,
            Booking.service_id,
            Booking.master_id,
            Booking.starts_at,
            Booking.ends_at,
            Booking.state,
            Booking.source,
            Booking.created_at,
            Booking.decided_at,
            Booking.decided_by,
            Booking.reason,
            Booking.purchase_id,
            Customer.erased_at,
        ).join(Customer, Customer.id == Booking.customer_id)
        return self._pages(query, Booking.id)

    def surveys(self) -> AsyncIterator[Page]:
        query = select(
            Survey.id,
            Survey.purchase_id,
            Survey.customer_id,
            Customer.phone,
            Survey.service_id,
            Survey.master_id,
            Survey.planned_at,
            Survey.answered_at,
            Survey.score,
            Survey.comment,
            Survey.resolved_at,
            Survey.resolved_by,
            Customer.erased_at,
        ).join(Customer, Customer.id == Survey.customer_id)
        return self._pages(query, Survey.id)

    def consents(self) -> AsyncIterator[Page]:
        query = select(
            Consent.id,
            Consent.customer_id,
            Customer.phone,
            Consent.kind,
            Consent.granted,
            Consent.version,
            Consent.via,
            Consent.at,
            Customer.erased_at,
        ).join(Customer, Customer.id == Consent.customer_id)
        return self._pages(query, Consent.id)

    def certificates(self) -> AsyncIterator[Page]:
        """Gift certificates, with their claimer's phone (none when unclaimed or erased)."""
        query = select(
            Certificate.id,
            Certificate.code,
            Certificate.amount_minor,
            Certificate.for_name,
            Certificate.created_at,
            Certificate.issued_by_name,
            Certificate.customer_id,
            Customer.phone,
            Certificate.claimed_at,
            Certificate.expires_at,
            Customer.erased_at,
        ).outerjoin(Customer, Customer.id == Certificate.customer_id)
        return self._pages(query, Certificate.id)

    async def certificate_uses_of(
        self, certificate_ids: Iterable[int]
    ) -> dict[int, list[tuple[Any, int, str]]]:
        """The spendings (when, amount, staff) of these certificates (a page of them), oldest
        first, in one query."""
        query = (
            select(
                CertificateUse.certificate_id,
                CertificateUse.at,
                CertificateUse.amount_minor,
                CertificateUse.staff_name,
            )
            .where(CertificateUse.certificate_id.in_(list(certificate_ids)))
            .order_by(CertificateUse.certificate_id, CertificateUse.id)
        )
        found: dict[int, list[tuple[Any, int, str]]] = {}
        for certificate_id, at, amount, staff in await self.session.execute(query):
            found.setdefault(certificate_id, []).append((at, amount, staff))
        return found

    async def person(self, tg_user_id: int) -> PersonRows | None:
        """Everything stored about one customer (`/mydata`): a query per kind of row, however
        long their history (eighteen in all)."""
        customer = (
            await self.session.scalars(select(Customer).where(Customer.tg_user_id == tg_user_id))
        ).one_or_none()
        if customer is None:
            return None

        async def of(model: Any, *order: Any, where: Any = None) -> list[Any]:
            condition = model.customer_id == customer.id if where is None else where
            return list(await self.session.scalars(select(model).where(condition).order_by(*order)))

        packages, package_visits = await self._packages(customer.id)
        return PersonRows(
            customer=customer,
            consents=await of(Consent, Consent.at, Consent.id),
            # a sale staff cancelled too, marked (`cancelled_at`): it is still kept about them
            visits=list(
                await self.session.scalars(
                    select(Purchase)
                    .where(Purchase.customer_id == customer.id)
                    .order_by(Purchase.at, Purchase.id)
                    .execution_options(**{WITH_CANCELLED: True})
                )
            ),
            coupons=await of(Coupon, Coupon.issued_at, Coupon.id),
            bookings=await of(Booking, Booking.starts_at, Booking.id),
            surveys=await of(Survey, Survey.planned_at, Survey.id),
            # what they wrote before they consented is theirs too (kept by their account)
            care=await of(
                CareMessage,
                CareMessage.at,
                CareMessage.id,
                where=or_(
                    CareMessage.customer_id == customer.id, CareMessage.tg_user_id == tg_user_id
                ),
            ),
            notes=await of(StaffNote, StaffNote.at, StaffNote.id),
            staff_actions=await of(StaffAction, StaffAction.at, StaffAction.id),
            cycles=await of(Cycle, Cycle.service_id),
            points=await of(LoyaltyEntry, LoyaltyEntry.created_at, LoyaltyEntry.id),
            certificates=await of(Certificate, Certificate.created_at, Certificate.id),
            tier=await of(LoyaltyTier, LoyaltyTier.since),
            points_requests=await of(PointsRequest, PointsRequest.created_at, PointsRequest.id),
            referral_link=await of(ReferralLink, ReferralLink.created_at),
            referrals=await of(
                Referral,
                Referral.joined_at,
                Referral.id,
                where=or_(Referral.referrer_id == customer.id, Referral.friend_id == customer.id),
            ),
            certificate_uses=await of(
                CertificateUse,
                CertificateUse.at,
                CertificateUse.id,
                where=CertificateUse.certificate_id.in_(
                    select(Certificate.id).where(Certificate.customer_id == customer.id)
                ),
            ),
            waitlist=await of(WaitlistEntry, WaitlistEntry.first_day, WaitlistEntry.id),
            waitlist_offers=await of(WaitlistOffer, WaitlistOffer.offered_at, WaitlistOffer.id),
            stamps=await of(StampEntry, StampEntry.id),
            **await self._deposits(customer.id),
            business=await self._business(customer.id, tg_user_id),
            packages=packages,
            package_visits=package_visits,
            messages=await of(
                OutboxMessage,
                OutboxMessage.sent_at,
                OutboxMessage.id,
                where=(OutboxMessage.customer_id == customer.id)
                & OutboxMessage.chat_id.is_(None)  # to them, not a notice about them to staff
                & (OutboxMessage.state == OutboxState.SENT),
            ),
        )

    async def _packages(self, customer_id: int) -> tuple[list[Any], list[Any]]:
        """Their prepaid packages and the visits each paid, in one statement."""
        rows = (
            await self.session.execute(
                select(CustomerPackage, PackageVisit)
                .outerjoin(PackageVisit, PackageVisit.package_id == CustomerPackage.id)
                .where(CustomerPackage.customer_id == customer_id)
                .order_by(
                    CustomerPackage.sold_at, CustomerPackage.id, PackageVisit.at, PackageVisit.id
                )
            )
        ).all()
        packages = list(dict.fromkeys(package for package, _ in rows))
        return packages, [visit for _, visit in rows if visit is not None]

    async def _business(self, customer_id: int, tg_user_id: int) -> list[Any]:
        """Their messages in chats with connected Telegram Business accounts (theirs and the
        owners'), with the account's name and the words kept, in one statement."""
        query = (
            select(
                BusinessMessage.at,
                BusinessMessage.from_owner,
                BusinessMessage.edited_at,
                BusinessMessage.deleted_at,
                BusinessConnection.owner_name,
                CareMessage.text,
            )
            .outerjoin(BusinessConnection, BusinessConnection.id == BusinessMessage.connection_id)
            .outerjoin(CareMessage, CareMessage.id == BusinessMessage.care_id)
            .where(
                or_(
                    BusinessMessage.customer_id == customer_id,
                    BusinessMessage.tg_user_id == tg_user_id,
                )
            )
            .order_by(BusinessMessage.at, BusinessMessage.id)
        )
        return list((await self.session.execute(query)).all())

    async def _deposits(self, customer_id: int) -> dict[str, Any]:
        """Their deposits and the staff's "only with deposit" mark, in one statement."""
        rows = (
            await self.session.execute(
                select(DepositMark, Deposit)
                .select_from(Customer)
                .outerjoin(DepositMark, DepositMark.customer_id == Customer.id)
                .outerjoin(Deposit, Deposit.customer_id == Customer.id)
                .where(Customer.id == customer_id)
                .order_by(Deposit.created_at, Deposit.id)
            )
        ).all()
        marks = [mark for mark, _ in rows[:1] if mark is not None]
        return {"deposits": [d for _, d in rows if d is not None], "deposit_mark": marks}


@dataclass(frozen=True)
class PersonRows:
    customer: Customer
    consents: list[Consent]
    visits: list[Purchase]
    coupons: list[Coupon]
    bookings: list[Booking]
    surveys: list[Survey]
    care: list[CareMessage]
    notes: list[StaffNote]
    staff_actions: list[StaffAction]
    cycles: list[Cycle]
    messages: list[OutboxMessage]
    points: list[LoyaltyEntry]
    certificates: list[Certificate]
    certificate_uses: list[CertificateUse]
    tier: list[LoyaltyTier]
    points_requests: list[PointsRequest]
    referral_link: list[ReferralLink]
    referrals: list[Referral]
    packages: list[CustomerPackage]  # prepaid packages, and the visits they paid
    package_visits: list[PackageVisit]
    waitlist: list[WaitlistEntry]  # the times they wait for, and the freed ones offered
    waitlist_offers: list[WaitlistOffer]
    stamps: list[StampEntry]
    deposits: list[Deposit] = field(default_factory=list)  # bot/services/deposits.py
    deposit_mark: list[DepositMark] = field(default_factory=list)
    business: list[Any] = field(default_factory=list)  # bot/services/business_chats.py
