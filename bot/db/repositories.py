"""Repositories: the only place that knows SQL (with `bot.db.queries`, the set-wise conditions and
planned rows they run). Services get them from `Database.transaction()` / `reading()` and hold
no SQLAlchemy statement and no session."""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.db.business_chats import BusinessRepo
from bot.db.campaign_days import CampaignDaysRepo
from bot.db.campaign_results import Assign, CampaignResultsRepo, Planned
from bot.db.certificates import CertificateRepo
from bot.db.deposits import DepositRepo
from bot.db.engine import READING, SQLITE_BUSY_TIMEOUT_MS, STATEMENT, create_sessionmaker
from bot.db.erasure import ErasureRepo
from bot.db.exporting import ExportRepo
from bot.db.importing import ImportRepo
from bot.db.loyalty import LoyaltyRepo
from bot.db.merging import MergeRepo
from bot.db.models import (
    ACTIVE_BOOKING,
    OUTBOX_WAITING,
    Booking,
    BookingCell,
    BookingState,
    Broadcast,
    BroadcastState,
    CareDirection,
    CareMessage,
    CareTopic,
    Consent,
    ConsentKind,
    ConsentVia,
    Coupon,
    Customer,
    Cycle,
    DayOff,
    FsmRecord,
    MasterAccount,
    MasterInvite,
    OutboxError,
    OutboxKind,
    OutboxMessage,
    OutboxState,
    Purchase,
    StaffAction,
    StaffNote,
    Survey,
    UTCDateTime,
    WelcomeClaim,
)
from bot.db.onboarding_starts import OnboardingStartRepo
from bot.db.packages import PackageRepo
from bot.db.points_requests import PointsRequestRepo
from bot.db.referrals import ReferralRepo
from bot.db.sales import SaleCancelRepo
from bot.db.stamps import StampRepo
from bot.db.stats import StatsRepo
from bot.db.stats_breakdowns import StatsBreakdownRepo
from bot.db.stop_hints import StopHintRepo
from bot.db.tiers import TierRepo
from bot.db.waitlist import WaitlistRepo

SEARCH_LIMIT = 10


class CustomerRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_tg_user(self, tg_user_id: int, *, for_update: bool = False) -> Customer | None:
        query = select(Customer).where(Customer.tg_user_id == tg_user_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def get(self, customer_id: int, *, for_update: bool = False) -> Customer | None:
        return await self.session.get(Customer, customer_id, with_for_update=for_update)

    def add(self, customer: Customer) -> None:
        self.session.add(customer)

    async def by_ids(self, customer_ids: Iterable[int]) -> dict[int, Customer]:
        """Many customers in one query (the sender's batch), by id."""
        query = select(Customer).where(Customer.id.in_(list(customer_ids)))
        return {c.id: c for c in await self.session.scalars(query)}

    def _known(self):  # type: ignore[no-untyped-def]
        return select(Customer).where(Customer.erased_at.is_(None))

    async def by_phone(self, phone: str) -> list[Customer]:
        query = self._known().where(Customer.phone == phone).order_by(Customer.id)
        return list(await self.session.scalars(query.limit(SEARCH_LIMIT)))

    async def by_phone_tail(self, digits: str) -> list[Customer]:
        query = self._known().where(Customer.phone.like(f"%{digits}")).order_by(Customer.id)
        return list(await self.session.scalars(query.limit(SEARCH_LIMIT)))

    async def by_username(self, username: str) -> list[Customer]:
        query = self._known().where(func.lower(Customer.username) == username.lower())
        return list(await self.session.scalars(query.limit(SEARCH_LIMIT)))

    async def by_name(self, folded: str) -> list[Customer]:
        escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = self._known().where(Customer.name_folded.like(f"%{escaped}%", escape="\\"))
        return list(await self.session.scalars(query.order_by(Customer.id).limit(SEARCH_LIMIT)))

    async def flush(self) -> None:
        await self.session.flush()

    async def count_in(self, segment: Any) -> int:
        """How many customers a condition of `bot.db.queries` holds for."""
        return int(await self.session.scalar(select(func.count(Customer.id)).where(segment)) or 0)

    async def card_facts(self, customer_ids: Iterable[int], now: datetime) -> dict[int, CardFacts]:
        """What a staff card shows of each customer besides the customer row and coupons, for any
        number of customers in one query (a correlated subquery per fact, each served by an index
        on `customer_id`): a search's ten cards cost what one does, whatever their histories."""

        def of(model: Any) -> Any:
            return model.customer_id == Customer.id

        def fact(column: Any, *where: Any) -> Any:
            return select(column).where(*where).correlate(Customer).scalar_subquery()

        answered = (of(Survey), Survey.score.is_not(None))
        query = select(
            Customer.id,
            fact(func.count(Purchase.id), of(Purchase)),
            fact(func.coalesce(func.sum(Purchase.amount_minor), 0), of(Purchase)),
            fact(func.max(Purchase.at), of(Purchase)),
            select(StaffNote.text)
            .where(of(StaffNote))
            .order_by(StaffNote.id.desc())
            .limit(1)
            .correlate(Customer)
            .scalar_subquery(),
            fact(func.count(Survey.score), *answered),
            fact(func.avg(Survey.score), *answered),
            fact(func.count(Booking.id), of(Booking), Booking.state == BookingState.NO_SHOW),
            fact(
                func.min(Booking.starts_at),
                of(Booking),
                Booking.state.in_(ACTIVE_BOOKING),
                Booking.starts_at > now,
            ),
            # since when each consent is as it is now: the time of its latest row
            fact(func.max(Consent.at), of(Consent), Consent.kind == ConsentKind.PERSONAL_DATA),
            fact(func.max(Consent.at), of(Consent), Consent.kind == ConsentKind.MARKETING),
        ).where(Customer.id.in_(list(customer_ids)))
        found: dict[int, CardFacts] = {}
        for row in await self.session.execute(query):
            (
                customer_id,
                visits,
                spent,
                last_visit,
                note,
                answers,
                average,
                no_shows,
                next_visit,
                data_since,
                offers_since,
            ) = row
            found[customer_id] = CardFacts(
                visits=int(visits),
                spent_minor=int(spent),
                last_visit=_utc(last_visit),
                last_note=note,
                csat_answers=int(answers),
                csat_average=round(float(average), 1) if average is not None else None,
                no_shows=int(no_shows),
                next_visit=_utc(next_visit),
                data_consent_at=_utc(data_since),
                offers_consent_at=_utc(offers_since),
            )
        return found


@dataclass(frozen=True)
class CardFacts:
    visits: int
    spent_minor: int
    last_visit: datetime | None
    last_note: str | None
    csat_answers: int
    csat_average: float | None
    no_shows: int
    next_visit: datetime | None
    data_consent_at: datetime | None = None  # their latest data consent row (given or withdrawn)
    offers_consent_at: datetime | None = None  # their latest answer about offers; None: not asked


def _utc(value: datetime | str | None) -> datetime | None:
    """A moment from an aggregate, which SQLAlchemy does not pass through the column's type
    (SQLite gives text, PostgreSQL a naive datetime)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ConsentRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def record(
        self,
        customer_id: int,
        kind: ConsentKind,
        granted: bool,
        version: str,
        at: datetime,
        *,
        via: ConsentVia,
    ) -> None:
        self.session.add(
            Consent(
                customer_id=customer_id,
                kind=kind,
                granted=granted,
                version=version,
                at=at,
                via=via,
            )
        )

    async def latest(self, customer_id: int, kind: str) -> Consent | None:
        query = (
            select(Consent)
            .where(Consent.customer_id == customer_id, Consent.kind == kind)
            .order_by(Consent.at.desc(), Consent.id.desc())
            .limit(1)
        )
        return (await self.session.scalars(query)).one_or_none()


class CouponRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def code_exists(self, code: str) -> bool:
        return (await self.session.scalar(select(Coupon.id).where(Coupon.code == code))) is not None

    async def add(self, coupon: Coupon) -> Coupon:
        self.session.add(coupon)
        await self.session.flush()
        return coupon

    async def get(self, coupon_id: int) -> Coupon | None:
        return await self.session.get(Coupon, coupon_id)

    async def reload(self, coupon: Coupon) -> None:
        """Read the coupon again (after an UPDATE that bypassed it, as `redeem` does)."""
        await self.session.refresh(coupon)

    async def by_issue_key(self, key: str) -> Coupon | None:
        return (
            await self.session.scalars(select(Coupon).where(Coupon.issue_key == key))
        ).one_or_none()

    async def void_issued_for(self, key: str, now: datetime) -> None:
        """The message that carried a coupon will never go: the coupon goes with it."""
        await self.session.execute(
            update(Coupon)
            .where(
                Coupon.issue_key == key, Coupon.redeemed_at.is_(None), Coupon.voided_at.is_(None)
            )
            .values(voided_at=now)
        )

    async def by_code(self, code: str) -> Coupon | None:
        return (await self.session.scalars(select(Coupon).where(Coupon.code == code))).one_or_none()

    async def redeem(self, coupon_id: int, now: datetime, staff_id: int, staff_name: str) -> bool:
        """Redeem atomically: of two staff at once, exactly one update matches the row."""
        result = await self.session.execute(
            update(Coupon)
            .where(
                Coupon.id == coupon_id,
                Coupon.redeemed_at.is_(None),
                Coupon.voided_at.is_(None),
                Coupon.expires_at > now,
            )
            .values(redeemed_at=now, redeemed_by_id=staff_id, redeemed_by_name=staff_name)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]

    async def of_kind(self, customer_id: int, kind: str) -> Coupon | None:
        query = select(Coupon).where(Coupon.customer_id == customer_id, Coupon.kind == kind)
        return (await self.session.scalars(query.order_by(Coupon.id).limit(1))).one_or_none()

    async def active_of(
        self, customer_ids: Iterable[int], now: datetime
    ) -> dict[int, list[Coupon]]:
        """The coupons each of these customers can still use, in one query."""
        query = (
            select(Coupon)
            .where(
                Coupon.customer_id.in_(list(customer_ids)),
                Coupon.redeemed_at.is_(None),
                Coupon.voided_at.is_(None),
                Coupon.expires_at > now,
            )
            .order_by(Coupon.expires_at, Coupon.id)
        )
        found: dict[int, list[Coupon]] = {}
        for coupon in await self.session.scalars(query):
            found.setdefault(coupon.customer_id or 0, []).append(coupon)
        return found

    async def active(self, customer_id: int, now: datetime) -> list[Coupon]:
        query = (
            select(Coupon)
            .where(
                Coupon.customer_id == customer_id,
                Coupon.redeemed_at.is_(None),
                Coupon.voided_at.is_(None),
                Coupon.expires_at > now,
            )
            .order_by(Coupon.expires_at, Coupon.id)
        )
        return list(await self.session.scalars(query))

    async def void_active(self, customer_id: int, now: datetime) -> int:
        """Their unused coupons voided; how many."""
        result = await self.session.execute(
            update(Coupon)
            .where(
                Coupon.customer_id == customer_id,
                Coupon.redeemed_at.is_(None),
                Coupon.voided_at.is_(None),
            )
            .values(voided_at=now)
        )
        return max(getattr(result, "rowcount", 0) or 0, 0)


class WelcomeClaimRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claimed(self, fingerprints: Iterable[str]) -> list[WelcomeClaim]:
        query = select(WelcomeClaim).where(WelcomeClaim.fingerprint.in_(list(fingerprints)))
        return list(await self.session.scalars(query))

    async def claim(self, fingerprints: Iterable[str], coupon_id: int | None, at: datetime) -> None:
        """Insert the claims; a concurrent claim of the same fingerprint fails on the primary key.
        No coupon: the welcome bonus's claims (bot/services/bonuses.py)."""
        self.session.add_all(
            WelcomeClaim(fingerprint=fp, coupon_id=coupon_id, claimed_at=at) for fp in fingerprints
        )
        await self.session.flush()

    async def unkeyed(self, after: str, limit: int) -> list[str]:
        """Fingerprints from before they were keyed (SHA-256 hex, all below "g"; keyed ones start
        with "k1:"), in order from `after`: a range of the primary key, quick when there are none."""
        query = (
            select(WelcomeClaim.fingerprint)
            .where(WelcomeClaim.fingerprint > after, WelcomeClaim.fingerprint < "g")
            .order_by(WelcomeClaim.fingerprint)
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def any_keyed(self) -> bool:
        query = select(WelcomeClaim.fingerprint).where(WelcomeClaim.fingerprint >= "k").limit(1)
        return (await self.session.scalar(query)) is not None

    async def rekey(self, old: str, new: str) -> None:
        await self.session.execute(
            update(WelcomeClaim)
            .where(WelcomeClaim.fingerprint == old)
            .values(fingerprint=new)
            .execution_options(synchronize_session=False)
        )


class PurchaseRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, purchase: Purchase) -> Purchase:
        self.session.add(purchase)
        await self.session.flush()
        return purchase

    async def made_since(self, since: datetime) -> list[tuple[int, datetime]]:
        """(customer, when) of every purchase since then."""
        return [
            (c, at)
            for c, at in await self.session.execute(
                select(Purchase.customer_id, Purchase.at).where(Purchase.at >= since)
            )
        ]

    async def by_ids(self, purchase_ids: Iterable[int]) -> dict[int, Purchase]:
        return {
            p.id: p
            for p in await self.session.scalars(
                select(Purchase).where(Purchase.id.in_(list(purchase_ids)))
            )
        }

    async def imported_of(self, customer_id: int, limit: int) -> list[Purchase]:
        """A customer's visits imported from the owner's previous base, the latest first."""
        query = (
            select(Purchase)
            .where(Purchase.customer_id == customer_id, Purchase.import_key.is_not(None))
            .order_by(Purchase.at.desc(), Purchase.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def summary(self, customer_id: int) -> tuple[int, int, datetime | None]:
        """Visits, total spent (minor units) and the last visit of one customer."""
        row = (
            await self.session.execute(
                select(
                    func.count(Purchase.id),
                    func.coalesce(func.sum(Purchase.amount_minor), 0),
                    func.max(Purchase.at),
                ).where(Purchase.customer_id == customer_id)
            )
        ).one()
        return int(row[0]), int(row[1]), row[2]


def dialect_insert(session: AsyncSession) -> Any:
    """`INSERT … ON CONFLICT` as the session's database spells it (PostgreSQL's or SQLite's
    insert construct: SQLAlchemy's generic one has no `on_conflict_*`)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def key_prefix(column: Any, prefix: str) -> Any:
    """`column` starts with `prefix`, as a range the column's index serves (a LIKE would not,
    on PostgreSQL without a pattern index): from the prefix up to the next string after it."""
    return and_(column >= prefix, column < prefix[:-1] + chr(ord(prefix[-1]) + 1))


_PLANNED = [
    "key",
    "customer_id",
    "coupon_id",
    "chat_id",
    "kind",
    "template",
    "data",
    "markup",
    "not_before",
    "not_after",
    "due_at",
    "state",
    "attempts",
    "created_at",
]


def planned_rows(
    key: Any,
    customer_id: Any,
    *,
    kind: str,
    template: str,
    data: Any,
    not_before: Any,
    not_after: Any,
    due_at: datetime,
    now: datetime,
    coupon_id: Any = None,
    chat_id: int | None = None,
    markup: dict[str, Any] | None = None,
) -> Select[Any]:
    """The outbox rows to write, one per row of a query: add joins and conditions to say for
    whom, then give it to `OutboxRepo.plan` (the one way a row is written; `queue` is one row of
    literals). Values are literals, or columns of that query (a coupon's expiry as the row's deadline)."""

    def moment(value: Any) -> Any:
        return literal(value, UTCDateTime) if isinstance(value, datetime) else value

    return select(
        key,
        customer_id,
        literal(None, Integer) if coupon_id is None else coupon_id,
        literal(chat_id, BigInteger),
        literal(kind, String),
        literal(template, String),
        literal(data, JSON) if isinstance(data, dict) else data,
        cast(null(), JSON) if markup is None else literal(markup, JSON),
        moment(not_before),
        moment(not_after),
        moment(due_at),
        literal(OutboxState.PENDING, String),
        literal(0),
        literal(now, UTCDateTime),
    )


OUTBOX = typing.cast(Table, OutboxMessage.__table__)


class OutboxRepo:
    def __init__(self, session: AsyncSession, assign: Assign | None = None) -> None:
        self.session = session
        self.assign = assign

    async def plan(self, rows: Select[Any]) -> int:
        """INSERT … SELECT … ON CONFLICT (key) DO NOTHING: a planner run twice, or in two
        processes at once, adds nothing twice. Returns how many rows were new. The new rows go
        to the campaign assignment (control groups, variants), when there is one: every planner's
        rows pass here, so none can forget it."""
        statement = (
            dialect_insert(self.session)(OutboxMessage)
            .from_select(_PLANNED, rows)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        if self.assign is None:
            result = await self.session.execute(statement)
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
        returned = (
            OutboxMessage.id,
            OutboxMessage.key,
            OutboxMessage.customer_id,
            OutboxMessage.kind,
        )
        planned = [
            Planned(*row) for row in await self.session.execute(statement.returning(*returned))
        ]
        if planned:
            await self.assign(CampaignResultsRepo(self.session), planned)
        return len(planned)

    async def queue(
        self,
        *,
        key: str,
        kind: str,
        template: str,
        not_before: datetime,
        not_after: datetime,
        customer_id: int | None = None,
        chat_id: int | None = None,
        data: dict[str, Any] | None = None,
        markup: dict[str, Any] | None = None,
        now: datetime,
    ) -> bool:
        """One message to send later; a key already queued is left as it is (returns False)."""
        return (
            await self.plan(
                planned_rows(
                    literal(key, String),
                    literal(customer_id, Integer),
                    kind=kind,
                    template=template,
                    data=data or {},
                    not_before=not_before,
                    not_after=not_after,
                    due_at=not_before,
                    now=now,
                    chat_id=chat_id,
                    markup=markup,
                )
            )
            == 1
        )

    async def skip_pending(
        self, reason: str, *, keys: Iterable[str] = (), prefix: str | None = None
    ) -> None:
        """Drop what is still waiting: these keys exactly, and those under a prefix (the reminders
        of a cancelled visit, `reminder:<booking>:`). A key is never taken as a prefix, or
        `booking_request:1` would also drop `booking_request:12`."""
        which = OutboxMessage.key.in_(list(keys))
        if prefix is not None:
            which = which | key_prefix(OutboxMessage.key, prefix)
        await self.session.execute(
            update(OutboxMessage)
            .where(which, OutboxMessage.state == OutboxState.PENDING)
            .values(state=OutboxState.SKIPPED, last_error=reason, error_code=OutboxError.CANCELLED)
            .execution_options(synchronize_session=False)
        )

    async def claimable(
        self,
        now: datetime,
        orphaned_before: datetime,
        limit: int,
        *,
        worker: str,
        kinds: tuple[str, ...] = (),
        busy: Iterable[str] = (),
        busy_chats: Iterable[int] = (),
        lock: bool = True,
    ) -> list[OutboxMessage]:
        """Due rows, and rows a dead sender left half-done (not this `worker`'s: its own claims are
        in its hands, however long they wait for their turn); locked so other senders skip them.
        With `kinds`, only those (relays and service notices are claimed before the bulk); keys
        under a `busy` prefix are left (a lane whose earlier rows are still going out), and so are
        rows into `busy_chats` (a group that has a message of ours on its way). `lock=False`
        only looks (a read that takes no lock, whether anything is due)."""
        query = (
            select(OutboxMessage)
            .where(
                ((OutboxMessage.state == OutboxState.PENDING) & (OutboxMessage.due_at <= now))
                | (
                    (OutboxMessage.state == OutboxState.SENDING)
                    & (OutboxMessage.claimed_at < orphaned_before)
                    & (OutboxMessage.claimed_by != worker)
                )
            )
            .order_by(OutboxMessage.due_at, OutboxMessage.id)
            .limit(limit)
        )
        if kinds:
            query = query.where(OutboxMessage.kind.in_(kinds))
        for prefix in busy:
            query = query.where(~key_prefix(OutboxMessage.key, prefix))
        if busy_chats := list(busy_chats):
            query = query.where(
                OutboxMessage.chat_id.is_(None) | OutboxMessage.chat_id.not_in(busy_chats)
            )
        if lock:  # FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite has one writer and renders nothing
            query = query.with_for_update(skip_locked=True)
        return list(await self.session.scalars(query))

    async def get(self, row_id: int) -> OutboxMessage | None:
        return await self.session.get(OutboxMessage, row_id)

    async def sent_under(self, prefix: str, suffix: str = "") -> dict[str, datetime]:
        """Keys under a prefix (and ending so) of the rows sent, with when they were sent."""
        query = select(OutboxMessage.key, OutboxMessage.sent_at).where(
            key_prefix(OutboxMessage.key, prefix),
            OutboxMessage.key.endswith(suffix),
            OutboxMessage.state == OutboxState.SENT,
        )
        return {key: at for key, at in await self.session.execute(query) if at is not None}

    async def state_of(self, key: str) -> str | None:
        return await self.session.scalar(
            select(OutboxMessage.state).where(OutboxMessage.key == key)
        )

    async def mark_sent(self, sent: Iterable[tuple[int, int | None]], at: datetime) -> None:
        """Rows delivered, each with the message id Telegram gave: one statement for them all (an
        executemany), not a load and a flush per row (a paid broadcast marks hundreds a second)."""
        params = [{"row_id": row_id, "message_id_": message_id} for row_id, message_id in sent]
        if not params:
            return
        await self.session.execute(  # Core: an executemany, no ORM objects
            update(OUTBOX)
            .where(OUTBOX.c.id == bindparam("row_id"))
            .values(
                state=OutboxState.SENT,
                last_error=None,
                claimed_at=None,
                claimed_by=None,
                attempts=OUTBOX.c.attempts + 1,
                sent_at=at,
                message_id=bindparam("message_id_"),
            ),
            params,
        )

    async def get_many(self, row_ids: Iterable[int]) -> list[OutboxMessage]:
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.id.in_(list(row_ids)))
            .order_by(OutboxMessage.id)
        )
        return list(await self.session.scalars(query))

    async def recent_marketing(
        self, customer_ids: Iterable[int], since: datetime
    ) -> dict[int, list[datetime]]:
        # Rows being sent count too: the sender claims its next batch before the last one is out.
        at = func.coalesce(OutboxMessage.sent_at, OutboxMessage.claimed_at)
        query = select(OutboxMessage.customer_id, at).where(
            OutboxMessage.customer_id.in_(list(customer_ids)),
            OutboxMessage.kind == OutboxKind.MARKETING,
            OutboxMessage.state.in_((OutboxState.SENT, OutboxState.SENDING)),
            at >= since,
        )
        recent: dict[int, list[datetime]] = {}
        for customer_id, sent_at in await self.session.execute(query):
            if customer_id is not None and sent_at is not None:
                recent.setdefault(customer_id, []).append(sent_at)
        return recent

    async def skip_pending_of(self, customer_id: int, reason: OutboxError) -> None:
        await self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.customer_id == customer_id, OutboxMessage.state == OutboxState.PENDING
            )
            .values(state=OutboxState.SKIPPED, last_error=reason, error_code=reason)
        )

    async def counts(self) -> list[tuple[str, str, int]]:
        query = (
            select(OutboxMessage.kind, OutboxMessage.state, func.count())
            .group_by(OutboxMessage.kind, OutboxMessage.state)
            .order_by(OutboxMessage.kind, OutboxMessage.state)
        )
        return [(k, s, int(n)) for k, s, n in await self.session.execute(query)]

    async def lag(self, now: datetime) -> tuple[int, datetime | None]:
        """How many rows are due now and not yet sent, and the oldest one's due moment
        (/healthz and /metrics: the queue's depth and age)."""
        query = select(func.count(), func.min(OutboxMessage.due_at)).where(
            OutboxMessage.state.in_(OUTBOX_WAITING), OutboxMessage.due_at <= now
        )
        count, oldest = (await self.session.execute(query)).one()
        return int(count), oldest

    async def due_ids(self, now: datetime) -> list[int]:
        """The rows a drain now would take up (`carebot tick` asks afterwards why some did not go)."""
        query = select(OutboxMessage.id).where(
            OutboxMessage.state.in_(OUTBOX_WAITING), OutboxMessage.due_at <= now
        )
        return list(await self.session.scalars(query))

    async def reasons(self, ids: Iterable[int]) -> dict[str, int]:
        """Why these rows are not sent: their `last_error`, with how many share it."""
        wanted = list(ids)
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 5000):  # under every driver's limit on bound parameters
            query = (
                select(OutboxMessage.last_error, func.count())
                .where(
                    OutboxMessage.id.in_(wanted[start : start + 5000]),
                    OutboxMessage.state != OutboxState.SENT,
                    OutboxMessage.last_error.is_not(None),
                )
                .group_by(OutboxMessage.last_error)
            )
            for reason, count in await self.session.execute(query):
                found[str(reason)] = found.get(str(reason), 0) + int(
                    count
                )  # never None: filtered above
        return found

    async def last_purchase(self, customer_id: int) -> Purchase | None:
        query = (
            select(Purchase)
            .where(Purchase.customer_id == customer_id)
            .order_by(Purchase.at.desc(), Purchase.id.desc())
        )
        return (await self.session.scalars(query.limit(1))).one_or_none()


class SurveyRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def planned_since(self, customer_id: int, since: datetime) -> int:
        return int(
            await self.session.scalar(
                select(func.count(Survey.id)).where(
                    Survey.customer_id == customer_id, Survey.planned_at > since
                )
            )
            or 0
        )

    async def add(self, survey: Survey) -> Survey:
        self.session.add(survey)
        await self.session.flush()
        return survey

    async def get(self, survey_id: int, *, for_update: bool = False) -> Survey | None:
        return await self.session.get(Survey, survey_id, with_for_update=for_update)

    async def open_complaints(self, low: int) -> list[Survey]:
        """Answered with a score of `low` or less and not resolved yet, the latest first."""
        query = (
            select(Survey)
            .where(Survey.score <= low, Survey.resolved_at.is_(None))
            .order_by(Survey.answered_at.desc())
        )
        return list(await self.session.scalars(query))

    async def answered_since(self, since: datetime) -> list[Survey]:
        query = (
            select(Survey)
            .where(Survey.score.is_not(None), Survey.answered_at >= since)
            .order_by(Survey.answered_at.desc(), Survey.id.desc())
        )
        return list(await self.session.scalars(query))

    async def asked_since(self, since: datetime) -> int:
        """Surveys whose question reached the customer since then."""
        asked_key = literal("survey:", String) + cast(Survey.purchase_id, String)
        return int(
            await self.session.scalar(
                select(func.count(Survey.id))
                .join(OutboxMessage, OutboxMessage.key == asked_key)
                .where(OutboxMessage.state == OutboxState.SENT, OutboxMessage.sent_at >= since)
            )
            or 0
        )


class StaffNoteRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, note: StaffNote) -> None:
        self.session.add(note)


class AuditRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def record(self, action: StaffAction) -> None:
        self.session.add(action)

    async def of_customer(self, customer_id: int, limit: int) -> list[StaffAction]:
        query = (
            select(StaffAction)
            .where(StaffAction.customer_id == customer_id)
            .order_by(StaffAction.at.desc(), StaffAction.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(query))


class CareRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, message: CareMessage) -> None:
        self.session.add(message)

    async def store(self, message: CareMessage) -> CareMessage:
        """Add and write it now (its id is needed at once)."""
        self.session.add(message)
        await self.session.flush()
        return message

    async def link(self, care_ids: list[int], admin_message_id: int, now: datetime) -> None:
        """Point stored customer messages at the staff-chat post that shows them; a second post
        of the same messages (a long text in parts) gets a row of its own for the routing."""
        rows = list(
            await self.session.scalars(select(CareMessage).where(CareMessage.id.in_(care_ids)))
        )
        for row in rows:
            if row.admin_message_id is None:
                row.admin_message_id = admin_message_id
            elif row.admin_message_id != admin_message_id:
                self.session.add(
                    CareMessage(
                        tg_user_id=row.tg_user_id,
                        customer_id=row.customer_id,
                        direction=CareDirection.IN,
                        admin_message_id=admin_message_id,
                        kind="part",
                        text=None,
                        at=now,
                    )
                )

    async def user_of_admin_message(self, admin_message_id: int) -> int | None:
        query = select(CareMessage.tg_user_id).where(
            CareMessage.admin_message_id == admin_message_id
        )
        return (await self.session.scalars(query.limit(1))).one_or_none()

    async def last_inbound_at(self, tg_user_id: int) -> datetime | None:
        query = select(func.max(CareMessage.at)).where(
            CareMessage.tg_user_id == tg_user_id, CareMessage.direction == "in"
        )
        return await self.session.scalar(query)

    async def topic(self, tg_user_id: int, chat_id: int) -> CareTopic | None:
        topic = await self.session.get(CareTopic, tg_user_id)
        return topic if topic and topic.chat_id == chat_id else None

    async def user_of_topic(self, chat_id: int, thread_id: int) -> int | None:
        query = select(CareTopic.tg_user_id).where(
            CareTopic.chat_id == chat_id, CareTopic.thread_id == thread_id
        )
        return (await self.session.scalars(query)).one_or_none()

    async def save_topic(self, topic: CareTopic) -> None:
        await self.session.merge(topic)

    async def drop_topic(self, tg_user_id: int) -> None:
        await self.session.execute(delete(CareTopic).where(CareTopic.tg_user_id == tg_user_id))

    async def erase(self, tg_user_id: int, customer_id: int | None) -> None:
        """Forget a customer's conversation: their messages and their topic mapping."""
        where = CareMessage.tg_user_id == tg_user_id
        if customer_id is not None:
            where = where | (CareMessage.customer_id == customer_id)
        await self.session.execute(delete(CareMessage).where(where))
        await self.session.execute(delete(CareTopic).where(CareTopic.tg_user_id == tg_user_id))


class BookingRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def held(
        self, master_ids: Iterable[str], start: datetime, end: datetime
    ) -> dict[str, set[datetime]]:
        """The grid cells bookings hold, per master, in [start, end)."""
        query = select(BookingCell.master_id, BookingCell.starts_at).where(
            BookingCell.master_id.in_(list(master_ids)),
            BookingCell.starts_at >= start,
            BookingCell.starts_at < end,
        )
        held: dict[str, set[datetime]] = {}
        for master_id, at in await self.session.execute(query):
            held.setdefault(master_id, set()).add(at)
        return held

    async def days_off(
        self, master_ids: Iterable[str], first: date, last: date
    ) -> dict[str, set[date]]:
        query = select(DayOff.master_id, DayOff.day).where(
            DayOff.master_id.in_(list(master_ids)), DayOff.day >= first, DayOff.day <= last
        )
        off: dict[str, set[date]] = {}
        for master_id, day in await self.session.execute(query):
            off.setdefault(master_id, set()).add(day)
        return off

    async def add(self, booking: Booking, cells: Iterable[datetime]) -> Booking:
        """Insert a booking and hold its cells; an overlapping booking fails here (IntegrityError)."""
        self.session.add(booking)
        await self.session.flush()
        self.session.add_all(
            BookingCell(master_id=booking.master_id, starts_at=c, booking_id=booking.id)
            for c in cells
        )
        await self.session.flush()
        return booking

    async def release(self, booking_id: int) -> None:
        await self.session.execute(delete(BookingCell).where(BookingCell.booking_id == booking_id))

    async def get(self, booking_id: int, *, for_update: bool = False) -> Booking | None:
        return await self.session.get(Booking, booking_id, with_for_update=for_update)

    async def upcoming_of(self, customer_id: int, now: datetime) -> list[Booking]:
        query = (
            select(Booking)
            .where(
                Booking.customer_id == customer_id,
                Booking.state.in_(ACTIVE_BOOKING),
                Booking.starts_at > now,
            )
            .order_by(Booking.starts_at)
        )
        return list(await self.session.scalars(query))

    async def of_masters(
        self, master_ids: Iterable[str], start: datetime, end: datetime
    ) -> list[Booking]:
        """The visits of these masters in [start, end), not declined or cancelled."""
        query = select(Booking).where(
            Booking.master_id.in_(list(master_ids)),
            Booking.starts_at >= start,
            Booking.starts_at < end,
            Booking.state.in_((*ACTIVE_BOOKING, BookingState.DONE, BookingState.NO_SHOW)),
        )
        return list(await self.session.scalars(query.order_by(Booking.starts_at)))

    async def unanswered(self, now: datetime) -> list[Booking]:
        query = select(Booking).where(
            Booking.state == BookingState.PENDING,
            Booking.escalated_at.is_(None),
            Booking.answer_due_at <= now,
        )
        return list(await self.session.scalars(query.order_by(Booking.id).limit(500)))

    async def made_since(self, since: datetime) -> list[tuple[int, datetime]]:
        """(customer, when booked) of every booking made since then."""
        return [
            (c, at)
            for c, at in await self.session.execute(
                select(Booking.customer_id, Booking.created_at).where(Booking.created_at >= since)
            )
        ]

    async def account(self, master_id: str) -> MasterAccount | None:
        return await self.session.get(MasterAccount, master_id)

    async def master_of_user(self, tg_user_id: int) -> str | None:
        return await self.session.scalar(
            select(MasterAccount.master_id).where(MasterAccount.tg_user_id == tg_user_id)
        )

    async def bind_master(self, master_id: str, tg_user_id: int, now: datetime) -> None:
        """The master's account is this Telegram user from now on (a new phone, a new invite)."""
        await self.session.execute(
            delete(MasterAccount).where(
                (MasterAccount.master_id == master_id) | (MasterAccount.tg_user_id == tg_user_id)
            )
        )
        self.session.add(MasterAccount(master_id=master_id, tg_user_id=tg_user_id, joined_at=now))

    def add_invite(self, invite: MasterInvite) -> None:
        self.session.add(invite)

    async def invite(self, token: str) -> MasterInvite | None:
        return await self.session.get(MasterInvite, token, with_for_update=True)

    async def set_day_off(self, master_id: str, day: date, by: str, now: datetime) -> bool:
        if await self.session.get(DayOff, (master_id, day)) is not None:
            return False
        self.session.add(DayOff(master_id=master_id, day=day, set_by=by, at=now))
        return True

    async def drop_day_off(self, master_id: str, day: date) -> bool:
        """Take a day off back; False when there was none."""
        result = await self.session.execute(
            delete(DayOff).where(DayOff.master_id == master_id, DayOff.day == day)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class BroadcastRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, broadcast: Broadcast) -> Broadcast:
        self.session.add(broadcast)
        await self.session.flush()
        return broadcast

    async def get(self, broadcast_id: int, *, for_update: bool = False) -> Broadcast | None:
        return await self.session.get(Broadcast, broadcast_id, with_for_update=for_update)

    async def any_due(self, now: datetime) -> bool:
        """Whether a scheduled broadcast's time came (a cheap look before taking the write lock)."""
        return (
            await self.session.scalar(
                select(Broadcast.id)
                .where(Broadcast.state == BroadcastState.SCHEDULED, Broadcast.starts_at <= now)
                .limit(1)
            )
            is not None
        )

    async def due(self, now: datetime) -> list[Broadcast]:
        """Scheduled broadcasts whose time came, locked (another process queues the others)."""
        return list(
            await self.session.scalars(
                select(Broadcast)
                .where(Broadcast.state == BroadcastState.SCHEDULED, Broadcast.starts_at <= now)
                .with_for_update(skip_locked=True)
            )
        )

    async def sending(self) -> list[Broadcast]:
        return list(
            await self.session.scalars(
                select(Broadcast).where(Broadcast.state == BroadcastState.SENDING)
            )
        )

    async def outcomes(self, key_prefix_: str) -> list[tuple[str, str | None, int]]:
        """How its outbox rows (keys under the prefix) stand: (state, error code, how many)."""
        rows = await self.session.execute(
            select(OutboxMessage.state, OutboxMessage.error_code, func.count())
            .where(key_prefix(OutboxMessage.key, key_prefix_))
            .group_by(OutboxMessage.state, OutboxMessage.error_code)
        )
        return [(state, code, int(n)) for state, code, n in rows]

    async def sent_moments(self, key_prefix_: str) -> list[datetime]:
        """When each of its messages was delivered (a paid broadcast's cost is counted per
        second)."""
        return list(
            await self.session.scalars(
                select(OutboxMessage.sent_at).where(
                    key_prefix(OutboxMessage.key, key_prefix_),
                    OutboxMessage.state == OutboxState.SENT,
                )
            )
        )

    async def redeemed(self, key_prefix_: str) -> int:
        """Coupons given by its messages and redeemed so far."""
        return int(
            await self.session.scalar(
                select(func.count(Coupon.id)).where(
                    key_prefix(Coupon.issue_key, key_prefix_), Coupon.redeemed_at.is_not(None)
                )
            )
            or 0
        )

    async def bookings_after(
        self, key_prefix_: str, since: datetime
    ) -> list[tuple[datetime, datetime | None]]:
        """(booked at, their message sent at) for each booking its recipients made since then."""
        pairs = await self.session.execute(
            select(Booking.created_at, OutboxMessage.sent_at)
            .join(
                OutboxMessage,
                and_(
                    OutboxMessage.customer_id == Booking.customer_id,
                    key_prefix(OutboxMessage.key, key_prefix_),
                    OutboxMessage.state == OutboxState.SENT,
                ),
            )
            .where(Booking.created_at >= since)
        )
        return [(created, sent_at) for created, sent_at in pairs]


class CycleRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, customer_id: int, service_id: str, *, for_update: bool = True
    ) -> Cycle | None:
        return await self.session.get(Cycle, (customer_id, service_id), with_for_update=for_update)

    async def forget(self, customer_id: int) -> None:
        await self.session.execute(delete(Cycle).where(Cycle.customer_id == customer_id))

    async def passed(self, now: datetime, limit: int) -> list[Cycle]:
        """Cycles whose due date passed with nothing booked, the oldest first, locked (another
        process takes the others)."""
        return list(
            await self.session.scalars(
                select(Cycle)
                .where(
                    Cycle.due_at <= now,
                    ~exists().where(
                        Booking.customer_id == Cycle.customer_id, Booking.state.in_(ACTIVE_BOOKING)
                    ),
                )
                .order_by(Cycle.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )

    async def mark_offered(self, ready: Any, offered: Any) -> None:
        """Offered: no second offer this round (offer_at moves to the due date, out of the
        planner's index range). `ready` and `offered` are conditions of `bot.db.queries`."""
        await self.session.execute(
            update(Cycle)
            .where(ready, offered)
            .values(offered_round=Cycle.round, offer_at=Cycle.due_at)
            .execution_options(synchronize_session=False)
        )

    def add(self, cycle: Cycle) -> None:
        self.session.add(cycle)

    async def unlearned(self, service_ids: list[str], after: int, limit: int) -> list[int]:
        """Customers (ids above `after`, in order) with visits of these services and no cycle at
        all: imported from the owner's previous base (a sale recorded here teaches its cycle at
        once), or recognised when they joined (their cycles start again). Erased ones are left.

        Per customer, not per visit: walking the customers with two index lookups each is what
        every planner run can afford (100,000 customers in a fraction of a second); looking at
        every visit (a million) cost seconds each time."""
        query = (
            select(Customer.id)
            .where(
                Customer.id > after,
                Customer.erased_at.is_(None),
                ~exists().where(Cycle.customer_id == Customer.id),
                exists().where(
                    Purchase.customer_id == Customer.id, Purchase.service_id.in_(service_ids)
                ),
            )
            .order_by(Customer.id)
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def visits_of(
        self, customer_ids: list[int], service_ids: list[str]
    ) -> list[tuple[int, str, int, datetime, str | None]]:
        """Every visit of these customers for these services as (customer, service, purchase,
        moment, master), each customer's and service's newest first: plain rows, a page of
        customers at a time (ten thousand rows cost what their tuples cost, not entities)."""
        query = (
            select(
                Purchase.customer_id,
                Purchase.service_id,
                Purchase.id,
                Purchase.at,
                Purchase.master_id,
            )
            .where(Purchase.customer_id.in_(customer_ids), Purchase.service_id.in_(service_ids))
            .order_by(
                Purchase.customer_id, Purchase.service_id, Purchase.at.desc(), Purchase.id.desc()
            )
        )
        return [tuple(row) for row in await self.session.execute(query)]  # type: ignore[misc]

    async def add_many(self, cycles: list[dict[str, Any]]) -> None:
        """New cycles as one executemany (the ORM's unit of work, and its bulk insert, wrote
        them one statement each); one learned meanwhile (a sale, another process) is kept."""
        if cycles:
            statement = dialect_insert(self.session)(Cycle.__table__).on_conflict_do_nothing()
            await self.session.execute(statement, cycles)

    async def visits(self, customer_id: int, service_id: str, limit: int) -> list[datetime]:
        """The latest visits for one service, newest first."""
        query = (
            select(Purchase.at)
            .where(Purchase.customer_id == customer_id, Purchase.service_id == service_id)
            .order_by(Purchase.at.desc(), Purchase.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(query))


class FsmRepo:
    """Conversation state (the edge's aiogram storage keeps it here): a key, a state, its data."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str) -> tuple[str | None, dict[str, Any]]:
        record = await self.session.get(FsmRecord, key)
        return (record.state, dict(record.data or {})) if record else (None, {})

    async def get_with_customer(
        self, key: str, tg_user_id: int
    ) -> tuple[str | None, dict[str, Any], Customer | None]:
        """The conversation's state and data, and the customer of this Telegram user, in one
        statement (what every update reads first)."""
        query = _state_with_customer()
        state, data, customer = (
            await self.session.execute(query, {"key": key, "tg_user_id": tg_user_id})
        ).one()
        return state, dict(data or {}), customer

    async def save(self, key: str, **values: Any) -> None:
        """Set `state` and/or `data` (what is not given is kept); no state and no data is no row."""
        if "state" in values and "data" in values:  # both given: nothing to read first
            state, data = values["state"], values["data"]
        else:
            record = await self.session.get(FsmRecord, key, with_for_update=True)
            state = values.get("state", record.state if record else None)
            data = values.get("data", record.data if record else {})
        if state is None and not data:
            await self.session.execute(delete(FsmRecord).where(FsmRecord.key == key))
            return
        statement = dialect_insert(self.session)(FsmRecord).values(key=key, state=state, data=data)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[FsmRecord.key], set_={"state": state, "data": data}
            )
        )

    async def save_many(self, values: dict[str, tuple[str | None, dict[str, Any]]]) -> None:
        """Many conversations' state and data at once (key → (state, data)), in two statements."""
        gone = [key for key, (state, data) in values.items() if state is None and not data]
        kept = [
            {"key": key, "state": state, "data": data}
            for key, (state, data) in values.items()
            if key not in gone
        ]
        if gone:
            await self.session.execute(delete(FsmRecord).where(FsmRecord.key.in_(gone)))
        if kept:
            statement = dialect_insert(self.session)(FsmRecord)
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[FsmRecord.key],
                    set_={"state": statement.excluded.state, "data": statement.excluded.data},
                ),
                kept,
            )

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(FsmRecord)) or 0)


