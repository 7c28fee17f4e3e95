"""`/forget`, set-wise: every copy of one customer's personal data, erased or made anonymous.

The customer row itself is blanked by `CustomerService.forget`, and their care-chat messages
are deleted by `CareRepo.erase`; this finds the copies elsewhere: staff notes and the audit's
details, survey comments, a visit's free-text reason, conversation state, and the outbox rows
sent to them or about them (the stored texts, buttons and data: a booking notice to a master
carries the customer's name and phone).

What stays is what the business's totals need and names nobody: the anonymous customer row,
purchases (amounts, services, masters), coupons, consents, visits (times and states), survey
scores, and the outbox rows' keys and states (counts, broadcast results).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, cast, delete, literal, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    OUTBOX_WAITING,
    Booking,
    FsmRecord,
    OutboxError,
    OutboxMessage,
    OutboxState,
    StaffAction,
    StaffNote,
    Survey,
)

ERASED = "erased"
# A visit's reason as the bot writes it (kept: it names nobody); anything else was typed by a person.
SYSTEM_REASONS = ("rescheduled", "customer", "erased")
# Audit details that are amounts, codes or names from the business file, never free text.
KEPT_DETAILS = frozenset({"amount_minor", "service", "master", "code", "kind"})
WAITING = OUTBOX_WAITING
# Keys of an outbox row's data that hold a Telegram account: a relay of their words (from a
# time before they consented, too), a staff reply to them.
ACCOUNT_KEYS = ("tg_user_id", "from_chat_id", "recipient")
CHUNK = 5000  # ids per statement, under every driver's limit on bound parameters


class ErasureRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def erase(self, customer_id: int, tg_user_id: int) -> None:
        await self.session.flush()  # what the caller changed so far goes first
        await self.session.execute(delete(StaffNote).where(StaffNote.customer_id == customer_id))
        for action in await self.session.scalars(
            select(StaffAction).where(StaffAction.customer_id == customer_id)
        ):
            details = dict(action.details or {})
            if set(details) - KEPT_DETAILS:
                action.details = {k: v for k, v in details.items() if k in KEPT_DETAILS}
        await self.session.execute(
            update(Survey)
            .where(Survey.customer_id == customer_id, Survey.comment.is_not(None))
            .values(comment=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            update(Booking)
            .where(Booking.customer_id == customer_id, Booking.reason.not_in(SYSTEM_REASONS))
            .values(reason=None)
            .execution_options(synchronize_session=False)
        )
        await self._outbox(customer_id, tg_user_id)
        await self._conversations(tg_user_id)
        await self.session.flush()

    async def _outbox(self, customer_id: int, tg_user_id: int) -> None:
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
                | (OutboxMessage.chat_id == tg_user_id)
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
            if str(tg_user_id) in key.split(":"):
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
        for ids in _chunks(scrub):
            await self.session.execute(
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

    async def _conversations(self, tg_user_id: int) -> None:
        """Their conversation state (`fsm:<bot>:<chat>:<user>:…`, their chat being their id):
        a half-finished step may hold what they typed."""
        user = str(tg_user_id)
        keys = await self.session.scalars(
            select(FsmRecord.key).where(FsmRecord.key.like(f"%:{user}:%"))
        )
        theirs = [key for key in keys if key.split(":").count(user) >= 2]
        for ids in _chunks(theirs):
            await self.session.execute(delete(FsmRecord).where(FsmRecord.key.in_(ids)))


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
