"""Phone normalisation and birthday parsing: the forms people really type."""

from __future__ import annotations

from datetime import date

import pytest

from bot.services.birthdays import Birthday, BirthdayError, InvalidBirthday, parse_birthday
from bot.services.phones import normalize_phone

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("79161234567", "+79161234567"),  # as Telegram hands over a contact
        ("+7 (916) 123-45-67", "+79161234567"),
        ("8 916 123 45 67", "+79161234567"),
        ("89161234567", "+79161234567"),
        ("+447911123456", "+447911123456"),
        ("447911123456", "+447911123456"),
        ("+380 67 123 4567", "+380671234567"),
    ],
)
def test_real_phones_are_stored_as_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize(
    "raw", ["", "12345", "hello", "+7 916 abc 45 67", "0000000000000", "+1 555", "9" * 40]
)
def test_non_phones_are_refused(raw: str) -> None:
    assert normalize_phone(raw) is None


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("14.03", Birthday(14, 3)),
        ("14.03.1990", Birthday(14, 3, 1990)),
        ("14/03/1990", Birthday(14, 3, 1990)),
        ("14-03-1990", Birthday(14, 3, 1990)),
        ("1990-03-14", Birthday(14, 3, 1990)),
        ("14 марта", Birthday(14, 3)),
        ("14 марта 1990", Birthday(14, 3, 1990)),
        ("14 марта 1990 г.", Birthday(14, 3, 1990)),
        ("1 января", Birthday(1, 1)),
        ("3 мая", Birthday(3, 5)),
        ("31 декабря", Birthday(31, 12)),
        ("  14   Марта ", Birthday(14, 3)),
        ("14 March", Birthday(14, 3)),
        ("March 14, 1990", Birthday(14, 3, 1990)),
        ("14.03.90", Birthday(14, 3, 1990)),
        ("14.03.05", Birthday(14, 3, 2005)),
        ("29.02", Birthday(29, 2)),
        ("29.02.2000", Birthday(29, 2, 2000)),
        ("23.11.1906", Birthday(23, 11, 1906)),  # exactly 120 today
    ],
)
def test_birthdays_people_type(typed: str, expected: Birthday) -> None:
    assert parse_birthday(typed, TODAY) == expected


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("31.02", BirthdayError.NO_SUCH_DATE),
        ("00.13", BirthdayError.NO_SUCH_DATE),
        ("32.01", BirthdayError.NO_SUCH_DATE),
        ("31 апреля", BirthdayError.NO_SUCH_DATE),
        ("29.02.1990", BirthdayError.NO_SUCH_DATE),
        ("24.11.2026", BirthdayError.FUTURE),
        ("14.03.2030", BirthdayError.FUTURE),
        ("23.11.1905", BirthdayError.TOO_OLD),  # 121 today
        ("14.03.1800", BirthdayError.TOO_OLD),
        ("привет", BirthdayError.FORMAT),
        ("14", BirthdayError.FORMAT),
        ("14 мартобря", BirthdayError.FORMAT),
        ("завтра", BirthdayError.FORMAT),
        ("", BirthdayError.FORMAT),
    ],
)
def test_wrong_birthdays_say_why(typed: str, reason: BirthdayError) -> None:
    with pytest.raises(InvalidBirthday) as caught:
        parse_birthday(typed, TODAY)
    assert caught.value.reason is reason


def test_leap_day_birthday_is_greeted_on_28_february_in_common_years() -> None:
    leap = Birthday(29, 2)
    assert leap.in_year(2027) == date(2027, 2, 28)
    assert leap.in_year(2028) == date(2028, 2, 29)
    assert Birthday(14, 3).in_year(2027) == date(2027, 3, 14)