@functools.cache
def _state_with_customer() -> Select[Any]:
    """FsmRepo.get_with_customer's statement, built once: built per update, with its cache key, it
    cost 64 µs of every update; one object keeps its cache key."""
    one = select(literal(1).label("one")).subquery()
    return (
        select(FsmRecord.state, FsmRecord.data, Customer)
        .select_from(one)
        .outerjoin(FsmRecord, FsmRecord.key == bindparam("key"))
        .outerjoin(Customer, Customer.tg_user_id == bindparam("tg_user_id"))
    )


class Repos:
    """The repositories of one transaction."""

    def __init__(self, session: AsyncSession, assign: Assign | None = None) -> None:
        self.session = session
        self.customers = CustomerRepo(session)
        self.consents = ConsentRepo(session)
        self.coupons = CouponRepo(session)
        self.welcome_claims = WelcomeClaimRepo(session)
        self.purchases = PurchaseRepo(session)
        self.notes = StaffNoteRepo(session)
        self.audit = AuditRepo(session)
        self.care = CareRepo(session)
        self.outbox = OutboxRepo(session, assign)
        self.surveys = SurveyRepo(session)
        self.bookings = BookingRepo(session)
        self.cycles = CycleRepo(session)
        self.broadcasts = BroadcastRepo(session)
        self.erasure = ErasureRepo(session)
        self.exporting = ExportRepo(session)
        self.importing = ImportRepo(session)
        self.merging = MergeRepo(session)
        self.fsm = FsmRepo(session)
        self.stats = StatsRepo(session)
        self.stats_breakdowns = StatsBreakdownRepo(session)
        self.stop_hints = StopHintRepo(session)
        self.campaign_results = CampaignResultsRepo(session)
        self.campaign_days = CampaignDaysRepo(session)
        self.onboarding_starts = OnboardingStartRepo(session)
        self.loyalty = LoyaltyRepo(session)
        self.tiers = TierRepo(session)
        self.certificates = CertificateRepo(session)
        self.referrals = ReferralRepo(session)
        self.points_requests = PointsRequestRepo(session)
        self.packages = PackageRepo(session)  # prepaid packages (bot/db/packages.py)
        self.sale_cancels = SaleCancelRepo(session)  # cancelled sales (bot/db/sales.py)
        self.deposits = DepositRepo(session)
        self.waitlist = WaitlistRepo(session)
        self.stamps = StampRepo(session)
        self.business = BusinessRepo(session)  # Telegram Business (bot/db/business_chats.py)


