"""Set-wise queries: who a planner writes to, who a segment is, as SQL over many customers at
once. The planners and services name what they want (`born_on(day)`, `sleeping(now)`,
`due_offer_rows(...)`); the SQL is here, beside the repositories (which run it: `repos.outbox.plan`,
`repos.customers.count_in`). Each returns a condition over `Customer` (or a query of outbox rows)."""

from __future__ import annotations

import calendar
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.functions import FunctionElement

from bot.db.models import (
    ACTIVE_BOOKING,
    Booking,
    Coupon,
    Customer,
    Cycle,
    OutboxKind,
    OutboxMessage,
    OutboxState,
    Purchase,
)
from bot.db.repositories import planned_rows

# ---- customers ---------------------------------------------------------------------------------


def reachable() -> ColumnElement[bool]:
    """Customers a message can reach in their own chat: not erased, and with a Telegram account
    (not one imported from the owner's base who has not joined the bot yet)."""
    return and_(Customer.erased_at.is_(None), Customer.tg_user_id.is_not(None))


def may_get_offers() -> ColumnElement[bool]:
    """Customers an offer may be planned for: reachable, not blocking the bot, with a current
    consent to offers (the sender's policy checks the same again when sending)."""
    return and_(
        reachable(),
        Customer.blocked_at.is_(None),
        Customer.marketing_opt_out.is_(False),
    )


def may_get_broadcasts() -> ColumnElement[bool]:
    """Who a broadcast may go to: onboarded, and whom any offer may be planned for."""
    return and_(Customer.onboarded_at.is_not(None), may_get_offers())


def known() -> ColumnElement[bool]:
    """Not erased."""
    return Customer.erased_at.is_(None)


def everyone() -> ColumnElement[bool]:
    return true()


def born_on(day: date) -> ColumnElement[bool]:
    """Customers whose birthday falls on `day`: 29 February ones on the 28th in common years."""
    matches = and_(Customer.birth_month == day.month, Customer.birth_day == day.day)
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        matches = or_(matches, and_(Customer.birth_month == 2, Customer.birth_day == 29))
    return matches


def born_in_month(month: int) -> ColumnElement[bool]:
    return Customer.birth_month == month


def _visits() -> Any:
    return (
        select(func.count(Purchase.id)).where(Purchase.customer_id == Customer.id).scalar_subquery()
    )


def _last_visit() -> Any:
    return (
        select(func.max(Purchase.at)).where(Purchase.customer_id == Customer.id).scalar_subquery()
    )


def visits_exactly(count: int) -> ColumnElement[bool]:
    return _visits() == count


def visits_at_least(count: int) -> ColumnElement[bool]:
    return _visits() >= count


def last_visit_before(moment: datetime) -> ColumnElement[bool]:
    return _last_visit() < moment


def last_visit_since(moment: datetime) -> ColumnElement[bool]:
    return _last_visit() >= moment


def bought(*, service_id: str | None = None, master_id: str | None = None) -> ColumnElement[bool]:
    """They bought this service (or from this master) at least once."""
    which = [Purchase.customer_id == Customer.id]
    if service_id is not None:
        which.append(Purchase.service_id == service_id)
    if master_id is not None:
        which.append(Purchase.master_id == master_id)
    return exists().where(*which)


def bought_any(service_ids: list[str]) -> ColumnElement[bool]:
    return exists().where(Purchase.customer_id == Customer.id, Purchase.service_id.in_(service_ids))


def latest_visit() -> Any:
    """The customer's latest visit among their cycles (by purchase, so one visit of two
    services recorded at the same moment is still one): the latest by its time, then by id
    (imported visits' ids do not follow their dates)."""
    other = aliased(Cycle)  # its own name: the callers' queries have Cycle in them already
    return (
        select(other.last_purchase_id)
        .where(other.customer_id == Customer.id)
        .order_by(other.last_visit_at.desc(), other.last_purchase_id.desc())
        .limit(1)
        .correlate(Customer)
        .scalar_subquery()
    )


def sleeping(now: datetime) -> ColumnElement[bool]:
    """Their latest cycle's sleep moment passed (no visit since: a visit moves it), and no
    visit is booked ahead."""
    cycle = aliased(Cycle)
    return and_(
        exists().where(
            cycle.customer_id == Customer.id,
            cycle.last_purchase_id == latest_visit(),
            cycle.sleeps_at <= now,
        ),
        ~exists().where(Booking.customer_id == Customer.id, Booking.state.in_(ACTIVE_BOOKING)),
    )


