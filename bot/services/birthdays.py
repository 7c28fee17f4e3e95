"""Birthdays as people type them: 14.03, 14.03.1990, 14/03/1990, 14 марта, 1990-03-14."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

MAX_AGE_YEARS = 120

_MONTHS = {
    # Russian: nominative, genitive, short forms; English: full and short.
    "январ": 1,
    "янв": 1,
    "феврал": 2,
    "фев": 2,
    "март": 3,
    "мар": 3,
    "апрел": 4,
    "апр": 4,
    "ма": 5,
    "июн": 6,
    "июл": 7,
    "август": 8,
    "авг": 8,
    "сентябр": 9,
    "сен": 9,
    "сент": 9,
    "октябр": 10,
    "окт": 10,
    "ноябр": 11,
    "ноя": 11,
    "декабр": 12,
    "дек": 12,
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "april": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sep": 9,
    "sept": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}
_RU_ENDINGS = ("я", "а", "ь", "й")

_NUMERIC = re.compile(r"^(\d{1,2})\s*[./\-\s]\s*(\d{1,2})(?:\s*[./\-\s]\s*(\d{2}|\d{4}))?$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_DAY_WORD = re.compile(r"^(\d{1,2})\s+([a-zа-яё.]+)(?:\s+(\d{4}))?(?:\s*(?:г\.?|года?))?$")
_WORD_DAY = re.compile(r"^([a-z.]+)\s+(\d{1,2})(?:,?\s+(\d{4}))?$")


class BirthdayError(StrEnum):
    """Why a text is not a birthday; each has its own polite answer."""

    FORMAT = "format"
    NO_SUCH_DATE = "no_such_date"
    FUTURE = "future"
    TOO_OLD = "too_old"


class InvalidBirthday(ValueError):
    def __init__(self, reason: BirthdayError) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class Birthday:
    day: int
    month: int
    year: int | None = None

    def in_year(self, year: int) -> date:
        """The day to greet in `year`: 29 February falls on 28 February in common years."""
        if self.month == 2 and self.day == 29 and not calendar.isleap(year):
            return date(year, 2, 28)
        return date(year, self.month, self.day)


def _month(word: str) -> int | None:
    word = word.strip(".").replace("ё", "е")
    if len(word) >= 3 and word in _MONTHS:
        return _MONTHS[word]
    for ending in _RU_ENDINGS:
        if ending and word.endswith(ending) and word[: -len(ending)] in _MONTHS:
            return _MONTHS[word[: -len(ending)]]
    return None


def parse_birthday(text: str, today: date) -> Birthday:
    """Parse a birthday typed by a customer, as of `today`; raise InvalidBirthday."""
    value = " ".join(text.strip().lower().split())
    day = month = None
    year: int | None = None
    if match := _ISO.match(value):
        year, month, day = (int(g) for g in match.groups())
    elif match := _NUMERIC.match(value):
        day, month = int(match[1]), int(match[2])
        if match[3]:
            year = int(match[3])
            if len(match[3]) == 2:  # "14.03.90": the most recent such year that has passed
                year += 2000 if 2000 + year <= today.year else 1900
    elif match := _DAY_WORD.match(value):
        day, month = int(match[1]), _month(match[2])
        year = int(match[3]) if match[3] else None
    elif match := _WORD_DAY.match(value):
        month, day = _month(match[1]), int(match[2])
        year = int(match[3]) if match[3] else None
    if day is None or month is None:
        raise InvalidBirthday(BirthdayError.FORMAT)
    if not 1 <= month <= 12:
        raise InvalidBirthday(BirthdayError.NO_SUCH_DATE)
    if (
        year is not None and year < today.year - MAX_AGE_YEARS - 1
    ):  # 0000 too: no such year in a date
        raise InvalidBirthday(BirthdayError.TOO_OLD)
    leap_probe = year if year is not None else 2000  # without a year, 29.02 is a real birthday
    if not 1 <= day <= calendar.monthrange(leap_probe, month)[1]:
        raise InvalidBirthday(BirthdayError.NO_SUCH_DATE)
    if year is not None:
        born = date(year, month, day)
        if born > today:
            raise InvalidBirthday(BirthdayError.FUTURE)
        age = today.year - year - ((today.month, today.day) < (month, day))
        if age > MAX_AGE_YEARS:
            raise InvalidBirthday(BirthdayError.TOO_OLD)
    return Birthday(day=day, month=month, year=year)
