"""The schema. Alembic migrations under `migrations/` create it; keep both in step."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import text as sql  # `text` is a column of the outbox
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# States and kinds: the values the database accepts (CHECK constraints, migration 0009) and
# templates compare with. StrEnums, so each is equal to its string and renders as it.


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a sender, its API call may be in flight
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # will never go: opted out, erased, blocked, cancelled, obsolete
    EXPIRED = "expired"  # too late to be worth sending


OUTBOX_WAITING = (OutboxState.PENDING, OutboxState.SENDING)


class OutboxKind(StrEnum):
    SERVICE = "service"
    MARKETING = "marketing"
    RELAY = "relay"  # what a customer or staff member wrote, relayed to the other side


class OutboxError(StrEnum):
    """Why a row will never go, as a code (`error_code`; `last_error` keeps the words)."""

    BLOCKED = "blocked"  # the customer blocked the bot (Telegram's 403, or known before sending)
    ERASED = "erased"
    OPTED_OUT = "opted_out"
    NO_MARKETING = "no_marketing"
    LATE = "late"  # expired: its moment passed (quiet hours or the weekly cap held it too long)
    CANCELLED = "cancelled"  # withdrawn (a broadcast stopped, a visit cancelled)
    OBSOLETE = "obsolete"  # it no longer made sense when its turn came
    REFUSED = "refused"  # Telegram refused it (a bad request, a wrong token): never retried
    GAVE_UP = "gave_up"  # transient errors, retried until the attempts ran out
    HOLDOUT = "holdout"  # the campaign's control group: written to be counted, never sent


class BookingState(StrEnum):
    PENDING = "pending"  # waiting for the master to accept
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    DONE = "done"
    NO_SHOW = "no_show"
    HELD = "held"  # the time held while the customer pays its deposit (migration 0027)


ACTIVE_BOOKING = (BookingState.PENDING, BookingState.CONFIRMED)


class BookingSource(StrEnum):
    OFFER = "offer"
    MENU = "menu"
    RESCHEDULE = "reschedule"


class BroadcastState(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


class ConsentKind(StrEnum):
    """Two separate documents (152-FZ art. 9 since 2025-09-01; 38-FZ art. 18 for offers)."""

    PERSONAL_DATA = "personal_data"
    MARKETING = "marketing"  # consent to offers


class ConsentVia(StrEnum):
    """How a consent was given or withdrawn: what the owner shows if asked to prove it."""

    BUTTON = "button"  # a button in onboarding, the profile, or a re-consent question
    STOP = "stop"  # the /stop command
    UNSUBSCRIBE = "unsubscribe"  # the unsubscribe button under an offer
    FORGET = "forget"  # /forget withdraws everything
    RETENTION = "retention"  # the owner's retention period erased them (not their own act)
    IMPORT = "import"  # carried over from the owner's previous base
    LEGACY = "legacy"  # recorded before migration 0010 kept the "how"


class ErasureReason(StrEnum):
    FORGET = "forget"  # the customer asked (/forget)
    RETENTION = "retention"  # the owner's retention period ran out


class CareDirection(StrEnum):
    IN = "in"  # from the customer
    OUT = "out"  # from the staff


class LedgerKind(StrEnum):
    """What a loyalty ledger entry is (`loyalty_entries`, migration 0018)."""

    ACCRUAL = "accrual"  # cashback of a sale (+), expires at `expires_at`
    SPENDING = "spending"  # points paid (-)
    EXPIRY = "expiry"  # what was left of one accrual when it expired (-; 0 marks it settled)
    CORRECTION = "correction"  # by a staff member, with a reason (+ or -)


class PointsRequestState(StrEnum):
    """Paying with points, as the customer answered (`points_requests`, migration 0020)."""

    PENDING = "pending"  # asked, nothing spent yet
    CONFIRMED = "confirmed"  # spent, the sale reduced
    DECLINED = "declined"
    EXPIRED = "expired"  # answered too late


def one_of(column: str, values: type[StrEnum], *, nullable: bool = False) -> str:
    """A CHECK constraint's condition: `column` holds one of the enum's values."""
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return f"{column} IN ({allowed})" + (f" OR {column} IS NULL" if nullable else "")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so we store naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Customer(Base):
    """A person who consented; erased customers stay as an anonymous row for the totals."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tg_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    username: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(64))
    # casefolded name for staff search (SQLite's lower() knows only ASCII, not Cyrillic)
    name_folded: Mapped[str | None] = mapped_column(String(64), index=True)
    language: Mapped[str] = mapped_column(String(8), default="ru")
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    birth_day: Mapped[int | None] = mapped_column(SmallInteger)
    birth_month: Mapped[int | None] = mapped_column(SmallInteger)
    birth_year: Mapped[int | None] = mapped_column(SmallInteger)
    source: Mapped[str | None] = mapped_column(String(64))
    # True while there is no current consent to offers (declined, withdrawn, imported, erased)
    marketing_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    # The privacy text's version their current personal-data consent is for (None: none given)
    data_consent_version: Mapped[str | None] = mapped_column(String(32))
    imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # came from the owner's base
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    onboarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # they blocked the bot
    # When their first offer was given the line on how to stop offers (None: not yet)
    stop_hint_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_customers_birthday", "birth_month", "birth_day"),)


