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
