"""The one source of time: services get a clock passed in, so tests can fix it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware, in UTC."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, moment: datetime) -> None:
        self.set(moment)

    def now(self) -> datetime:
        return self._moment

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._moment = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._moment += delta


def local_day(moment: datetime, tz: tzinfo) -> date:
    """The business's calendar day a moment falls on."""
    return moment.astimezone(tz).date()


def local_today(clock: Clock, tz: tzinfo) -> date:
    """Today in the business's time zone: the one way every service and planner asks."""
    return local_day(clock.now(), tz)


class ShiftedClock:
    """The wall clock moved forward by an offset that only grows (`carebot demo`'s clock): time
    goes on as it does, and `move_to` jumps ahead, so a week can pass in a click."""

    def __init__(self, start: datetime | None = None) -> None:
        """`start`: the first now (earlier or later than the wall clock's); from then on the
        clock only goes forward."""
        if start is not None and start.tzinfo is None:
            raise ValueError("ShiftedClock needs an aware datetime")
        self._offset = start - datetime.now(UTC) if start is not None else timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def move_to(self, moment: datetime) -> None:
        """Jump to `moment` (aware); a moment already past is refused with ValueError."""
        if moment.tzinfo is None:
            raise ValueError("ShiftedClock needs an aware datetime")
        step = moment - self.now()
        if step < timedelta(0):
            raise ValueError("the clock only moves forward")
        self._offset += step

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        self._offset += delta
