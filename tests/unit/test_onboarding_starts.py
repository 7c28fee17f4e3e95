"""Newcomers' /start counted per local day and deep-link source (`onboarding_starts`): counts
only, one upsert per start, the business's day (Moscow here), not UTC's."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from bot.clock import FixedClock
from bot.db.repositories import Database
from bot.services.onboarding_starts import OnboardingStarts

MOSCOW = ZoneInfo("Europe/Moscow")


async def counted(db: Database) -> dict[tuple[date, str], int]:
    async with db.reading() as repos:
        return await repos.onboarding_starts.by_day()


async def test_starts_add_up_per_day_and_source(db: Database) -> None:
    clock = FixedClock(datetime(2026, 11, 23, 9, tzinfo=UTC))  # 12:00 in Moscow
    starts = OnboardingStarts(db, clock, MOSCOW)
    await starts.count("insta")
    await starts.count("insta")  # the same day and source: the same row, one more
    await starts.count("vk")
    await starts.count(None)  # no deep link: source ""
    day = date(2026, 11, 23)
    assert await counted(db) == {(day, "insta"): 2, (day, "vk"): 1, (day, ""): 1}


async def test_the_day_is_the_business_local_day(db: Database) -> None:
    """20:59 UTC is 23:59 in Moscow (still the 23rd); 21:00 UTC is midnight, the 24th."""
    clock = FixedClock(datetime(2026, 11, 23, 20, 59, tzinfo=UTC))
    starts = OnboardingStarts(db, clock, MOSCOW)
    await starts.count("insta")
    clock.set(datetime(2026, 11, 23, 21, 0, tzinfo=UTC))
    await starts.count("insta")
    await starts.count("insta")
    assert await counted(db) == {
        (date(2026, 11, 23), "insta"): 1,
        (date(2026, 11, 24), "insta"): 2,
    }
    async with db.reading() as repos:
        assert await repos.onboarding_starts.between(date(2026, 11, 24), date(2026, 11, 30)) == 2
        assert await repos.onboarding_starts.between(date(2026, 11, 1), date(2026, 11, 24)) == 3
        assert await repos.onboarding_starts.between(date(2026, 11, 1), date(2026, 11, 22)) == 0