class WriterQueue:
    """An asyncio lock whose waiters go first come first served, except that an urgent one (the
    outcome of a message just sent) goes before every ordinary one (a claim of the next batch):
    a sent message whose outcome waits behind claims is one a crash would send twice."""

    def __init__(self) -> None:
        self._locked = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def locked(self) -> bool:
        return self._locked

    async def acquire(self, urgent: bool = False) -> None:
        if not self._locked and not self._waiting:
            self._locked = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if urgent else 1, next(self._order), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # it was ours just as the wait was given up: pass it on
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self._locked = False


# Writes that ride along with the next write transaction of this context (the conversation state
# an update's handler set, which then costs no transaction of its own): called with that
# transaction's repos just before its commit; returns what to call once it is committed (or None
# when it wrote nothing). A transaction that fails takes them with it: they ride again with the
# next one, or are written on their own at the end of the update.
ALONG: ContextVar[Callable[[Repos], Awaitable[Callable[[], None] | None]] | None] = ContextVar(
    "carebot_along", default=None
)

# A write an update may leave to the end of its handling (set by the edge's FSM storage): `LATER`
# takes `write` and calls it with the repos of the transaction that stores the update's
# conversation state, grouped across updates (200 newcomers' /start at once: a few transactions,
# not 200), or of the handler's own next write transaction (as `ALONG`); it returns False when it
# cannot (the update is over), and the caller writes at once, as it does when `LATER` is None
# (outside an update, another storage). Only for writes nothing in the update reads back.
Later = Callable[[Repos], Awaitable[None]]
LATER: ContextVar[Callable[[Later], bool] | None] = ContextVar("carebot_later", default=None)


