"""Input out of range or odd, without Telegram: names with joiners, year 0, days centuries away,
forged slot times, a sale of a service the master does not do."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.business import Business
from bot.services.birthdays import BirthdayError, InvalidBirthday, parse_birthday
from bot.services.customers import clean_name
from bot.services.days import parse_day, parse_moment
from bot.services.staff import Staff, StaffService, UsageError, parse_sale
from handlers.callbacks import from_minutes, to_minutes

TODAY = date(2026, 11, 23)
MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("مهسا\u200cسادات", "مهسا\u200cسادات"),  # Persian: a ZWNJ inside the name
        ("\u200cمهسا", "مهسا"),  # a joiner at a word's edge joins nothing: dropped
        ("Анна 👩\u200d👩\u200d👧", "Анна 👩\u200d👩\u200d👧"),  # an emoji family: ZWJ
        ("Zoë ❤\ufe0f", "Zoë ❤\ufe0f"),  # a variation selector
        ("क्\u200dष", "क्\u200dष"),  # Devanagari: ZWJ shapes the conjunct
        ("  Анна \u200d ", "Анна"),
    ],
)
def test_names_with_joiners(typed: str, kept: str) -> None:
    assert clean_name(typed) == kept


@pytest.mark.parametrize(
    "typed",
    [
        "Анна\u202eлам",
        "\u202aАнна",
        "Анна\u202c",
        "Анна\u2066x\u2069",
        "\u2067Анна",
        "\u2068Анна",  # bidi
        "Анна\u200e",
        "\u200fАнна",  # direction marks
        "Ан\u200bна",
        "Ан\u00adна",
        "\u2060Анна",
        "\ufeffАнна",
        "Анна\U000e0041",  # invisible
        "a\x00b",
        "a\x1bb",
        "\u200c",
        "\u200d\u200c",
    ],
)
def test_names_with_spoofing_or_control_characters_are_refused(typed: str) -> None:
    assert clean_name(typed) is None


@pytest.mark.parametrize(
    "typed",
    [
        "14.03.0000",
        "0000-03-14",
        "14 марта 0000",
        "march 14, 0000",
        "29.02.0000",
        "31.02.0000",
        "14.03.0001",
    ],
)
def test_a_birthday_in_year_zero_is_a_typo(typed: str) -> None:
    with pytest.raises(InvalidBirthday) as caught:
        parse_birthday(typed, TODAY)
    assert caught.value.reason is BirthdayError.TOO_OLD


@pytest.mark.parametrize(
    "typed",
    [
        "31.12.9999",
        "9999-12-31",
        "31.12.2099",
        "24.11.2028",
        "01.01.0001",
        "0001-01-01",
        "22.11.2026",
    ],
)
def test_days_ahead_are_within_two_years(typed: str) -> None:
    assert parse_day(typed, TODAY) is None


def test_days_within_the_window() -> None:
    assert parse_day("23.11.2028", TODAY) == date(2028, 11, 23)
    assert parse_day("31.12", TODAY) == date(2026, 12, 31)
    assert parse_day("22.11", TODAY) == date(2027, 11, 22)
    assert parse_day("24.11.1926", TODAY, past=True) == date(1926, 11, 24)
    assert parse_day("22.11.1926", TODAY, past=True) is None
    assert parse_day("01.01.0001", TODAY, past=True) is None
    assert parse_day("28.02.2030", date(2028, 2, 29)) == date(2030, 2, 28)  # from a leap day


def test_moments_far_away_are_not_moments() -> None:
    assert parse_moment("31.12.9999 23:59", TODAY, MOSCOW) is None
    assert parse_moment("31.12.2099 10:00", TODAY, MOSCOW) is None
    assert parse_moment("25.12 10:00", TODAY, MOSCOW) == datetime(
        2026, 12, 25, 10, 0, tzinfo=MOSCOW
    )


@pytest.mark.parametrize(
    "minutes",
    [-1, -(10**14), 10**14, 2**63, -(2**63), to_minutes(datetime(3000, 1, 1, tzinfo=UTC))],
)
def test_a_slot_time_out_of_range_is_none(minutes: int) -> None:
    assert from_minutes(minutes) is None


def test_slot_times_round_trip() -> None:
    moment = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    assert from_minutes(to_minutes(moment)) == moment


def test_a_sale_command_naming_a_master_who_does_not_do_the_service(business: Business) -> None:
    with pytest.raises(UsageError) as caught:
        parse_sale("#1 2800 Педикюр Анна", business)
    assert caught.value.reason == "master_service"
    assert caught.value.details == {"value": "Анна", "service": "Педикюр", "masters": ["Ольга"]}
    assert parse_sale("#1 2800 Педикюр Ольга", business).master_id == "olga"
    assert parse_sale("#1 2000 Маникюр Анна", business).master_id == "anna"


async def test_every_sale_path_checks_the_master(staff: StaffService) -> None:
    with pytest.raises(UsageError) as caught:  # checked before the customer is even looked up
        await staff.record_sale(Staff(1, "Ольга"), 999, 280000, "pedicure", "anna")
    assert caught.value.reason == "master_service"
    async with staff.db.transaction() as repos:
        with pytest.raises(UsageError) as caught:  # a visit is recorded as it was booked
            await staff.record_sale_in(
                repos, Staff(1, "Ольга"), 999, 280000, "pedicure", "anna", as_booked=True
            )
    assert caught.value.reason == "not_found"
