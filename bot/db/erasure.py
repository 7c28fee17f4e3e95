"""`/forget`, set-wise: every copy of one customer's personal data, erased or made anonymous;
the destruction records (`erasures`) that say what went, counted, naming nobody; and the sets
the owner's retention periods erase (bot/services/retention.py).

The customer row itself is blanked by `CustomerService.erase`; this deletes their care-chat
messages and finds the copies elsewhere: staff notes and the audit's details, survey comments,
a visit's free-text reason, conversation state, and the outbox rows sent to them or about them
(the stored texts, buttons and data: a booking notice to a master carries the customer's name
and phone). Each step returns how many rows it erased, for the record.

What stays is what the business's totals need and names nobody: the anonymous customer row,
purchases (amounts, services, masters), coupons, consents, visits (times and states), survey
scores, and the outbox rows' keys and states (counts, broadcast results). Their points
ledger (`loyalty_entries`) and club tier (`loyalty_tiers`) are deleted: a balance is theirs, a
correction's reason typed text.
The newcomers' /start counts (`onboarding_starts`: a day, a deep-link source, a number) hold
nothing of anyone, so there is nothing of theirs to erase there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    String,
    and_,
    cast,
    delete,
    exists,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    OUTBOX_WAITING,
    Booking,
    CareMessage,
    CareTopic,
    Certificate,
    Consent,
    Coupon,
    Customer,
    Cycle,
    Erasure,
    ErasureReason,
    FsmRecord,
    LoyaltyEntry,
    LoyaltyTier,
    OutboxError,
    OutboxKind,
    OutboxMessage,
    OutboxState,
    Purchase,
    StaffAction,
    StaffNote,
    Survey,
)

ERASED = "erased"
# A visit's reason as the bot writes it (kept: it names nobody); anything else was typed by a person.
SYSTEM_REASONS = ("rescheduled", "customer", "erased")
# Audit details that are amounts, codes or names from the business file, never free text.
KEPT_DETAILS = frozenset({"amount_minor", "service", "master", "code", "kind", "points"})
WAITING = OUTBOX_WAITING
# Keys of an outbox row's data that hold a Telegram account: a relay of their words (from a
# time before they consented, too), a staff reply to them.
ACCOUNT_KEYS = ("tg_user_id", "from_chat_id", "recipient")
CHUNK = 5000  # ids per statement, under every driver's limit on bound parameters
# The outbox templates of the care chat's relays (bot/services/care.py INBOUND, REPLY, and a
# reply sent through a Telegram Business account, bot/services/business_chats.py BIZ_REPLY):
# their stored text and data hold the words.
CARE_RELAYS = ("care_in", "care_out", "biz_out")


class ErasureRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _count(self, statement: Any) -> int:
        result: CursorResult[Any] = await self.session.execute(statement)  # type: ignore[assignment]
        return max(result.rowcount or 0, 0)

    # ---- one customer ---------------------------------------------------------------------------

    async def care(self, tg_user_id: int | None, customer_id: int) -> dict[str, int]:
        """Their care-chat conversation: the messages both ways, and their topic mapping."""
        where = CareMessage.customer_id == customer_id
        if tg_user_id is not None:
            where = where | (CareMessage.tg_user_id == tg_user_id)
        erased = {"care_messages": await self._count(delete(CareMessage).where(where))}
        if tg_user_id is not None:
            erased["care_topics"] = await self._count(
                delete(CareTopic).where(CareTopic.tg_user_id == tg_user_id)
            )
        return erased

    async def rhythm(self, customer_id: int) -> dict[str, int]:
        """What the erasure's subscribers are about to forget (their cycles per service), counted
        before they do."""
        cycles = await self.session.scalar(
            select(func.count()).select_from(Cycle).where(Cycle.customer_id == customer_id)
        )
        return {"cycles": cycles or 0}

    async def erase(self, customer_id: int, tg_user_id: int | None) -> dict[str, int]:
        """Every other copy; returns how many rows of each kind were erased."""
        await self.session.flush()  # what the caller changed so far goes first
        erased: dict[str, int] = {}
        erased["staff_notes"] = await self._count(
            delete(StaffNote).where(StaffNote.customer_id == customer_id)
        )
        erased["loyalty_tiers"] = await self._count(
            delete(LoyaltyTier).where(LoyaltyTier.customer_id == customer_id)
        )
        # their points ledger (the expiry entries first: they point at the accruals)
        erased["loyalty_entries"] = await self._count(
            delete(LoyaltyEntry).where(
                LoyaltyEntry.customer_id == customer_id, LoyaltyEntry.accrual_id.is_not(None)
            )
        ) + await self._count(delete(LoyaltyEntry).where(LoyaltyEntry.customer_id == customer_id))
        trimmed = 0
        for action in await self.session.scalars(
            select(StaffAction).where(StaffAction.customer_id == customer_id)
        ):
            details = dict(action.details or {})
            if set(details) - KEPT_DETAILS:
                action.details = {k: v for k, v in details.items() if k in KEPT_DETAILS}
                trimmed += 1
        erased["audit_details"] = trimmed
        erased["survey_comments"] = await self._count(
            update(Survey)
            .where(Survey.customer_id == customer_id, Survey.comment.is_not(None))
            .values(comment=None)
            .execution_options(synchronize_session=False)
        )
        erased["booking_reasons"] = await self._count(
            update(Booking)
            .where(Booking.customer_id == customer_id, Booking.reason.not_in(SYSTEM_REASONS))
            .values(reason=None)
            .execution_options(synchronize_session=False)
        )
        # The visits ahead the subscribers just cancelled for the erasure (once per customer).
        erased["bookings_cancelled"] = (
            await self.session.scalar(
                select(func.count())
                .select_from(Booking)
                .where(Booking.customer_id == customer_id, Booking.reason == ERASED)
            )
            or 0
        )
        # Still claimed (claimed_at kept), so the link cannot be claimed again; the rest unspent.
        erased["certificates"] = await self._count(
            update(Certificate)
            .where(Certificate.customer_id == customer_id)
            .values(customer_id=None, for_name=None)
            .execution_options(synchronize_session=False)
        )
        erased |= await self._outbox(customer_id, tg_user_id)
        if tg_user_id is not None:
            erased["conversation_state"] = await self._conversations(tg_user_id)
        await self.session.flush()
        return erased

    async def _outbox(self, customer_id: int, tg_user_id: int | None) -> dict[str, int]:
        """Rows to them (by customer or by chat) and rows about them to the staff (by the visit,
        the survey, or the customer named in the row's data)."""
        bookings = list(
            await self.session.scalars(select(Booking.id).where(Booking.customer_id == customer_id))
        )
        surveys = list(
            await self.session.scalars(select(Survey.id).where(Survey.customer_id == customer_id))
        )
        json_in = _json_in(self.session.get_bind().dialect.name)
        mentions = [json_in("customer_id", [customer_id])]
        if tg_user_id is not None:
            mentions += [json_in(key, [tg_user_id]) for key in ACCOUNT_KEYS]
        if bookings:
            mentions.append(json_in("booking_id", bookings))
        if surveys:
            mentions.append(json_in("survey_id", surveys))
        found = await self.session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.key,
                OutboxMessage.chat_id,
                OutboxMessage.state,
                OutboxMessage.data,
            ).where(
                (OutboxMessage.customer_id == customer_id)
                | (
                    (OutboxMessage.chat_id == tg_user_id)
                    if tg_user_id is not None
                    else literal(False)
                )
                | (OutboxMessage.chat_id.is_not(None) & or_(*mentions))
            )
        )
        visits = set(bookings)
        renew: list[int] = []  # a visit's notice still to go to a master or the admin chat
        scrub: list[int] = []
        rename: list[int] = []  # keys that hold their Telegram id (`inbound:<their id>:<message>`)
        for row_id, key, chat_id, state, data in found:
            notice = (
                chat_id is not None
                and chat_id != tg_user_id
                and (data or {}).get("booking_id") in visits
            )
            (renew if notice and state in WAITING else scrub).append(row_id)
            if tg_user_id is not None and str(tg_user_id) in key.split(":"):
                rename.append(row_id)
        # The notice still goes (a master must hear their slot is free again), rendered anew when
        # sent, from the customer as they are now: nameless. Only its stored text goes now.
        for ids in _chunks(renew):
            await self.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(text=None)
                .execution_options(synchronize_session=False)
            )
        # Everything else: text, buttons and data gone, the chat if it was theirs; what was still
        # to go is skipped (their words to the staff included: they asked to be forgotten).
        waiting = OutboxMessage.state.in_(WAITING)
        unsent = 0
        for ids in _chunks(scrub):
            unsent += await self._count(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), waiting)
                .values(
                    state=OutboxState.SKIPPED,
                    last_error=ERASED,
                    error_code=OutboxError.ERASED,
                    claimed_at=None,
                    claimed_by=None,
                )
                .execution_options(synchronize_session=False)
            )
            await self.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.chat_id == tg_user_id)
                .values(chat_id=None)
                .execution_options(synchronize_session=False)
            )
            await self.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(text=None, markup=null(), data={})
                .execution_options(synchronize_session=False)
            )
        # Unique still, and no longer linking the anonymous customer row to their account. Keys
        # that name only the customer's row or a purchase stay: counts and surveys rely on them.
        for ids in _chunks(rename):
            await self.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(key=literal(f"{ERASED}:", String) + cast(OutboxMessage.id, String))
                .execution_options(synchronize_session=False)
            )
        return {"outbox_texts": len(renew) + len(scrub), "outbox_unsent": unsent}

    async def _conversations(self, tg_user_id: int) -> int:
        """Their conversation state (`fsm:<bot>:<chat>:<user>:…`, their chat being their id):
        a half-finished step may hold what they typed."""
        user = str(tg_user_id)
        keys = await self.session.scalars(
            select(FsmRecord.key).where(FsmRecord.key.like(f"%:{user}:%"))
        )
        theirs = [key for key in keys if key.split(":").count(user) >= 2]
        deleted = 0
        for ids in _chunks(theirs):
            deleted += await self._count(delete(FsmRecord).where(FsmRecord.key.in_(ids)))
        return deleted

    # ---- the destruction records ----------------------------------------------------------------

    def record(
        self,
        customer_id: int | None,
        reason: ErasureReason,
        erased: dict[str, int],
        at: datetime,
    ) -> Erasure:
        """What went, as counts per category (only those with any), naming nobody: the
        anonymous row's id (None: a set of many people's texts), the reason and the time."""
        categories = {name: count for name, count in erased.items() if count}
        record = Erasure(customer_id=customer_id, reason=reason, categories=categories, at=at)
        self.session.add(record)
        return record

    async def records(self, limit: int, offset: int = 0) -> list[Erasure]:
        """The latest first."""
        query = (
            select(Erasure)
            .order_by(Erasure.at.desc(), Erasure.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list(await self.session.scalars(query))

    async def count(self) -> int:
        return await self.session.scalar(select(func.count()).select_from(Erasure)) or 0

    # ---- retention ------------------------------------------------------------------------------

    async def old_care_texts(self, before: datetime, limit: int) -> tuple[list[int], list[int]]:
        """Care-chat messages with a text written before `before`, and the care relays of then
        that are done and still hold a text or data (a relay on its way keeps them until it has
        gone; a later run takes it): at most `limit` of each, oldest first. A read, so the
        write lock is held only for `blank_care_texts`."""
        messages = await self.session.scalars(
            select(CareMessage.id)
            .where(CareMessage.at < before, CareMessage.text.is_not(None))
            .order_by(CareMessage.id)
            .limit(limit)
        )
        relays = await self.session.scalars(
            select(OutboxMessage.id)
            .where(_done_care_relay(before))
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        return list(messages), list(relays)

    async def blank_care_texts(
        self, before: datetime, messages: Sequence[int], relays: Sequence[int]
    ) -> dict[str, int]:
        """The texts of those messages blanked (the rows stay, so the conversation's counts and
        a late reply's way back remain), and the relays' stored text and data; checked again
        here, so a second run (or a second process) counts nothing twice."""
        blanked = scrubbed = 0
        for chunk in _chunks(messages):
            blanked += await self._count(
                update(CareMessage)
                .where(CareMessage.id.in_(chunk), CareMessage.text.is_not(None))
                .values(text=None)
                .execution_options(synchronize_session=False)
            )
        for chunk in _chunks(relays):
            scrubbed += await self._count(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(chunk), _done_care_relay(before))
                .values(text=None, markup=null(), data={})
                .execution_options(synchronize_session=False)
            )
        return {"care_texts": blanked, "outbox_texts": scrubbed}

    async def inactive_customers(
        self, before: datetime, limit: int, *, customer_id: int | None = None
    ) -> list[int]:
        """Customers (not yet erased) with nothing since `before`: see `inactive`. The oldest
        ids first; `customer_id` checks that one again."""
        query = select(Customer.id).where(Customer.erased_at.is_(None), inactive(before))
        if customer_id is not None:
            query = query.where(Customer.id == customer_id)
        return list(await self.session.scalars(query.order_by(Customer.id).limit(limit)))


def _done_care_relay(before: datetime) -> ColumnElement[bool]:
    return and_(
        OutboxMessage.kind == OutboxKind.RELAY,
        OutboxMessage.template.in_(CARE_RELAYS),
        OutboxMessage.created_at < before,
        OutboxMessage.state.not_in(WAITING),
        OutboxMessage.text.is_not(None) | cast(OutboxMessage.data, String).not_in(["{}", "null"]),
    )


def inactive(before: datetime) -> ColumnElement[bool]:
    """Nothing of the customer's since `before`. What counts as something, by what the schema
    keeps: a purchase (a visit, imported ones too), a booking made or a visit booked for then
    or later, a care-chat message either way, a consent given or withdrawn (onboarding, /stop,
    /resume, a new privacy version agreed), a survey answered, a coupon redeemed; and the
    customer's start (first contact, onboarding). A customer imported from the owner's base who
    has no Telegram yet counts from their last visit (their import is the owner's act, not
    theirs), or from the import when it brought no visits. Opening /profile or /mycoupons
    leaves no trace, so it does not count."""
    mine = Customer.id
    imported_only = and_(Customer.tg_user_id.is_(None), Customer.imported_at.is_not(None))
    any_purchase = exists().where(Purchase.customer_id == mine)
    started = or_(
        and_(not_(imported_only), Customer.created_at >= before),
        # (a NULL compared is unknown, and NOT unknown would hide the customer from the set)
        and_(Customer.onboarded_at.is_not(None), Customer.onboarded_at >= before),
        and_(imported_only, not_(any_purchase), Customer.imported_at >= before),
    )
    since = [
        exists().where(Purchase.customer_id == mine, Purchase.at >= before),
        exists().where(
            Booking.customer_id == mine,
            (Booking.created_at >= before) | (Booking.starts_at >= before),
        ),
        exists().where(CareMessage.customer_id == mine, CareMessage.at >= before),
        exists().where(Consent.customer_id == mine, Consent.at >= before),
        exists().where(Survey.customer_id == mine, Survey.answered_at >= before),
        exists().where(Coupon.customer_id == mine, Coupon.redeemed_at >= before),
    ]
    return not_(or_(started, *since))


def _json_in(dialect: str):  # type: ignore[no-untyped-def]
    """`data[key] IN values` for integer values: PostgreSQL's ->> gives text, SQLite's
    json_extract the number itself (and SQLite does not compare 12 with '12')."""

    def condition(key: str, values: Iterable[int]) -> ColumnElement[bool]:
        field: Any = OutboxMessage.data[key]
        if dialect == "postgresql":
            return field.as_string().in_([str(v) for v in values])  # type: ignore[no-any-return]
        return field.as_integer().in_(list(values))  # type: ignore[no-any-return]

    return condition


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]