class Consent(Base):
    """Append-only record of what a customer agreed to or withdrew, which version, and when."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # ConsentKind
    granted: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    via: Mapped[str] = mapped_column(String(16), default=ConsentVia.LEGACY)  # ConsentVia

    __table_args__ = (
        CheckConstraint(one_of("kind", ConsentKind), name="kind"),
        CheckConstraint(one_of("via", ConsentVia), name="via"),
    )


class Erasure(Base):
    """A destruction record without personal data: whose row (an id), what went, when, why."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(Integer, index=True)  # None: not one person
    reason: Mapped[str] = mapped_column(String(16))  # ErasureReason
    categories: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # category -> count
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    __table_args__ = (CheckConstraint(one_of("reason", ErasureReason), name="reason"),)


class Coupon(Base):
    __tablename__ = "coupons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "welcome", later "birthday", "thanks", …
    percent: Mapped[int | None] = mapped_column(SmallInteger)
    amount: Mapped[int | None] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    redeemed_by_id: Mapped[int | None] = mapped_column(BigInteger)  # staff member's Telegram id
    redeemed_by_name: Mapped[str | None] = mapped_column(String(128))
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The outbox message that gave this coupon: a resend after a crash reuses it.
    issue_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class WelcomeClaim(Base):
    """One row per fingerprint (Telegram account, phone) that already got a welcome coupon.

    The primary key makes "one welcome coupon per person" a database fact, so two fast taps
    or two processes cannot both win. Fingerprints are hashes and survive `/forget`.
    """

    __tablename__ = "welcome_claims"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FsmRecord(Base):
    """aiogram conversation state, so a conversation survives a restart."""

    __tablename__ = "fsm_states"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Purchase(Base):
    """A sale: the event surveys, thank-you offers, loyalty and cycle learning hang off."""

    __tablename__ = "purchases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # in kopecks / cents
    service_id: Mapped[str | None] = mapped_column(String(32))
    master_id: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # indexed below
    staff_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_name: Mapped[str | None] = mapped_column(String(128))
    # Set for a visit imported from the owner's base: "<customer id>:<local date>:<service>",
    # unique, so the same file imported twice adds nothing.
    import_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    # Staff cancelled it (a mistaken sale, bot/services/sale_cancel.py, migration 0025): the row
    # stays (the ledger's entries name it) but no query counts it (`bot/db/sales.py`).
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by_id: Mapped[int | None] = mapped_column(BigInteger)  # who (Telegram id)
    cancelled_by_name: Mapped[str | None] = mapped_column(String(128))

    # /stats: a customer's purchase before a sale, and their first, by one index seek (0013);
    # both indexes carry `cancelled_at` (0025), so the "not cancelled" every read of purchases
    # adds is answered from the index alone, as the reads were before it
    __table_args__ = (
        Index("ix_purchases_customer_at", "customer_id", "at", "id", "cancelled_at"),
        Index("ix_purchases_at", "at", "cancelled_at"),
    )


