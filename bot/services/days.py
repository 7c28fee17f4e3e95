"""Days and times as staff and masters type them (a day off, a broadcast's schedule, a coupon's last day)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo

_DAY = re.compile(r"^(\d{1,2})[./](\d{1,2})(?:[./](\d{2}|\d{4}))?$")
_ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{1,2})[:.](\d{2})$")
# Further from today than this is a typo (31.12.9999), not a plan: a day off, a coupon's last
# day or a broadcast's start lies within two years; a "visited before" date within a century.
YEARS_AHEAD, YEARS_BACK = 2, 100


def parse_day(text: str, today: date, *, past: bool = False) -> date | None:
    """A day as people type it: 25.11, 25.11.2026, 2026-11-25, "завтра"/"tomorrow". Without a
    year: the next such day from today (with `past`, the last one up to today). None when it is
    not a date, is on the wrong side of today, or further from it than YEARS_AHEAD (YEARS_BACK)."""
    value = text.strip().lower()
    if value in ("сегодня", "today"):
        return today
    if value in ("завтра", "tomorrow"):
        return today + timedelta(days=1)
    try:
        if match := _ISO_DAY.match(value):
            day = date(int(match[1]), int(match[2]), int(match[3]))
        elif match := _DAY.match(value):
            year = (
                int(match[3]) + (2000 if match[3] and len(match[3]) == 2 else 0)
                if match[3]
                else today.year
            )
            day = date(year, int(match[2]), int(match[1]))
            if not match[3] and not past and day < today:
                day = date(year + 1, day.month, day.day)
            elif not match[3] and past and day > today:
                day = date(year - 1, day.month, day.day)
        else:
            return None
    except ValueError:
        return None
    if past:
        return day if _years_later(today, -YEARS_BACK) <= day <= today else None
    return day if today <= day <= _years_later(today, YEARS_AHEAD) else None


def _years_later(today: date, years: int) -> date:
    """The same day `years` later (earlier, when negative); 29 February becomes the 28th."""
    return today.replace(
        year=today.year + years, day=min(today.day, 28) if today.month == 2 else today.day
    )


def parse_moment(text: str, today: date, tz: tzinfo) -> datetime | None:
    """A day and a time, "25.12 10:00" or "завтра 9:30", in the business's time zone."""
    parts = text.strip().split()
    if len(parts) != 2 or not (match := _TIME.match(parts[1])):
        return None
    day = parse_day(parts[0], today)
    hours, minutes = int(match[1]), int(match[2])
    if day is None or hours > 23 or minutes > 59:
        return None
    return datetime.combine(day, time(hours, minutes)).replace(tzinfo=tz)
