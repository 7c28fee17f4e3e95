"""Customer segments for broadcasts: conditions that combine with AND, turned into SQL
(`bot.db.queries`).

A segment is stored as plain JSON on the broadcast (`[{"kind": "service", "value": "manicure"},
…]`), so what the owner confirmed is exactly what is queued, even after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business
from bot.clock import local_day
from bot.db import queries

KINDS = (
    "all",
    "new",
    "regular",
    "service",
    "master",
    "visited_before",
    "visited_after",
    "birthday_month",
    "sleeping",
)


@dataclass(frozen=True)
class Condition:
    kind: str
    value: str = ""

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Condition:
        return cls(str(raw["kind"]), str(raw.get("value") or ""))

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value} if self.value else {"kind": self.kind}


class Segments:
    def __init__(self, business: Business, tz: ZoneInfo) -> None:
        self.business = business
        self.tz = tz

    def _day_start(self, text: str) -> datetime:
        return datetime.combine(date.fromisoformat(text), time(0), tzinfo=self.tz)

    def condition(self, condition: Condition, now: datetime) -> Any:
        """One condition as SQL over customers; ValueError for one we do not know."""
        kind, value = condition.kind, condition.value
        if kind == "all":
            return queries.everyone()
        if kind == "new":
            return queries.visits_exactly(1)
        if kind == "regular":
            return queries.visits_at_least(self.business.broadcasts.regular_visits)
        if kind == "service":
            if self.business.service(value) is None:
                raise ValueError(f"unknown service {value!r}")
            return queries.bought(service_id=value)
        if kind == "master":
            if self.business.master(value) is None:
                raise ValueError(f"unknown master {value!r}")
            return queries.bought(master_id=value)
        if kind == "visited_before":
            return queries.last_visit_before(self._day_start(value))
        if kind == "visited_after":
            return queries.last_visit_since(self._day_start(value))
        if kind == "birthday_month":
            return queries.born_in_month(local_day(now, self.tz).month)
        if kind == "sleeping":
            return queries.sleeping(now)
        raise ValueError(f"unknown condition {kind!r}")

    def where(self, conditions: list[Condition], now: datetime) -> Any:
        return queries.all_of(
            queries.may_get_broadcasts(), *(self.condition(c, now) for c in conditions)
        )
