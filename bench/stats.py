"""`/stats` on a big base: prints figures, asserts nothing (these machines are shared and noisy).

    .venv/bin/python -m bench.stats [--scale 1.0] [--database-url URL] [--step NAME ...]

Seeds, straight through the driver, 100,000 customers with 1,000,000 sales over 3 years and
2,000,000 outbox rows (× `--scale`): each customer has their own rhythm (every 2 to 13 weeks, a
visit ±30 % around it) and stops coming at some point, so some are new, some regular, some asleep
and some lost, and cohorts thin out month by month; their cycles are learned as the cycle service
would (the median interval, asleep at twice it). The outbox rows are the six automatic campaigns'
messages, each with the arm the assignment gives it (`bench.campaigns.RULES`: a 10 % holdout, two
variants of two campaigns; held-out rows are written, never sent). Then the planner's closing
steps close every past day and month of the sales and the campaigns (how long that takes is
printed; `--live` measures without it, everything counted live), and each measured step runs:
the summary of `/stats` (with its cohorts) for the last 3 months and the last 3 years, the months
and the cohorts alone, the funnel and the campaigns, and **the whole `/stats` answer** as
`handlers/stats.py` makes it (the summary and its text, every chart's figures, the charts drawn
in a worker thread; only the sending left out), first in a fresh process (matplotlib's import
and font cache included) and then again. The seeded base has no onboarding, so its funnel is
empty and its chart not drawn (`bench/charts.py` times that chart: about 0.1 s). Each step is a
named entry of STEPS. Prints wall seconds per step, the process's peak RSS, and the load average
(the machine is shared: a loaded one stretches wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench._common import (  # noqa: E402
    Seeder,
    business_file,
    database_argument,
    line,
    migrated,
    peak_rss_mb,
)
from bench.campaigns import RULES  # noqa: E402  (10 % holdout, variants of two campaigns)
from bot.business import Business, load_business  # noqa: E402
from bot.clock import FixedClock  # noqa: E402
from bot.db.engine import create_engine  # noqa: E402
from bot.db.repositories import Database  # noqa: E402
from bot.rendering import Renderer  # noqa: E402
from bot.services.campaign_results import CampaignResultsService  # noqa: E402
from bot.services.campaigns import CAMPAIGNS, arm_of  # noqa: E402
from bot.services.charts import (  # noqa: E402
    Figures,
    FigureSources,
    chart_texts,
    draw,
    warm_up,
)
from bot.services.stats import Period, StatsService, months_back  # noqa: E402
from bot.services.stats_breakdowns import StatsBreakdownService  # noqa: E402

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("UTC"))
TZ = ZoneInfo("Europe/Moscow")
YEARS = 3
CUSTOMERS, SALES, OUTBOX = 100_000, 1_000_000, 2_000_000
BATCH = 50_000
SERVICES = (("manicure", 250_000), ("pedicure", 320_000), ("design", 150_000))
SLEEP_FACTOR = 2.0  # tests/data/business.toml's [sleeping] factor
LEARN_FROM = 7  # the cycle service's LEARN_FROM_VISITS


async def seed(seeder: Seeder, scale: float) -> dict[str, int]:
    """Customers, their sales and cycles, and the outbox, in batches (memory stays flat). Sales
    are written in the order of time, as a shop records them (ids follow dates): each customer
    arrives at a random moment (more of them lately: a growing business) and comes back at their
    own rhythm until they stop."""
    rng = random.Random(17)
    customers = max(10, round(CUSTOMERS * scale))
    start = NOW - timedelta(days=365 * YEARS)
    span = (NOW - start).total_seconds()
    stamp = seeder.stamp
    counts = {"customers": customers, "sales": 0, "cycles": 0, "outbox": 0}
    arrivals = sorted(span * rng.random() ** 0.8 for _ in range(customers))
    # (seconds since start of the next visit, customer, rhythm in days, leaves after a visit)
    upcoming: list[tuple[float, int, float, float]] = []
    visits: dict[int, list[float]] = {}  # each customer's last visits (seconds), for the cycle
    last_purchase: dict[int, int] = {}
    people: list[tuple[Any, ...]] = []
    sales: list[tuple[Any, ...]] = []
    purchase, arrived = 0, 0
    while arrived < customers or upcoming:
        if arrived < customers and (not upcoming or arrivals[arrived] <= upcoming[0][0]):
            arrived += 1
            moment = arrivals[arrived - 1]
            # Two in three become regulars (and leave after ~40 visits, on average), the rest
            # leave after one or two: about 10 sales a customer in all.
            customer = arrived
            rhythm = float(rng.choice((10, 14, 21, 28, 35, 45, 60)))
            keep = 0.975 if rng.random() < 0.65 else 0.5
            people.append(
                (
                    customer,
                    f"Клиент {customer}",
                    "ru",
                    False,
                    stamp(start + timedelta(seconds=moment)),
                )
            )
        else:
            moment, customer, rhythm, keep = heapq.heappop(upcoming)
        purchase += 1
        service, price = SERVICES[customer % len(SERVICES)]
        at = start + timedelta(seconds=moment)
        sales.append(
            (purchase, customer, price + rng.randrange(0, 100_000, 5_000), service, stamp(at))
        )
        last_purchase[customer] = purchase
        last = visits.setdefault(customer, [])
        last.append(moment)
        del last[:-LEARN_FROM]
        later = moment + 86400 * rhythm * rng.uniform(0.7, 1.3)
        if rng.random() <= keep and later < span:
            heapq.heappush(upcoming, (later, customer, rhythm, keep))
        if len(sales) >= BATCH:
            await _flush(seeder, people, sales, counts)
    await _flush(seeder, people, sales, counts)
    await _cycles(seeder, visits, last_purchase, start, counts)
    outbox = round(OUTBOX * scale)
    for first_row in range(0, outbox, BATCH):
        rows = []
        for n in range(first_row, min(outbox, first_row + BATCH)):
            at = stamp(start + timedelta(seconds=span * rng.random()))
            campaign = CAMPAIGNS[n % len(CAMPAIGNS)]
            customer = rng.randint(1, customers)
            arm = arm_of(customer, campaign, RULES)  # as the planner records it
            held = arm == "holdout"  # written, never sent
            rows.append(
                (n + 1, f"{campaign}:{n}", customer, "marketing", campaign, "{}", at, at, at)
                + ("skipped" if held else "sent", 1, "holdout" if held else None)
                + (None if held else at, at, campaign, arm)
            )
        await seeder.insert(
            "outbox",
            (
                "id",
                "key",
                "customer_id",
                "kind",
                "template",
                "data",
                "not_before",
                "not_after",
                "due_at",
                "state",
                "attempts",
                "error_code",
                "sent_at",
                "created_at",
                "campaign",
                "arm",
            ),
            rows,
        )
        counts["outbox"] += len(rows)
    await seeder.close()
    return counts


async def _flush(
    seeder: Seeder,
    people: list[tuple[Any, ...]],
    sales: list[tuple[Any, ...]],
    counts: dict[str, int],
) -> None:
    """Customers first (the sales name them), then their sales; the lists emptied."""
    await seeder.insert(
        "customers", ("id", "name", "language", "marketing_opt_out", "created_at"), people
    )
    await seeder.insert(
        "purchases", ("id", "customer_id", "amount_minor", "service_id", "at"), sales
    )
    counts["sales"] += len(sales)
    people.clear()
    sales.clear()


async def _cycles(
    seeder: Seeder,
    visits: dict[int, list[float]],
    last_purchase: dict[int, int],
    start: datetime,
    counts: dict[str, int],
) -> None:
    """Each customer's cycle as the cycle service learns it: the median of their last six
    intervals (28 days before there are two), asleep at `SLEEP_FACTOR` times it."""
    rows = []
    for customer, moments in visits.items():
        intervals = [(b - a) / 86400 for a, b in zip(moments, moments[1:], strict=False)]
        interval = statistics.median(intervals) if len(intervals) >= 2 else 28.0
        last = start + timedelta(seconds=moments[-1])
        rows.append(
            (
                customer,
                SERVICES[customer % len(SERVICES)][0],
                last_purchase[customer],
                seeder.stamp(last),
                interval,
                len(intervals) >= 2,
                seeder.stamp(last + timedelta(days=interval * SLEEP_FACTOR)),
                0,
                0,
            )
        )
    await seeder.insert(
        "cycles",
        (
            "customer_id",
            "service_id",
            "last_purchase_id",
            "last_visit_at",
            "interval_days",
            "learned",
            "sleeps_at",
            "round",
            "ignored",
        ),
        rows,
    )
    counts["cycles"] += len(rows)


@dataclass(frozen=True)
class Step:
    """One measured call; `run` gets the services and the period and returns what it answered
    (a few of its numbers are printed, to see the base is what the figures say)."""

    name: str
    run: Callable[[Services, Period], Awaitable[Any]]
    period_months: int


@dataclass
class Services:
    """What the bot's `/stats` answer uses, built as the composition root builds it."""

    stats: StatsService
    breakdowns: StatsBreakdownService
    campaigns: CampaignResultsService
    render: Renderer

    @property
    def sources(self) -> FigureSources:
        return FigureSources(
            months=self.stats.months,
            cohorts=self.stats.cohorts,
            funnel=self.breakdowns.funnel,
            campaigns=self.campaigns.results,
        )