def all_of(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return and_(*conditions)


# ---- outbox rows a planner writes (for `repos.outbox.plan`) -------------------------------------


def customer_rows(
    key_prefix: str,
    key_suffix: str,
    *,
    template: str,
    data: dict[str, Any],
    not_before: datetime,
    not_after: datetime,
    due_at: datetime,
    now: datetime,
    kind: OutboxKind = OutboxKind.MARKETING,
) -> Select[Any]:
    """One row per customer, keyed `<prefix><customer id><suffix>`; add `.where(...)` for whom."""
    key = literal(key_prefix, String) + cast(Customer.id, String) + literal(key_suffix, String)
    return planned_rows(
        key,
        Customer.id,
        kind=kind,
        template=template,
        data=data,
        not_before=not_before,
        not_after=not_after,
        due_at=due_at,
        now=now,
    )


def one_customer_row(
    key: str,
    customer_id: int,
    *,
    template: str,
    data: dict[str, Any],
    not_before: datetime,
    not_after: datetime,
    due_at: datetime,
    now: datetime,
    kind: OutboxKind = OutboxKind.MARKETING,
) -> Select[Any]:
    """One row for one customer (keyed `key`); add `.where(...)` for when it is written at all
    (`may_get_offers()`: an offer to someone who cannot get it is not even written)."""
    return planned_rows(
        literal(key, String),
        Customer.id,
        kind=kind,
        template=template,
        data=data,
        not_before=not_before,
        not_after=not_after,
        due_at=due_at,
        now=now,
    ).where(Customer.id == customer_id)


def expiry_reminder_rows(
    *,
    now: datetime,
    due_at: datetime,
    window_start: datetime,
    window_end: datetime,
    issued_before: datetime,
) -> Select[Any]:
    """A reminder for each unused coupon of a reachable customer expiring in the window."""
    return (
        planned_rows(
            literal("expiry:", String) + cast(Coupon.id, String),
            Coupon.customer_id,
            coupon_id=Coupon.id,
            kind=OutboxKind.MARKETING,
            template="coupon_expiring",
            data={},
            not_before=now,
            not_after=Coupon.expires_at,
            due_at=due_at,
            now=now,
        )
        .join(Customer, Customer.id == Coupon.customer_id)
        .where(
            may_get_offers(),
            Coupon.redeemed_at.is_(None),
            Coupon.voided_at.is_(None),
            Coupon.expires_at > window_start,
            Coupon.expires_at <= window_end,
            Coupon.issued_at <= issued_before,
        )
    )


def upcoming_booking_of_cycle() -> ColumnElement[bool]:
    return exists().where(
        Booking.customer_id == Cycle.customer_id, Booking.state.in_(ACTIVE_BOOKING)
    )


def offer_ready(now: datetime, ignored_limit: int) -> ColumnElement[bool]:
    """Cycles whose offer moment came, still before their due date, not ignored too often, nothing booked."""
    return and_(
        Cycle.offer_at <= now,
        Cycle.due_at > now,
        Cycle.ignored < ignored_limit,
        ~upcoming_booking_of_cycle(),
    )


def due_offer_key() -> Any:
    return (
        literal("due_offer:", String)
        + cast(Cycle.customer_id, String)
        + literal(":", String)
        + Cycle.service_id
        + literal(":", String)
        + cast(Cycle.last_purchase_id, String)
        + literal(":", String)
        + cast(Cycle.round, String)
    )


class json_object(FunctionElement[Any]):  # noqa: N801 (a SQL function's name)
    """A JSON object from key, value, … pairs, as each database spells it."""

    name = "json_object"
    inherit_cache = True


@compiles(json_object)
def _json_object(element: json_object, compiler: Any, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object, "postgresql")
def _json_build_object(element: json_object, compiler: Any, **kw: Any) -> str:
    return f"json_build_object({compiler.process(element.clauses, **kw)})"


def due_offer_rows(*, now: datetime, due_at: datetime, ignored_limit: int) -> Select[Any]:
    """A due-offer for each ready cycle of a reachable customer, keyed by its last visit and round."""
    return (
        planned_rows(
            due_offer_key(),
            Cycle.customer_id,
            kind=OutboxKind.MARKETING,
            template="due_offer",
            # type_coerce, not CAST: SQLite would cast to a number
            data=type_coerce(
                json_object("service", Cycle.service_id, "master", Cycle.master_id), JSON
            ),
            not_before=now,
            not_after=Cycle.due_at,
            due_at=due_at,
            now=now,
        )
        .join(Customer, Customer.id == Cycle.customer_id)
        .where(offer_ready(now, ignored_limit), may_get_offers())
    )


def offered() -> ColumnElement[bool]:
    """The cycle's offer of this round is in the outbox."""
    return exists().where(OutboxMessage.key == due_offer_key())


def reactivation_key(step: int) -> Any:
    return (
        literal("reactivation:", String)
        + cast(Cycle.customer_id, String)
        + literal(":", String)
        + cast(Cycle.last_purchase_id, String)
        + literal(f":{step}", String)
    )


def reactivation_rows(
    step: int,
    *,
    template: str,
    data: dict[str, Any],
    now: datetime,
    not_after: datetime,
    due_at: datetime,
    first_sent_before: datetime | None = None,
) -> Select[Any]:
    """The wake-up message to each customer asleep now (step 1); step 2 only to those whose first
    one went before `first_sent_before`."""
    rows = (
        planned_rows(
            reactivation_key(step),
            Cycle.customer_id,
            kind=OutboxKind.MARKETING,
            template=template,
            data=data,
            not_before=now,
            not_after=not_after,
            due_at=due_at,
            now=now,
        )
        .join(Customer, Customer.id == Cycle.customer_id)
        .where(
            Cycle.sleeps_at <= now,
            Cycle.last_purchase_id == latest_visit(),
            may_get_offers(),
            sleeping(now),
        )
    )
    if first_sent_before is not None:
        first = OutboxMessage.__table__.alias("first_message")
        rows = rows.join(
            first,
            and_(
                first.c.key == reactivation_key(1),
                first.c.state == OutboxState.SENT,
                first.c.sent_at <= first_sent_before,
            ),
        )
    return rows


def broadcast_rows(
    key_prefix: str,
    *,
    data: dict[str, Any],
    now: datetime,
    not_after: datetime,
    due_at: datetime,
    segment: ColumnElement[bool],
) -> Select[Any]:
    """A broadcast's message to each customer of its segment, keyed `<prefix><customer id>`."""
    return customer_rows(
        key_prefix,
        "",
        template="broadcast",
        data=data,
        not_before=now,
        not_after=not_after,
        due_at=due_at,
        now=now,
    ).where(segment)
