"""Customer segments for broadcasts: conditions that combine with AND, turned into SQL.

A segment is stored as plain JSON on the broadcast (`[{"kind": "service", "value": "manicure"},
…]`), so what the owner confirmed is exactly what is queued, even after a restart.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, exists, func, select, true
from sqlalchemy.orm import aliased

from bot.business import Business
from bot.db.models import Booking, Customer, Cycle, Purchase
from bot.db.repositories import ACTIVE_BOOKING
from bot.outbox.planners import reachable as may_get_offers

KINDS = ("all", "new", "regular", "service", "master", "visited_before", "visited_after", "birthday_month",
         "sleeping")


@dataclass(frozen=True)
class Condition:
    kind: str
    value: str = ""

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Condition:
        return cls(str(raw["kind"]), str(raw.get("value") or ""))

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value} if self.value else {"kind": self.kind}


def reachable() -> ColumnElement[bool]:
    """Who a broadcast may go to: onboarded, and whom any offer may be planned for."""
    return and_(Customer.onboarded_at.is_not(None), may_get_offers())


def _purchases() -> Any:
    return select(func.count(Purchase.id)).where(Purchase.customer_id == Customer.id).scalar_subquery()


def _last_visit() -> Any:
    return select(func.max(Purchase.at)).where(Purchase.customer_id == Customer.id).scalar_subquery()


def latest_visit() -> Any:
    """The customer's latest visit among their cycles (by purchase, so one visit of two
    services recorded at the same moment is still one)."""
    other = aliased(Cycle)  # its own name: the callers' queries have Cycle in them already
    return (select(func.max(other.last_purchase_id)).where(other.customer_id == Customer.id)
            .correlate(Customer).scalar_subquery())


def sleeping(now: datetime) -> ColumnElement[bool]:
    """Their latest cycle's sleep moment passed (no visit since: a visit moves it), and no
    visit is booked ahead."""
    cycle = aliased(Cycle)
    return and_(
        exists().where(cycle.customer_id == Customer.id, cycle.last_purchase_id == latest_visit(),
                       cycle.sleeps_at <= now),
        ~exists().where(Booking.customer_id == Customer.id, Booking.state.in_(ACTIVE_BOOKING)),
    )


class Segments:
    def __init__(self, business: Business, tz: ZoneInfo) -> None:
        self.business = business
        self.tz = tz

    def _day_start(self, text: str) -> datetime:
        return datetime.combine(date.fromisoformat(text), time(0), tzinfo=self.tz)

    def condition(self, condition: Condition, now: datetime) -> ColumnElement[bool]:
        """One condition as SQL over `Customer`; ValueError for one we do not know."""
        kind, value = condition.kind, condition.value
        if kind == "all":
            return true()
        if kind == "new":
            return _purchases() == 1
        if kind == "regular":
            return _purchases() >= self.business.broadcasts.regular_visits
        if kind == "service":
            if self.business.service(value) is None:
                raise ValueError(f"unknown service {value!r}")
            return exists().where(Purchase.customer_id == Customer.id, Purchase.service_id == value)
        if kind == "master":
            if self.business.master(value) is None:
                raise ValueError(f"unknown master {value!r}")
            return exists().where(Purchase.customer_id == Customer.id, Purchase.master_id == value)
        if kind == "visited_before":
            return _last_visit() < self._day_start(value)
        if kind == "visited_after":
            return _last_visit() >= self._day_start(value)
        if kind == "birthday_month":
            month = now.astimezone(self.tz).month
            return Customer.birth_month == month
        if kind == "sleeping":
            return sleeping(now)
        raise ValueError(f"unknown condition {kind!r}")

    def where(self, conditions: list[Condition], now: datetime) -> ColumnElement[bool]:
        return and_(reachable(), *(self.condition(c, now) for c in conditions))

