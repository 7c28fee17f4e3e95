"""Free appointment slots: a master's working hours, minus breaks, days off and bookings.

Pure computation over what the caller loaded (the cells held by bookings, the days off), so
one query per search feeds any number of masters and days. Times are on a grid of
`grid_minutes` counted from midnight in the business's time zone.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.business import WEEKDAYS, Business, Master, Service
from bot.clock import local_day


@dataclass(frozen=True, order=True)
class Slot:
    starts_at: datetime  # aware, UTC
    master_id: str


def cells(starts_at: datetime, duration_minutes: int, grid_minutes: int) -> list[datetime]:
    """The grid cells a visit starting at `starts_at` holds (a 45-minute visit holds two 30s)."""
    count = max(1, math.ceil(duration_minutes / grid_minutes))
    start = starts_at.astimezone(UTC)
    return [start + timedelta(minutes=grid_minutes * i) for i in range(count)]


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


class SlotFinder:
    def __init__(self, business: Business, tz: ZoneInfo) -> None:
        self.business = business
        self.tz = tz
        self.grid = business.booking.grid_minutes

    def local_day(self, moment: datetime) -> date:
        return local_day(moment, self.tz)

    def at(self, day: date, minute_of_day: int) -> datetime:
        # Wall-clock minutes, so a day with a clock change still lands on the local grid.
        local = datetime.combine(day, time(0)) + timedelta(minutes=minute_of_day)
        return local.replace(tzinfo=self.tz).astimezone(UTC)

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        return self.at(day, 0), self.at(day + timedelta(days=1), 0)

    def earliest(self, now: datetime) -> datetime:
        return now + timedelta(minutes=self.business.booking.min_notice_minutes)

    def starts(self, master: Master, service: Service, day: date) -> list[datetime]:
        """Every start on the grid that fits the master's hours and breaks on that day."""
        hours = master.hours.get(WEEKDAYS[day.weekday()])
        if hours is None:
            return []
        begin, end = _minutes(hours.start), _minutes(hours.end)
        breaks = [(_minutes(b.start), _minutes(b.end)) for b in master.breaks]
        first = math.ceil(begin / self.grid) * self.grid
        result = []
        for start in range(first, end - service.duration_minutes + 1, self.grid):
            finish = start + service.duration_minutes
            if any(start < b_end and b_start < finish for b_start, b_end in breaks):
                continue
            result.append(self.at(day, start))
        return result

    def is_start(self, master: Master, service: Service, starts_at: datetime) -> bool:
        """A slot someone asks for (a button, maybe forged or stale) is one we would offer."""
        return starts_at in self.starts(master, service, self.local_day(starts_at))

    def free(
        self,
        master: Master,
        service: Service,
        day: date,
        *,
        held: Collection[datetime],
        days_off: Collection[date],
        now: datetime,
    ) -> list[Slot]:
        if day in days_off:
            return []
        earliest = self.earliest(now)
        return [
            Slot(start, master.id)
            for start in self.starts(master, service, day)
            if start >= earliest
            and not any(c in held for c in cells(start, service.duration_minutes, self.grid))
        ]

    def search(
        self,
        service: Service,
        masters: Iterable[Master],
        days: Iterable[date],
        *,
        held: Mapping[str, Collection[datetime]],
        days_off: Mapping[str, Collection[date]],
        now: datetime,
    ) -> list[Slot]:
        """All free slots of these masters on these days, by time (then by master's order)."""
        found: list[Slot] = []
        masters = list(masters)
        for day in days:
            for master in masters:
                found.extend(
                    self.free(
                        master,
                        service,
                        day,
                        held=held.get(master.id, ()),
                        days_off=days_off.get(master.id, ()),
                        now=now,
                    )
                )
        order = {m.id: i for i, m in enumerate(masters)}
        found.sort(key=lambda s: (s.starts_at, order[s.master_id]))
        return found


def spread(
    slots: list[Slot], limit: int, per_day: int = 2, tz: ZoneInfo | None = None
) -> list[Slot]:
    """Pick up to `limit` slots, at most `per_day` a day, spread over the day (a morning and
    an evening rather than 10:00 and 10:30): what a customer choosing a time wants to see."""
    by_day: dict[date, list[Slot]] = {}
    for slot in slots:
        by_day.setdefault(local_day(slot.starts_at, tz or UTC), []).append(slot)
    picked: list[Slot] = []
    for day_slots in by_day.values():
        if len(day_slots) <= per_day:
            chosen = day_slots
        else:
            step = (len(day_slots) - 1) / (per_day - 1) if per_day > 1 else 0
            chosen = [day_slots[round(i * step)] for i in range(per_day)]
        picked.extend(chosen)
        if len(picked) >= limit:
            break
    return picked[:limit]