class StaffNote(Base):
    __tablename__ = "staff_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    text: Mapped[str] = mapped_column(String(2000))
    staff_id: Mapped[int] = mapped_column(BigInteger)
    staff_name: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class StaffAction(Base):
    """Audit: every staff action, who did it and when (shown in the card's history)."""

    __tablename__ = "staff_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    staff_id: Mapped[int] = mapped_column(BigInteger)
    staff_name: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))  # sale | redeem | note | reply | …
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CareMessage(Base):
    """One message of the care chat, and where it sits in the admin chat (to route replies)."""

    __tablename__ = "care_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tg_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # "in" from the customer, "out" from staff
    admin_message_id: Mapped[int | None] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(32))  # text, photo, voice, …
    text: Mapped[str | None] = mapped_column(String(4096))
    staff_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint(one_of("direction", CareDirection), name="direction"),)


class CareTopic(Base):
    """The forum topic of one customer in the admin chat, when the group has topics."""

    __tablename__ = "care_topics"

    tg_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """One message the bot sends on its own initiative, written by a planner, sent by the sender.

    `key` makes planning idempotent (`birthday:<customer>:<year>`); the text is rendered when
    the row is claimed and kept, so a resend after a crash is the same message.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)  # set for non-customer chats (staff)
    kind: Mapped[str] = mapped_column(String(16))  # "service" | "marketing"
    template: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"))  # the coupon it carries
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the next attempt (deferrals, backoff)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    error_code: Mapped[str | None] = mapped_column(String(16))  # OutboxError: why it will never go
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    markup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    message_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Which automatic message or broadcast it is ("birthday", "broadcast:7"; None: not a campaign)
    # and the arm the customer fell into ("a", "b", "holdout"), recorded when it was planned
    # (bot/services/campaigns.py), so the campaign report is reproducible.
    campaign: Mapped[str | None] = mapped_column(String(40))
    arm: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (
        Index("ix_outbox_state_due", "state", "due_at"),
        # /stats campaigns reads a period's campaign rows from this index alone: by time, only
        # the campaigns' rows (not the relays and notices), covering what it reads of them
        Index(
            "ix_outbox_campaign_created",
            "created_at",
            "campaign",
            "customer_id",
            "arm",
            "state",
            "coupon_id",
            sqlite_where=sql("campaign IS NOT NULL"),
            postgresql_where=sql("campaign IS NOT NULL"),
        ),
        Index("ix_outbox_kind_state_due", "kind", "state", "due_at"),
        CheckConstraint(one_of("state", OutboxState), name="state"),
        CheckConstraint(one_of("kind", OutboxKind), name="kind"),
        CheckConstraint(one_of("error_code", OutboxError, nullable=True), name="error_code"),
    )


class Survey(Base):
    """ "How was your visit?" after one purchase: the score, the comment, and for a low score,
    who on the staff resolved it and when."""

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    service_id: Mapped[str | None] = mapped_column(String(32))
    master_id: Mapped[str | None] = mapped_column(String(32))
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # when it is to be asked
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    score: Mapped[int | None] = mapped_column(SmallInteger)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    comment: Mapped[str | None] = mapped_column(Text)  # whole, as the customer wrote it
    alert_message_id: Mapped[int | None] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(128))


class MasterAccount(Base):
    """The Telegram account of a master from the business file: their private chat with the bot
    is their workplace (booking requests, the day's schedule)."""

    __tablename__ = "master_accounts"

    master_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tg_user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MasterInvite(Base):
    """A one-time deep link the owner hands to a master (`/invite_master`)."""

    __tablename__ = "master_invites"

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    master_id: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DayOff(Base):
    __tablename__ = "days_off"

    master_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    set_by: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Booking(Base):
    """An appointment: pending until the master accepts, then confirmed, then done or no-show."""

    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    service_id: Mapped[str] = mapped_column(String(32))
    master_id: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # pending | confirmed | declined | cancelled | done | no_show
    state: Mapped[str] = mapped_column(String(16), default="pending")
    source: Mapped[str] = mapped_column(String(16))  # offer | menu | reschedule
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answer_due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # then the admin chat is asked
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(500))  # why declined or cancelled
    customer_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))

    __table_args__ = (
        Index("ix_bookings_master_start", "master_id", "starts_at"),
        Index("ix_bookings_state_start", "state", "starts_at"),
        CheckConstraint(one_of("state", BookingState), name="state"),
        CheckConstraint(one_of("source", BookingSource), name="source"),
    )


class BookingCell(Base):
    """One grid cell of a master's time held by a booking. The primary key (master, start) is
    what makes a double booking impossible in the database itself, on SQLite and PostgreSQL
    alike: two bookings that overlap share a cell, and the second insert fails."""

    __tablename__ = "booking_cells"

    master_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)


