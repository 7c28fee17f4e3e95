"""Newcomers' /start, counted: the onboarding funnel's first step (`/stats funnel`'s "started").

Before the data-consent button nothing about a person may be stored (152-FZ), so a start is
counted anonymously: one more on the business's local day for its deep-link source, no user id,
nothing personal (erasure has nothing to reach here). The edge counts a person's first /start
only (not a second press before consenting).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.clock import Clock, local_today
from bot.db.repositories import LATER, Database, Repos


class OnboardingStarts:
    def __init__(self, db: Database, clock: Clock, tz: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz

    async def count(self, source: str | None) -> None:
        """One more start today from `source` (the `src_…` link's, as onboarding stores it; None
        for no link): one statement. Within an update it goes with the write of the update's
        conversation state (`LATER`), so a newcomer's /start still costs one write transaction,
        shared with the other updates' of that moment (a burst of newcomers is not one
        transaction each for SQLite's one writer); elsewhere, in a short transaction of its own."""
        day, key = local_today(self.clock, self.tz), source or ""

        async def write(repos: Repos) -> None:
            await repos.onboarding_starts.count(day, key)

        later = LATER.get()
        if later is None or not later(write):
            async with self.db.transaction() as repos:
                await write(repos)