class Database:
    """Units of work. On SQLite, which has one writer at a time, this process's writers queue
    in the process (`WriterQueue`: first come first served, a sent message's outcome first)
    before they take SQLite's write lock: left to SQLite's busy handler (which polls with growing
    sleeps), thirty writers a second beside a long one can starve one of them past the busy
    timeout. Other processes (the CLI) still meet the busy timeout. Reads that need no lock use
    `reading()`.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = create_sessionmaker(engine)
        self._readers = create_sessionmaker(engine.execution_options(**{READING: True}))
        self._sqlite = engine.dialect.name == "sqlite"
        # One statement, its own snapshot: no BEGIN and no ROLLBACK to wait for (SQLite: in
        # autocommit; PostgreSQL: AUTOCOMMIT).
        self._statement_readers = create_sessionmaker(
            engine.execution_options(
                **{READING: STATEMENT},
                **({} if self._sqlite else {"isolation_level": "AUTOCOMMIT"}),
            )
        )
        self._writer = WriterQueue()
        self._holder: asyncio.Task[Any] | None = None
        # The campaign assignment every planned row goes through (set by the composition root,
        # `bot.services.campaigns`); None: rows are written as planned.
        self.assign: Assign | None = None

    @asynccontextmanager
    async def transaction(self, *, urgent: bool = False) -> AsyncIterator[Repos]:
        """One unit of work: commits on success, rolls back on any exception. `urgent` goes
        before the other writers waiting (the outcome of an API call just made)."""
        if not self._sqlite:
            async with self._begin() as repos:
                yield repos
            return
        if self._writer.locked() and self._holder is asyncio.current_task():
            raise RuntimeError("a transaction inside a transaction would wait for itself")
        try:
            await asyncio.wait_for(self._writer.acquire(urgent), SQLITE_BUSY_TIMEOUT_MS / 1000)
        except TimeoutError:
            raise TimeoutError("the database stayed busy; try again") from None
        self._holder = asyncio.current_task()
        try:
            async with self._begin() as repos:
                yield repos
        finally:
            self._holder = None
            self._writer.release()

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[Repos]:
        """The session of one write transaction; what rides along (`ALONG`) is written into it
        just before the commit, and told once it is committed."""
        along = ALONG.get()
        async with self.sessions.begin() as session:
            repos = Repos(session, self.assign)
            yield repos
            committed = await along(repos) if along is not None else None
        if committed is not None:
            committed()

    @asynccontextmanager
    async def reading(self, *, snapshot: bool = True) -> AsyncIterator[Repos]:
        """Reads only (counts, lists, progress): a snapshot that neither takes nor waits for the
        write lock; it is rolled back at the end, so a write made here by mistake is lost.
        `snapshot=False` for a read of one statement (the hot reads of every update), which is
        consistent by itself: no transaction is begun around it (so nothing may be written there:
        it would stay)."""
        async with (self._readers if snapshot else self._statement_readers)() as session:
            try:
                yield Repos(session)
            finally:
                await session.rollback()