class Cycle(Base):
    """A customer's rhythm for one service, learned from their visits, and where the due-offer
    stands. `round` counts cycles passed without a visit; `offered_round` the last one offered."""

    __tablename__ = "cycles"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    master_id: Mapped[str | None] = mapped_column(String(32))  # their usual master
    last_purchase_id: Mapped[int] = mapped_column(Integer)
    last_visit_at: Mapped[datetime] = mapped_column(UTCDateTime)
    interval_days: Mapped[float] = mapped_column(Float)
    learned: Mapped[bool] = mapped_column(Boolean, default=False)  # from their own visits
    # Both empty once the customer ignored enough offers: left for the sleeping-customer campaign.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    offer_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, index=True
    )  # = due_at once offered
    round: Mapped[int] = mapped_column(Integer, default=0)
    offered_round: Mapped[int | None] = mapped_column(Integer)
    ignored: Mapped[int] = mapped_column(Integer, default=0)
    # last visit + [sleeping] factor × interval: after this, with no visit since, they sleep
    sleeps_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class Broadcast(Base):
    """An owner's message to a segment of customers: what, to whom, when, and how it went.
    Its deliveries are outbox rows keyed `broadcast:<id>:<customer>`, so a restart in the
    middle sends nobody a second copy."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # {"kind": "text" | "photo" | "video" | "animation", "html": "...", "file_id": "..."}
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    buttons: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list
    )  # {"text", "url"} | {"text", "book"}
    coupon: Mapped[dict[str, Any] | None] = mapped_column(
        JSON
    )  # {"percent" | "amount", "last_day": "YYYY-MM-DD"}
    segment: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list
    )  # conditions, all must hold
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(
        String(16), default="scheduled"
    )  # scheduled | sending | done | cancelled
    recipients: Mapped[int | None] = mapped_column(Integer)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by: Mapped[str | None] = mapped_column(String(128))
    progress_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (CheckConstraint(one_of("state", BroadcastState), name="state"),)


class CampaignWinner(Base):
    """The variant the owner made the default of a campaign ("make B the default" under
    `/stats campaigns`): from then on everyone but the holdout gets it."""

    __tablename__ = "campaign_winners"

    campaign: Mapped[str] = mapped_column(String(40), primary_key=True)
    arm: Mapped[str] = mapped_column(String(8))  # "a" | "b"
    chosen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    chosen_by: Mapped[str] = mapped_column(String(128))


class OnboardingStart(Base):
    """How many newcomers pressed /start, per local day and deep-link source: the funnel's first
    step, which nothing else records (no customer exists before the consent button). Counts
    only, nothing about a person: no id, no name, so erasure (/forget) has nothing here."""

    __tablename__ = "onboarding_starts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)  # the business's local day
    source: Mapped[str] = mapped_column(String(48), primary_key=True)  # `src_…`'s; "" for none
    count: Mapped[int] = mapped_column(Integer)


class CampaignDay(Base):
    """What a campaign's arm brought, per local day of assignment, for the days whose window has
    fully passed (`/stats campaigns` over years sums these instead of seeking every assigned
    customer's purchases). Filled by `CampaignResultsService.close_days` with the live query's
    own rules; one row per day with campaign "" and arm "" says the day is closed (even with no
    assignments). Counts only, nothing about a person: erasure (/forget) has nothing here."""

    __tablename__ = "campaign_days"

    campaign: Mapped[str] = mapped_column(String(40), primary_key=True)
    arm: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # the business's local day
    assigned: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(Integer)
    redeemed: Mapped[int] = mapped_column(Integer)
    came_back: Mapped[int] = mapped_column(Integer)
    revenue_minor: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_campaign_days_day", "day"),)


class SalesDay(Base):
    """`/stats`'s sales of one closed local day, counted by `StatsRepo.sales`'s own rules (first
    or repeat, the gaps ending that day). Every day from the first purchase's to the last closed
    one has a row (zeros too), so the latest row says how far days are closed. Counts and sums
    only, nothing about a person: erasure (/forget) need not touch it. Filled by
    `StatsService.close`, deleted from a day on by an import of visits in the past."""

    __tablename__ = "sales_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)  # the business's local day
    sales: Mapped[int] = mapped_column(Integer)
    firsts: Mapped[int] = mapped_column(Integer)
    money_minor: Mapped[int] = mapped_column(BigInteger)
    first_minor: Mapped[int] = mapped_column(BigInteger)
    gaps: Mapped[int] = mapped_column(Integer)
    gap_days: Mapped[float] = mapped_column(Float)
    # the last purchase id when closed: purchases after it in a closed day reopen it
    counted_to: Mapped[int] = mapped_column(Integer)


class CohortMonth(Base):
    """A cohort's cell for a closed local month: of the customers whose first purchase was in
    `cohort`, how many bought in `month`, how many of those bought again (a later month, or twice
    in their first), and what they spent in it. Each closed month has its (month, month) row,
    zeros too, so the latest says how far months are closed. Counts only, nothing personal."""

    __tablename__ = "cohort_months"

    cohort: Mapped[date] = mapped_column(Date, primary_key=True)  # first day of the month
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)
    returned: Mapped[int] = mapped_column(Integer)
    money_minor: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_cohort_months_month", "month"),)


class Certificate(Base):
    """A gift certificate: an amount staff sold (or gave), a code and a link that can be
    forwarded; whoever opens it first owns it. Its balance is `amount_minor` minus its uses
    (`certificate_uses`, append-only), never stored on its own, so it cannot drift."""

    __tablename__ = "certificates"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # in kopecks / cents
    for_name: Mapped[str | None] = mapped_column(String(64))  # staff's free text: personal data
    issued_by_id: Mapped[int] = mapped_column(BigInteger)  # staff member's Telegram id
    issued_by_name: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CertificateUse(Base):
    """One spending of a certificate at the counter (append-only: the balance is their sum)."""

    __tablename__ = "certificate_uses"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    staff_id: Mapped[int] = mapped_column(BigInteger)
    staff_name: Mapped[str] = mapped_column(String(128))


class LoyaltyEntry(Base):
    """One line of a customer's points ledger, only ever appended: the balance is the sum of
    `points`. Spending and expiry take the soonest-expiring points first (bot/services/loyalty.py);
    an expiry entry names the accrual it closes (`accrual_id`, unique: once per accrual)."""

    __tablename__ = "loyalty_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))  # LedgerKind
    points: Mapped[int] = mapped_column(Integer)  # signed
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # accruals; None: never
    accrual_id: Mapped[int | None] = mapped_column(ForeignKey("loyalty_entries.id"), unique=True)
    staff_id: Mapped[int | None] = mapped_column(BigInteger)  # who corrected (Telegram id)
    staff_name: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(500))  # a correction's, as typed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # a bonus credited once per key (`birthday:<customer>:<year>`, migration 0026); else None
    bonus_key: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_loyalty_entries_customer", "customer_id", "id"),
        Index("uq_loyalty_entries_bonus_key", "bonus_key", unique=True),
        # the expiry planner's seek: accruals by when they expire
        Index(
            "ix_loyalty_entries_expiring",
            "expires_at",
            sqlite_where=sql("kind = 'accrual'"),
            postgresql_where=sql("kind = 'accrual'"),
        ),
        # one accrual per sale, whatever retries
        Index(
            "uq_loyalty_entries_accrual_purchase",
            "purchase_id",
            unique=True,
            sqlite_where=sql("kind = 'accrual'"),
            postgresql_where=sql("kind = 'accrual'"),
        ),
        CheckConstraint(one_of("kind", LedgerKind), name="kind"),
    )


class LoyaltyTier(Base):
    """A customer's current club tier (`[[loyalty.tiers]]`, bot/services/tiers.py), one row per
    customer in a tier: the tier's name, since when, and, once a drop was warned, when it takes
    effect unless they qualify again by then (`drops_at`)."""

    __tablename__ = "loyalty_tiers"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    tier: Mapped[str] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    drops_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PointsRequest(Base):
    """Staff asked to pay part of a sale with points; the customer confirms it in their chat
    (bot/services/points_pay.py). `amount_minor` is the sale's amount when asked (the original)."""

    __tablename__ = "points_requests"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint(one_of("state", PointsRequestState), name="state"),
        # the planner's seek for requests left unanswered past their expiry (migration 0026)
        Index(
            "ix_points_requests_pending",
            "expires_at",
            sqlite_where=sql("state = 'pending'"),
            postgresql_where=sql("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), index=True)
    points: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))  # PointsRequestState
    staff_id: Mapped[int] = mapped_column(BigInteger)
    staff_name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReferralState(StrEnum):
    """Where a friend brought by a personal link stands (`referrals`, migration 0022)."""

    JOINED = "joined"  # their phone was new: the friend's bonus credited; the reward waits
    REFUSED = "refused"  # a known phone, themselves, or a loop: nothing for anyone
    REWARDED = "rewarded"  # they bought: the one who brought them got the reward (once)


class ReferralLink(Base):
    """A customer's personal bring-a-friend link: `?start=ref_<token>`, a random token (not their
    id, so links cannot be guessed or walked), made once at their first /card."""

    __tablename__ = "referral_links"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Referral(Base):
    """Who brought whom (bot/services/referrals.py): one row per newcomer who came by a link and
    gave their phone. `phone_key` (a keyed fingerprint, never the number) is unique: one bonus per
    phone, also after /forget, which only unlinks the erased side (NULL)."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    referrer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    friend_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), unique=True)
    phone_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16))  # ReferralState
    refused: Mapped[str | None] = mapped_column(String(16))  # why: known, self, loop
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    bought_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_referrals_joined_at", "joined_at"),
        CheckConstraint(one_of("state", ReferralState), name="state"),
    )


class CustomerPackage(Base):
    """A prepaid package (абонемент) a customer bought (`[[loyalty.packages]]`, migration 0024,
    bot/services/packages.py): `visits` visits of `service_id`, `used` of them so far (a
    conditional update, never past `visits`), valid until `expires_at` (None: never). `name` is
    the package's name in the business file when sold; `purchase_id` the sale that bought it;
    `withdrawn_at` set when that sale was cancelled before any visit used it."""

    __tablename__ = "packages"
    __table_args__ = (
        CheckConstraint("visits >= 1", name="visits_positive"),
        CheckConstraint("used >= 0 AND used <= visits", name="used_within"),
        Index("ix_packages_customer_service", "customer_id", "service_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(32))
    service_id: Mapped[str] = mapped_column(String(32))
    visits: Mapped[int] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(Integer, default=0)
    price_minor: Mapped[int] = mapped_column(BigInteger)  # what the sale charged for it
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), unique=True)
    sold_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its sale was cancelled


class PackageVisit(Base):
    """A visit paid by a package: its sale (`purchase_id`, recorded with amount 0) used one of
    the package's visits. Deleted when that sale is cancelled (the visit is given back)."""

    __tablename__ = "package_visits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id"), index=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class StampKind(StrEnum):
    """A line of a customer's stamp card (`stamps`, migration 0023; bot/services/stamps.py)."""

    STAMP = "stamp"  # a sale of a matching service
    REWARD = "reward"  # the card completed: its stamps used, the reward coupon issued
    WITHDRAWN = "withdrawn"  # a stamp whose sale was cancelled (`ref_id`: the stamp)
    REOPENED = "reopened"  # a completion undone, its coupon withdrawn unused (`ref_id`: the reward)


