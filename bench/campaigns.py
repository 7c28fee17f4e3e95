"""`/stats campaigns` on a big base: prints figures, asserts nothing (shared, noisy machines).

    .venv/bin/python -m bench.campaigns [--scale 1.0] [--database-url URL]

Seeds, straight through the driver, 100,000 customers with 1,000,000 sales over 3 years and
2,000,000 campaign outbox rows (× `--scale`): the six automatic campaigns and 30 broadcasts, each
row's arm drawn as the assignment draws it (`bot.services.campaigns.arm_of`: 10 % holdout, the
reactivation and birthday with a variant b), a coupon on a fifth of the rows (a fifth of them
used). Then times the live count alone for the last 3 months and 3 years (every day counted
from the outbox and purchases: what `/stats campaigns` cost before `campaign_days`), runs the
planner's closing step until no day is left to close (the 3 years' backlog, 30 days a run, as
the running bot would have closed it over time) and times `CampaignResultsService.results` for
the same periods (closed days summed, the last `window_days` live: what `/stats campaigns` and the
campaign chart cost). Prints wall seconds, the campaigns and assignments counted, the process's
peak RSS and the load average.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    Seeder,
    line,
    peak_rss_mb,
    scale_arguments,
    seed_then_measure,
)
from bot.business import CampaignRule, Campaigns, Variant  # noqa: E402
from bot.clock import FixedClock  # noqa: E402
from bot.db.engine import create_engine  # noqa: E402
from bot.db.repositories import Database  # noqa: E402
from bot.services.campaign_results import CampaignResultsService  # noqa: E402
from bot.services.campaigns import CAMPAIGNS, arm_of  # noqa: E402
from bot.services.stats import Period, months_back  # noqa: E402
from bot.services.stats_figures import CampaignResult  # noqa: E402

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("UTC"))
TZ = ZoneInfo("Europe/Moscow")
CUSTOMERS, SALES, OUTBOX = 100_000, 1_000_000, 2_000_000
BROADCASTS = 30
BATCH = 50_000
RULES = Campaigns(
    holdout=0.1,
    reactivation=CampaignRule(b=Variant(template="reactivation_b", percent=20)),
    birthday=CampaignRule(b=Variant(template="birthday_greeting_b")),
)


async def seed(seeder: Seeder, scale: float) -> dict[str, int]:
    rng = random.Random(17)
    stamp = seeder.stamp
    customers = max(10, round(CUSTOMERS * scale))
    start = NOW - timedelta(days=365 * 3)
    span = (NOW - start).total_seconds()

    def moment() -> datetime:
        return start + timedelta(seconds=span * rng.random())

    for first in range(1, customers + 1, BATCH):
        ids = range(first, min(customers + 1, first + BATCH))
        await seeder.insert(
            "customers",
            ("id", "name", "language", "marketing_opt_out", "created_at"),
            [(i, f"Клиент {i}", "ru", False, stamp(start)) for i in ids],
        )
    sales = round(SALES * scale)
    for first in range(1, sales + 1, BATCH):
        bought = [
            (i, rng.randint(1, customers), rng.randrange(100_000, 400_000, 5_000), stamp(moment()))
            for i in range(first, min(sales + 1, first + BATCH))
        ]
        await seeder.insert("purchases", ("id", "customer_id", "amount_minor", "at"), bought)
    campaigns = [*CAMPAIGNS, *(f"broadcast:{n}" for n in range(1, BROADCASTS + 1))]
    outbox, coupon = round(OUTBOX * scale), 0
    for first in range(1, outbox + 1, BATCH):
        rows, coupons = [], []
        for n in range(first, min(outbox + 1, first + BATCH)):
            customer, campaign, at = rng.randint(1, customers), rng.choice(campaigns), moment()
            arm = arm_of(customer, campaign, RULES)
            coupon_id = None
            if arm != "holdout" and rng.random() < 0.2:
                coupon += 1
                coupon_id = coupon
                used = stamp(at + timedelta(days=3)) if rng.random() < 0.2 else None
                coupons.append(
                    (coupon, f"B{coupon:09d}", customer, "gift", 10)
                    + (stamp(at), stamp(at + timedelta(days=10)), used)
                )
            held = arm == "holdout"
            rows.append(
                (n, f"{campaign}:{customer}:{n}", customer, coupon_id, "marketing", "t", "{}")
                + (stamp(at), stamp(at), stamp(at), "skipped" if held else "sent", 1)
                + ("holdout" if held else None, None if held else stamp(at), stamp(at))
                + (campaign, arm)
            )
        await seeder.insert(
            "coupons",
            ("id", "code", "customer_id", "kind", "percent", "issued_at", "expires_at")
            + ("redeemed_at",),
            coupons,
        )
        await seeder.insert(
            "outbox",
            ("id", "key", "customer_id", "coupon_id", "kind", "template", "data", "not_before")
            + ("not_after", "due_at", "state", "attempts", "error_code", "sent_at", "created_at")
            + ("campaign", "arm"),
            rows,
        )
    await seeder.close()
    return {"customers": customers, "sales": sales, "outbox": outbox, "coupons": coupon}


def _periods() -> list[tuple[int, Period]]:
    today = NOW.astimezone(TZ).date()
    return [
        (months, Period(months_back(today, months) + timedelta(days=1), today))
        for months in (3, 36)
    ]


def _figures(seconds: float, results: list[CampaignResult]) -> dict[str, object]:
    return {
        "s": f"{seconds:.2f}",
        "campaigns": len(results),
        "assignments": sum(arm.customers for r in results for arm in r.arms),
        "peak_rss_mb": f"{peak_rss_mb():.0f}",
        "load": "/".join(f"{x:.1f}" for x in os.getloadavg()),
    }


async def measure(url: str) -> None:
    engine = create_engine(url)
    service = CampaignResultsService(Database(engine), FixedClock(NOW), RULES, TZ)
    try:
        for months, period in _periods():
            start, end = period.bounds(TZ)
            started = time.perf_counter()
            results = await service.live(start, end)
            line(f"live only {months} months", _figures(time.perf_counter() - started, results))
        started = time.perf_counter()
        runs, slowest = 0, 0.0
        while True:
            run = time.perf_counter()
            closed = await service.close_days()
            if not closed:
                break
            runs += 1
            slowest = max(slowest, time.perf_counter() - run)
        line(
            "closing the backlog",
            {
                "s": f"{time.perf_counter() - started:.1f}",
                "runs": runs,
                "slowest_run_s": f"{slowest:.2f}",
                "closed_through": str(service.last_closable_day()),
            },
        )
        for months, period in _periods():
            started = time.perf_counter()
            results = await service.results(period)
            line(f"campaigns {months} months", _figures(time.perf_counter() - started, results))
    finally:
        await engine.dispose()


async def main() -> None:
    args = scale_arguments(__doc__.splitlines()[0])
    await seed_then_measure(args, "campaigns.sqlite3", seed, lambda url, _: measure(url))


if __name__ == "__main__":
    asyncio.run(main())
