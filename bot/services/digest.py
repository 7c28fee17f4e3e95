"""The weekly digest (`[stats] weekly_digest`): every Monday from `digest_hour`, the admin chat
gets last week's numbers, the week before beside them, and one chart.

- the repeat share of last week's sales (Monday to Sunday) and of the week before, by count;
- customers new last week, and who woke up (asleep when the week began, bought in it);
- satisfaction: the average score of the surveys answered last week (all masters);
- the campaign that brought most back against its holdout and the one that brought least (when
  campaigns keep holdouts);
- one chart: the repeat share by month over the last year (else the campaigns', else the
  funnel's, whichever has numbers).

Nothing sends a proactive message but the outbox sender: the planner writes one row a week
(`digest:<ISO year>-W<week>`, the admin chat, kind service) and the sender's deliverer for it
(`handlers.stats_digest`) gathers the numbers and draws the chart when it sends, in a worker
thread. The row keeps only the week (its Monday), so a retry or a restart draws the same numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business
from bot.clock import Clock
from bot.db.repositories import Database
from bot.features import Features
from bot.outbox import SERVICE
from bot.rendering import Renderer
from bot.services.charts import Chart, FigureSources, chart_texts, draw
from bot.services.stats import Period, StatsReport, StatsService, months_back
from bot.services.stats_figures import CampaignResult

log = logging.getLogger("carebot.digest")

TEMPLATE = "stats_digest"
KEY = "digest:"  # digest:2026-W47, the week reported
CATCH_UP = timedelta(days=2)  # a bot down on Monday still sends it until Wednesday's start
CHART_MONTHS = 6
DIGEST_CHARTS = ("repeat_share", "campaigns", "funnel")  # the first that has numbers is drawn

# Sources the breakdowns' and the campaigns' services give (None: that line is left out).
Masters = Callable[[Period], Awaitable[Sequence[Any]]]  # StatsBreakdownService.masters
Campaigns = Callable[[Period], Awaitable[Sequence[CampaignResult]]]


@dataclass(frozen=True)
class Digest:
    week: Period  # Monday to Sunday, the week reported
    report: StatsReport  # that week, and the week before
    answers: int  # satisfaction scores given that week
    csat: float | None  # their average, 1–5
    woke_up: int | None
    best: CampaignResult | None
    worst: CampaignResult | None

    @property
    def iso_week(self) -> str:
        year, week, _ = self.week.first_day.isocalendar()
        return f"{year}-W{week:02d}"


def week_before(day: date) -> Period:
    """The Monday-to-Sunday week before the one `day` is in."""
    monday = day - timedelta(days=day.weekday()) - timedelta(days=7)
    return Period(monday, monday + timedelta(days=6))


def iso_key(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{KEY}{year}-W{week:02d}"


def best_and_worst(
    results: Sequence[CampaignResult],
) -> tuple[CampaignResult | None, CampaignResult | None]:
    """The campaigns with the highest and the lowest lift against their holdout (one campaign:
    it is the best, and no worst)."""
    measured = sorted((r for r in results if r.lift is not None), key=_lift)
    if not measured:
        return None, None
    return measured[-1], (measured[0] if len(measured) > 1 else None)


def _lift(result: CampaignResult) -> float:
    return result.lift.difference if result.lift is not None else 0.0


class StatsDigest:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        business: Business,
        tz: ZoneInfo,
        render: Renderer,
        admin_chat_id: int | None,
        *,
        stats: StatsService,
        sources: FigureSources,
        masters: Masters | None = None,
        campaigns: Campaigns | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = business.stats
        self.currency = business.currency
        self.lang = business.staff_language
        self.tz = tz
        self.render = render
        self.admin_chat_id = admin_chat_id
        self.stats = stats
        self.sources = sources
        self.masters = masters
        self.campaigns = campaigns

    def register(self, features: Features) -> None:
        features.plan("stats_digest", self.plan)

    async def plan(self) -> int:
        """Planner: last week's digest, once, from Monday's `digest_hour` (local time) on; a
        bot that was down then catches up until Wednesday."""
        if not self.settings.weekly_digest or not self.admin_chat_id:
            return 0
        now = self.clock.now()
        local = now.astimezone(self.tz)
        this_monday = local.date() - timedelta(days=local.weekday())
        due = datetime.combine(this_monday, time(self.settings.digest_hour), tzinfo=self.tz)
        if not due <= now < due + CATCH_UP:
            return 0
        week = week_before(local.date())
        async with self.db.transaction() as repos:
            queued = await repos.outbox.queue(
                key=iso_key(week.first_day),
                kind=SERVICE,
                template=TEMPLATE,
                chat_id=self.admin_chat_id,
                data={"week": week.first_day.isoformat()},
                not_before=now,
                not_after=due + CATCH_UP,
                now=now,
            )
        return int(queued)

    async def digest(self, monday: date) -> Digest:
        """The numbers of the week that starts on `monday`."""
        week = Period(monday, monday + timedelta(days=6))
        report = await self.stats.report(week)
        answers, scores = 0, 0
        if self.masters is not None:
            for master in await self.masters(week):
                answers += master.answers
                scores += master.score_sum
        best, worst = best_and_worst(await self.campaigns(week)) if self.campaigns else (None, None)
        return Digest(
            week=week,
            report=report,
            answers=answers,
            csat=round(scores / answers, 1) if answers else None,
            woke_up=report.customers.woke if report.customers is not None else None,
            best=best,
            worst=worst,
        )

    async def chart(self, digest: Digest) -> Chart | None:
        """One chart: the repeat share by month up to the week's Sunday (a year of months, as
        the summary's service gives them), or else the week's campaigns, or the half-year's
        funnel."""
        last = digest.week.last_day
        half_year = Period(months_back(last, CHART_MONTHS) + timedelta(days=1), last)
        texts = chart_texts(self.render, self.lang)
        for name in DIGEST_CHARTS:
            period = half_year if name == "funnel" else digest.week
            figures = await self.sources.gather(period, only=[name])
            charts = await draw(figures, texts, only=[name])
            if charts:
                return charts[0]
        return None

    async def message(self, data: dict[str, Any]) -> tuple[str, Chart | None]:
        """The row's text (Telegram HTML, short enough for a caption) and its chart."""
        digest = await self.digest(date.fromisoformat(str(data["week"])))
        text = str(self.render.text(self.lang, TEMPLATE, digest=digest, currency=self.currency))
        try:
            chart = await self.chart(digest)
        except Exception:  # the numbers still go, without their picture
            log.exception("the digest's chart could not be drawn week=%s", data["week"])
            chart = None
        return text, chart