class StampEntry(Base):
    """One line of a customer's stamp card, only ever appended; the progress is a replay of them
    (bot/services/stamps.py). One stamp per sale (`purchase_id`), one withdrawal per stamp and one
    reopening per completed card (`ref_id`)."""

    __tablename__ = "stamps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))  # StampKind
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"), unique=True)
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"), unique=True)
    ref_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_stamps_customer", "customer_id", "id"),
        CheckConstraint(one_of("kind", StampKind), name="kind"),
    )


class WaitlistEntry(Base):
    """A customer waiting for a time (bot/services/waitlist.py): a service, a master or any
    (NULL), the local days [first_day, last_day] and, if they chose one, a time of day: starts
    from `from_minute` (minutes after local midnight) up to before `to_minute`. Left, booked
    through an offer, or past its last day, it is deleted."""

    __tablename__ = "waitlist_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    service_id: Mapped[str] = mapped_column(String(32))
    master_id: Mapped[str | None] = mapped_column(String(32))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    from_minute: Mapped[int | None] = mapped_column(Integer)
    to_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_waitlist_entries_service_days", "service_id", "last_day"),)


class WaitlistOfferState(StrEnum):
    OFFERED = "offered"  # sent (or about to be), waiting for a tap
    TAKEN = "taken"  # this customer booked the time
    GONE = "gone"  # someone else was faster (or the time is no longer free)


