"""What each automatic message and broadcast brought, against its control group
(`/stats campaigns`): per campaign and arm, the customers assigned in the period, how many were
sent it, used its coupon, came back (bought within `[campaigns] window_days` of the assignment)
and what they spent then (the unit is the assignment per local day: a customer assigned on two
days counts twice, once a day at most); the lift (came back: the campaign's arms minus the holdout) and the
variants' difference (b minus a), each with a 95 % confidence interval.

The intervals are Newcombe's hybrid score intervals for a difference of two independent
proportions (R. G. Newcombe, "Interval estimation for the difference between independent
proportions: comparison of eleven methods", Statistics in Medicine 17 (1998) 873-890, method
10), built from each share's Wilson score interval (E. B. Wilson, JASA 22 (1927) 209-212). Unlike
the textbook Wald interval (p ± 1.96·SE) they stay inside [-1, 1] and keep their coverage with
small groups and shares near 0 or 1 (a holdout of 30 customers, a campaign nobody answered).
Plain `math`: two square roots per interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.business import Campaigns
from bot.clock import Clock
from bot.db.campaign_results import WELCOME, ArmRow, Day
from bot.db.repositories import Database, Repos
from bot.features import Features
from bot.services.campaigns import CAMPAIGNS, HOLDOUT, A, B
from bot.services.stats import Period, parse_period
from bot.services.stats_figures import ArmOutcome, CampaignResult, Interval

Z95 = 1.959963984540054  # the normal distribution's 97.5th percentile
ARM_ORDER = {A: 0, B: 1, HOLDOUT: 2}
ORDER = (WELCOME, *CAMPAIGNS)  # the automatic messages as the report lists them, then broadcasts
CLOSE_PER_RUN = 30  # days closed per planner run: one run stays short, a backlog goes oldest first
DAYS_PER_STATEMENT = 31  # days counted live in one statement (one CASE branch a day)


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for one share (trials > 0)."""
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> Interval | None:
    """p1 - p2 (p1 = x1/n1, p2 = x2/n2) with Newcombe's hybrid score interval; None when either
    group is empty."""
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return Interval(
        difference=d,
        low=d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        high=d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def result_of(campaign: str, arms: list[ArmOutcome]) -> CampaignResult:
    """One campaign's arms, with its lift over the holdout and variant b against a."""
    arms = sorted(arms, key=lambda arm: ARM_ORDER.get(arm.arm, 9))
    by_arm = {arm.arm: arm for arm in arms}
    treated = [arm for arm in arms if arm.arm != HOLDOUT]
    holdout = by_arm.get(HOLDOUT)
    lift = None
    if holdout is not None and treated:
        lift = newcombe(
            sum(arm.came_back for arm in treated),
            sum(arm.customers for arm in treated),
            holdout.came_back,
            holdout.customers,
        )
    variants = None
    if A in by_arm and B in by_arm:
        a, b = by_arm[A], by_arm[B]
        variants = newcombe(b.came_back, b.customers, a.came_back, a.customers)
    return CampaignResult(campaign=campaign, arms=tuple(arms), lift=lift, variants=variants)


def summed(rows: Iterable[ArmRow]) -> list[ArmRow]:
    """Rows of several days (closed and live) as one per campaign and arm."""
    totals: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        total = totals.setdefault((row.campaign, row.arm), [0, 0, 0, 0, 0])
        for index, value in enumerate(
            (row.customers, row.sent, row.redeemed, row.came_back, row.revenue_minor)
        ):
            total[index] += value
    return [
        ArmRow(campaign, arm, *numbers)  # type: ignore[arg-type]
        for (campaign, arm), numbers in sorted(totals.items())
    ]


def results_of(rows: list[ArmRow]) -> list[CampaignResult]:
    """The repository's rows as results: the automatic campaigns in a fixed order, then the
    broadcasts by id (rows of several days summed first)."""
    grouped: dict[str, list[ArmOutcome]] = {}
    for row in summed(rows):
        grouped.setdefault(row.campaign, []).append(
            ArmOutcome(
                arm=row.arm,
                customers=row.customers,
                sent=row.sent,
                redeemed=row.redeemed,
                came_back=row.came_back,
                revenue_minor=row.revenue_minor,
            )
        )
    return [result_of(campaign, arms) for campaign, arms in sorted(grouped.items(), key=_order)]


def _order(item: tuple[str, list[ArmOutcome]]) -> tuple[int, int, str]:
    campaign = item[0]
    if campaign in ORDER:
        return 0, ORDER.index(campaign), campaign
    _, _, number = campaign.partition(":")
    return 1, int(number) if number.isdigit() else 0, campaign


def winner_of(result: CampaignResult) -> str | None:
    """The variant significantly better than the other (its interval excludes zero), if any."""
    if result.variants is None or not result.variants.significant:
        return None
    return B if result.variants.difference > 0 else A


class CampaignResultsService:
    def __init__(self, db: Database, clock: Clock, rules: Campaigns, tz: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.rules = rules
        self.tz = tz

    @property
    def window_days(self) -> int:
        return self.rules.window_days

    def period(self, text: str | None) -> Period | None:
        """As `/stats` reads one (the last 3 months by default)."""
        return parse_period(text, self.clock.now().astimezone(self.tz).date())

    async def results(self, period: Period) -> list[CampaignResult]:
        """Every campaign with customers assigned in the period: the closed days' counts summed,
        the days after them counted live (the last `window_days`, or a backlog not closed yet)."""
        start, end = period.bounds(self.tz)
        return await self.between(start, end)

    async def between(self, start: datetime, end: datetime) -> list[CampaignResult]:
        """The same for [start, end) (the digest's week, the charts): whole local days already
        closed from `campaign_days`, the rest (a partial first or last day included) live."""
        async with self.db.reading() as repos:
            through = await repos.campaign_days.closed_through()
            first = start.astimezone(self.tz).date()
            if self._start_of(first) < start:
                first += timedelta(days=1)
            last = min(end.astimezone(self.tz).date() - timedelta(days=1), through or date.min)
            if through is None or first > last:
                rows = await self._live(repos, start, end)
            else:
                rows = await repos.campaign_days.totals(first, last)
                rows += await self._live(repos, start, self._start_of(first))
                rows += await self._live(repos, self._start_of(last + timedelta(days=1)), end)
        return results_of(rows)

    async def live(self, start: datetime, end: datetime) -> list[CampaignResult]:
        """The same counted from the outbox alone (what the closed days must add up to)."""
        async with self.db.reading() as repos:
            return results_of(await self._live(repos, start, end))

    async def close_days(self) -> int:
        """The planner's step: the oldest days not closed yet whose window has fully passed (at
        most CLOSE_PER_RUN a run) counted by the live statement and kept in `campaign_days`;
        recounting a day replaces it. Counted in a read snapshot, written in a short
        transaction (a write transaction on SQLite holds off every other writer, a staff sale
        too, for as long as it lasts); skipped until the next run if meanwhile the closed days
        changed or a purchase came in within the counted days' windows (an import of old
        visits under way). How many days were closed."""
        last = self.last_closable_day()
        async with self.db.reading() as repos:
            through = await repos.campaign_days.closed_through()
            if through is not None:
                first = through + timedelta(days=1)
            else:
                earliest = await repos.campaign_days.earliest()
                if earliest is None:
                    return 0
                first = earliest.astimezone(self.tz).date()
            if first > last:
                return 0
            count = min(CLOSE_PER_RUN, (last - first).days + 1)
            days = [self._day(first + timedelta(days=n)) for n in range(count)]
            seen = await repos.stats.last_purchase_id()
            rows = await self._counted(repos, days)
        windows_end = days[-1].end + timedelta(days=self.rules.window_days, seconds=1)
        async with self.db.transaction() as repos:
            if await repos.campaign_days.closed_through() != through:
                return 0
            bought = await repos.campaign_days.first_bought_after(seen)
            if bought is not None and bought <= windows_end:
                return 0
            await repos.campaign_days.replace([day.day for day in days], rows)
        return count

    def last_closable_day(self) -> date:
        """The last local day whose window (its end plus `window_days`) has fully passed."""
        passed = self.clock.now() - timedelta(days=self.rules.window_days)
        day = passed.astimezone(self.tz).date()
        return day if self._start_of(day + timedelta(days=1)) <= passed else day - timedelta(days=1)

    def _start_of(self, day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=self.tz)

    def _day(self, day: date) -> Day:
        return Day(day, self._start_of(day), self._start_of(day + timedelta(days=1)))

    def _days(self, start: datetime, end: datetime) -> list[Day]:
        """[start, end) cut at local midnights (the first and last may be parts of a day)."""
        days: list[Day] = []
        at = start
        while at < end:
            day = at.astimezone(self.tz).date()
            following = min(end, self._start_of(day + timedelta(days=1)))
            days.append(Day(day, at, following))
            at = following
        return days

    async def _live(self, repos: Repos, start: datetime, end: datetime) -> list[ArmRow]:
        days = self._days(start, end)
        rows: list[ArmRow] = []
        for first in range(0, len(days), DAYS_PER_STATEMENT):
            rows += await self._counted(repos, days[first : first + DAYS_PER_STATEMENT])
        return rows

    async def _counted(self, repos: Repos, days: list[Day]) -> list[ArmRow]:
        """Per day, campaign and arm: the one set of rules both the report and the closing use."""
        window = self.rules.window_days
        welcome = await repos.campaign_results.welcome(days, window)
        return welcome + await repos.campaign_results.outcomes(days, window)

    def register(self, features: Features) -> None:
        """Closed days are counted with the outbox's planners (now, then every few minutes)."""
        features.plan("campaign_days", self.close_days)

    def has_variants(self, campaign: str) -> bool:
        return self.rules.rule(campaign).b is not None

    async def winners(self) -> dict[str, str]:
        async with self.db.reading() as repos:
            return await repos.campaign_results.winners()

    def can_choose(self, result: CampaignResult, winners: dict[str, str]) -> str | None:
        """The variant the owner may make the default of this result's campaign: the one
        significantly better, while none is chosen yet (a broadcast is a one-off: none)."""
        winner = winner_of(result)
        if winner is None or result.campaign not in CAMPAIGNS or result.campaign in winners:
            return None
        return winner if self.has_variants(result.campaign) else None

    async def make_default(self, campaign: str, arm: str, by: str, period: Period) -> bool:
        """The owner's "make B the default": from now on everyone but the holdout gets `arm`.
        Checked again against the period's figures the button was under, so a forged or stale
        tap (no two variants, that arm not significantly better, a winner already chosen)
        changes nothing and says False."""
        if arm not in (A, B) or campaign not in CAMPAIGNS or not self.has_variants(campaign):
            return False
        result = next((r for r in await self.results(period) if r.campaign == campaign), None)
        if result is None or winner_of(result) != arm:
            return False
        async with self.db.transaction() as repos:
            return await repos.campaign_results.choose_winner(
                campaign, arm, by[:128], self.clock.now()
            )
