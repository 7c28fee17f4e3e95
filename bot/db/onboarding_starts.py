"""Newcomers' /start, counted per local day and deep-link source (`onboarding_starts`): the
onboarding funnel's first step. Counts only, nothing about a person (see the model)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import OnboardingStart


class OnboardingStartRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count(self, day: date, source: str) -> None:
        """One more start on this day from this source: one statement (INSERT … ON CONFLICT DO
        UPDATE), so concurrent starts add up without a read first."""
        postgres = self.session.get_bind().dialect.name == "postgresql"
        insert = (pg_insert if postgres else sqlite_insert)(OnboardingStart)
        statement = insert.values(day=day, source=source, count=1)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[OnboardingStart.day, OnboardingStart.source],
                set_={"count": OnboardingStart.count + 1},
            )
        )

    async def between(self, first_day: date, last_day: date) -> int:
        """The starts counted from `first_day` to `last_day`, both included, every source."""
        total = await self.session.scalar(
            select(func.coalesce(func.sum(OnboardingStart.count), 0)).where(
                OnboardingStart.day >= first_day, OnboardingStart.day <= last_day
            )
        )
        return int(total or 0)

    async def by_day(self) -> dict[tuple[date, str], int]:
        """Every count, by (day, source) (tests, and a later per-source view)."""
        rows = await self.session.execute(
            select(OnboardingStart.day, OnboardingStart.source, OnboardingStart.count)
        )
        return {(day, source): int(n) for day, source, n in rows}