class WaitlistOffer(Base):
    """A freed time offered to one waiting customer: one per customer and time (unique), so a
    time's next round goes to the next ones. The round is over at `answer_by`."""

    __tablename__ = "waitlist_offers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("waitlist_entries.id"), index=True)
    service_id: Mapped[str] = mapped_column(String(32))
    master_id: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it goes (the quiet hours' end)
    answer_by: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16))  # WaitlistOfferState

    __table_args__ = (
        UniqueConstraint("customer_id", "master_id", "starts_at"),
        Index("ix_waitlist_offers_slot", "master_id", "starts_at"),
        CheckConstraint(one_of("state", WaitlistOfferState), name="state"),
    )


class DepositState(StrEnum):
    """A booking's deposit (`deposits`, migration 0027), as it stands."""

    AWAITING = "awaiting"  # the invoice sent, the time held, nothing paid yet
    EXPIRED = "expired"  # the hold ran out unpaid (or a newer hold of theirs replaced it)
    PAID = "paid"  # paid: the visit stands
    COUNTED = "counted"  # counted into the visit's sale (`purchase_id`)
    KEPT = "kept"  # a late cancellation or a no-show: the business keeps it
    REFUND_DUE = "refund_due"  # to be refunded by hand (the staff were told why: `reason`)


