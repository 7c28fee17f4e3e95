"""Newcomers' /start, counted: the onboarding funnel's first step (`/stats funnel`'s "started").

Before the data-consent button nothing about a person may be stored (152-FZ), so a start is
counted anonymously: one more on the business's local day for its deep-link source, no user id,
nothing personal (erasure has nothing to reach here). The edge counts a person's first /start
only (not a second press before consenting).
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.db.repositories import Database


class OnboardingStarts:
    def __init__(self, db: Database, clock: Clock, tz: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz

    def today(self) -> date:
        return self.clock.now().astimezone(self.tz).date()

    async def count(self, source: str | None) -> None:
        """One more start today from `source` (the `src_…` link's, as onboarding stores it; None
        for no link). One statement in its own short transaction; a conversation state the
        update set before it is written by the same transaction (`ALONG`), so a newcomer's /start
        still costs one write."""
        async with self.db.transaction() as repos:
            await repos.onboarding_starts.count(self.today(), source or "")