def services(url: str, business: Business) -> tuple[Any, Services]:
    engine = create_engine(url)
    db, clock = Database(engine), FixedClock(NOW)
    return engine, Services(
        StatsService(db, clock, TZ, business.sleeping),
        StatsBreakdownService(db, clock, TZ, business),
        CampaignResultsService(db, clock, RULES, TZ),
        Renderer(TZ),
    )


def _summary(result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    if isinstance(result, list):
        return {"rows": len(result)}
    current = getattr(result, "current", None)
    if current is not None:
        customers = getattr(result, "customers", None)
        figures: dict[str, Any] = {
            "sales": current.sales.sales,
            "repeat_share": f"{current.repeat_share or 0:.3f}",
        }
        if customers is not None:
            figures |= {"sleeping": customers.sleeping, "lost": customers.lost}
        return figures
    return {}


async def _summary_and_months(s: Services, period: Period) -> Any:
    """What `/stats` reads for its text and its repeat-share and cohort charts (the summary
    carries the cohorts)."""
    report = await s.stats.report(period)
    await s.stats.months(period)
    return report


async def _answer(s: Services, period: Period) -> Any:
    """The whole `/stats` answer as `handlers/stats.py` makes it: the summary and its text, then
    every chart's figures (months, the summary's cohorts, the funnel, the campaigns) and the four
    charts drawn (in a worker thread, as the bot does); only the sending is left out."""
    warming = asyncio.create_task(warm_up())
    report = await s.stats.report(period)
    s.render.text("ru", "stats", usage=False, report=report, currency="₽")
    figures = await s.sources.gather(period, known=Figures(cohorts=report.cohorts))
    await warming
    charts = await draw(figures, chart_texts(s.render, "ru"))
    return {"charts": len(charts), "png_kb": sum(len(c.png) for c in charts) // 1024}


# The steps, in order; later parts of /stats (breakdowns, campaigns, charts) add theirs here.
STEPS: list[Step] = [
    Step("summary 3 months", lambda s, p: s.stats.report(p), 3),
    Step("summary 3 years", lambda s, p: s.stats.report(p), 36),
    Step("months 3 months", lambda s, p: s.stats.months(p), 3),
    Step("months 3 years", lambda s, p: s.stats.months(p), 36),
    Step("cohorts 3 months", lambda s, p: s.stats.cohorts(p), 3),
    Step("cohorts 3 years", lambda s, p: s.stats.cohorts(p), 36),
    Step("/stats data 3 months", _summary_and_months, 3),
    Step("/stats data 3 years", _summary_and_months, 36),
    Step("funnel 3 years", lambda s, p: s.breakdowns.funnel(p), 36),
    Step("campaigns 3 years", lambda s, p: s.campaigns.results(p), 36),
    # the first answer of the process also imports matplotlib and builds its font cache
    Step("/stats answer with charts 3 months, first in the process", _answer, 3),
    Step("/stats answer with charts 3 months", _answer, 3),
    Step("/stats answer with charts 3 years", _answer, 36),
]


def _period(today: date, months: int) -> Period:
    return Period(months_back(today, months) + timedelta(days=1), today)


async def measure(url: str, business: Business, steps: list[Step]) -> None:
    """Each step once, on a fresh engine, as the bot would answer it."""
    engine, bench = services(url, business)
    today = NOW.astimezone(TZ).date()
    try:
        for step in steps:
            started, cpu = time.perf_counter(), time.process_time()
            result = await step.run(bench, _period(today, step.period_months))
            seconds = time.perf_counter() - started
            line(
                step.name,
                {
                    "s": f"{seconds:.2f}",
                    # this process's CPU: on SQLite the database's work too, on PostgreSQL not
                    "cpu_s": f"{time.process_time() - cpu:.2f}",
                    **_summary(result),
                    "peak_rss_mb": f"{peak_rss_mb():.0f}",
                    "load": "/".join(f"{x:.1f}" for x in os.getloadavg()),
                },
            )
    finally:
        await engine.dispose()


async def closed(url: str, business: Business) -> None:
    """The planner's closing step run until no backlog is left (as the bot does after an
    upgrade, a run every few minutes): how long closing three years takes, in how many runs."""
    engine, bench = services(url, business)
    started, cpu, runs, closed_count = time.perf_counter(), time.process_time(), 0, 0
    slowest = 0.0
    try:
        while True:
            run_started = time.perf_counter()
            # the sales' days and months, and the campaigns' days: both planner steps
            count = await bench.stats.close() + await bench.campaigns.close_days()
            if not count:
                break
            slowest = max(slowest, time.perf_counter() - run_started)
            runs += 1
            closed_count += count
    finally:
        await engine.dispose()
    line(
        "closing",
        {
            "s": f"{time.perf_counter() - started:.2f}",
            "cpu_s": f"{time.process_time() - cpu:.2f}",
            "runs": runs,
            "days_and_months": closed_count,
            "slowest_run_s": f"{slowest:.2f}",
            "load": "/".join(f"{x:.1f}" for x in os.getloadavg()),
        },
    )


async def settled(url: str) -> None:
    """On PostgreSQL, VACUUM (ANALYZE) the seeded tables, as autovacuum soon would: until then
    no scan is index-only (every row's visibility is checked in the table)."""
    if not url.startswith("postgresql"):
        return
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("purchases", "customers", "cycles", "outbox"):
                await conn.execute(text(f"VACUUM (ANALYZE) {table}"))
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="0.1: a tenth of the base")
    parser.add_argument(
        "--step", action="append", help="run only these steps (by name; repeatable)"
    )
    parser.add_argument(
        "--live", action="store_true", help="measure without closing days first (all counted live)"
    )
    database_argument(parser)
    args = parser.parse_args()
    steps = [s for s in STEPS if not args.step or s.name in args.step]
    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "stats.sqlite3", args.database_url)
        started = time.perf_counter()
        counts = await seed(seeder, args.scale)
        line(
            "seeded",
            {
                **counts,
                "s": f"{time.perf_counter() - started:.1f}",
                "peak_rss_mb": f"{peak_rss_mb():.0f}",
            },
        )
        await settled(url)
        business = load_business(business_file(Path(folder)))
        if not args.live:
            await closed(url, business)
        await measure(url, business, steps)
        line("done", {"peak_rss_mb": f"{peak_rss_mb():.0f}"})


if __name__ == "__main__":
    asyncio.run(main())