class Deposit(Base):
    """What one booking asks to be paid in advance, and the payment when it came (Telegram
    Payments: `telegram_charge_id`, unique, so a repeated update records nothing twice, and the
    provider's). The money record stays after `/forget` (accounting), its customer unlinked."""

    __tablename__ = "deposits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    service_id: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16))  # DepositState
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    hold_until: Mapped[datetime] = mapped_column(UTCDateTime)  # the invoice is good until then
    token: Mapped[str] = mapped_column(String(32), unique=True)  # the invoice's payload
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_minor: Mapped[int | None] = mapped_column(BigInteger)  # what Telegram said was paid
    telegram_charge_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    provider_charge_id: Mapped[str | None] = mapped_column(String(128))
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # counted, kept, refund due
    reason: Mapped[str | None] = mapped_column(String(32))  # why kept or to be refunded
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))

    __table_args__ = (
        Index("ix_deposits_state_hold", "state", "hold_until"),
        CheckConstraint(one_of("state", DepositState), name="state"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )


class DepositMark(Base):
    """A customer staff marked "only with deposit" from their card: they pay a deposit whenever
    deposits are on, whatever the policy. Deleted when unmarked, and by `/forget`."""

    __tablename__ = "deposit_marks"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    staff_id: Mapped[int] = mapped_column(BigInteger)
    staff_name: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class BusinessConnection(Base):
    """A Telegram Business account that connected the bot (Settings → Telegram Business →
    Chatbots): its owner, what the owner allows (`rights`, Telegram's BusinessBotRights, and
    `can_reply` of them), and whether it is on. Updated by every `business_connection` update
    (migration 0029); a connection switched off stays, `enabled` false."""

    __tablename__ = "business_connections"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # Telegram's connection id
    owner_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    owner_name: Mapped[str] = mapped_column(String(256))
    rights: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    can_reply: Mapped[bool] = mapped_column(Boolean)
    enabled: Mapped[bool] = mapped_column(Boolean)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BusinessChat(Base):
    """A customer's chat with a connected account: which account they last wrote to, when (the
    bot may answer there for 24 hours after), and their card when it was found by their phone."""

    __tablename__ = "business_chats"

    tg_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    connection_id: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    last_in_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BusinessMessage(Base):
    """One message of a customer's chat with a connected account, as Telegram numbers it there
    (to follow its edits and deletions), and its row in the care history (`care_id`, which
    holds the words). `from_owner`: the account's owner wrote it from their own phone."""

    __tablename__ = "business_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[str] = mapped_column(String(128))
    tg_user_id: Mapped[int] = mapped_column(BigInteger, index=True)  # the customer (their chat)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    message_id: Mapped[int] = mapped_column(BigInteger)
    care_id: Mapped[int | None] = mapped_column(Integer)
    from_owner: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("connection_id", "tg_user_id", "message_id"),)
