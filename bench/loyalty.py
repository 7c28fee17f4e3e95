"""The loyalty planners on a big ledger: prints figures, asserts nothing (shared, noisy machines).

    .venv/bin/python -m bench.loyalty [--scale 1.0] [--database-url URL]

Seeds, straight through the driver, 100,000 customers (in Telegram, agreeing to offers) and
1,000,000 ledger rows (× `--scale`): accruals over the last year, each expiring 12 months after
it, a spending of part of it after a third of them, a correction now and then. So a day's worth of
accruals (about 1/365 of them) has just expired and a week's is due for its reminder: what the
planners meet on an ordinary day. Then times `LoyaltyService.expire` until it settles nothing more
(500 accruals a run, as the running bot's every-ten-minutes runs would), and
`LoyaltyService.remind` once (the week ahead's reminders, written set-wise), and a customer's
`/card` (`wallet`). Prints wall seconds, runs, rows written, peak RSS and the load average.

Each accrual has its sale in `purchases` (20 ₽ a point: 5 %), and `loyalty_tiers` holds each
customer's club tier as of yesterday (Silver: 10,000 ₽ or 5 visits, Gold: 30,000 ₽ or 12 visits
in 12 months): the daily tier planner (`TierService.evaluate`) then meets one day's changes over
the whole base (a grouped read of a year's purchases, the ups and the warned drops written), and
is timed until it finds nothing more, then once more with nothing to do.
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

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    Seeder,
    line,
    scale_arguments,
    seed_then_measure,
)
from bot.business import Loyalty, Tier, load_business  # noqa: E402
from bot.clock import FixedClock  # noqa: E402
from bot.db.engine import create_engine  # noqa: E402
from bot.db.models import LoyaltyEntry, LoyaltyTier, OutboxMessage  # noqa: E402
from bot.db.repositories import Database  # noqa: E402
from bot.services.loyalty import LoyaltyService, add_months  # noqa: E402
from bot.services.tiers import TierService  # noqa: E402

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("UTC"))
TZ = ZoneInfo("Europe/Moscow")
CUSTOMERS, LEDGER = 100_000, 1_000_000
BATCH = 50_000
TIERS = [
    Tier(name="Silver", min_spend=10_000, min_visits=5, percent=5),
    Tier(name="Gold", min_spend=30_000, min_visits=12, percent=10),
]
YESTERDAY = NOW - timedelta(days=1)


def _tier_then(sales: list[tuple[datetime, int]], at: datetime) -> str | None:
    """The tier the planner would have given at `at` (its rule, computed here in Python)."""
    since = add_months(at, -12)
    window = [amount for moment, amount in sales if since < moment <= at]
    spend, visits = sum(window), len(window)
    reached = [
        tier.name
        for tier in TIERS
        if (tier.min_spend is not None and spend >= tier.min_spend * 100)
        or (tier.min_visits is not None and visits >= tier.min_visits)
    ]
    return reached[-1] if reached else None


async def seed(seeder: Seeder, scale: float) -> dict[str, int]:
    rng = random.Random(18)
    stamp = seeder.stamp
    customers = max(10, round(CUSTOMERS * scale))
    wanted = round(LEDGER * scale)
    start = NOW - timedelta(days=366)
    span = (NOW - start).total_seconds()
    for first in range(1, customers + 1, BATCH):
        ids = range(first, min(customers + 1, first + BATCH))
        await seeder.insert(
            "customers",
            ("id", "tg_user_id", "name", "language", "marketing_opt_out", "created_at")
            + ("onboarded_at",),
            [
                (i, 10_000_000 + i, f"Клиент {i}", "ru", False, stamp(start), stamp(start))
                for i in ids
            ],
        )
    # each customer's rows in time order (ids ascending: the order the ledger is replayed in)
    per_customer = wanted / customers / 1.4  # rows per accrual: 1 + a third of a spending + a few
    entry, rows = 0, list[tuple[object, ...]]()
    purchase, purchases = 0, list[tuple[object, ...]]()
    tiers: list[tuple[object, ...]] = []
    counts = {"accrual": 0, "spending": 0, "correction": 0}
    for customer in range(1, customers + 1):
        moments = sorted(
            start + timedelta(seconds=span * rng.random())
            for _ in range(max(1, round(rng.expovariate(1 / per_customer))))
        )
        balance = 0
        sales: list[tuple[datetime, int]] = []
        for at in moments:
            points = rng.randrange(50, 200)
            purchase += 1
            sales.append((at, points * 2000))
            purchases.append((purchase, customer, points * 2000, stamp(at)))
            entry += 1
            balance += points
            rows.append(
                (entry, customer, "accrual", points, stamp(add_months(at, 12)), None, stamp(at))
            )
            counts["accrual"] += 1
            if rng.random() < 1 / 3:
                spent = rng.randrange(1, balance + 1)
                balance -= spent
                entry += 1
                rows.append(
                    (
                        entry,
                        customer,
                        "spending",
                        -spent,
                        None,
                        None,
                        stamp(at + timedelta(hours=1)),
                    )
                )
                counts["spending"] += 1
            if rng.random() < 0.05:
                entry += 1
                rows.append((entry, customer, "correction", 10, None, "бонус", stamp(at)))
                counts["correction"] += 1
        held = _tier_then(sales, YESTERDAY)
        if held is not None:
            tiers.append((customer, held, stamp(start)))
        if len(rows) >= BATCH:
            await _write(seeder, rows, purchases, tiers)
            rows, purchases, tiers = [], [], []
    await _write(seeder, rows, purchases, tiers)
    await seeder.close()
    return {"customers": customers, "ledger": entry, "purchases": purchase, **counts}


async def _write(
    seeder: Seeder,
    rows: list[tuple[object, ...]],
    purchases: list[tuple[object, ...]],
    tiers: list[tuple[object, ...]],
) -> None:
    await seeder.insert("purchases", ("id", "customer_id", "amount_minor", "at"), purchases)
    if tiers:
        await seeder.insert("loyalty_tiers", ("customer_id", "tier", "since"), tiers)
    await seeder.insert(
        "loyalty_entries",
        ("id", "customer_id", "kind", "points", "expires_at", "reason", "created_at"),
        rows,
    )


async def measure(url: str) -> None:
    engine = create_engine(url)
    business = load_business(ROOT / "data" / "business.toml")  # cashback on, 12 months, 7 days
    service = LoyaltyService(Database(engine), FixedClock(NOW), business, TZ)
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        started = time.perf_counter()
        runs, slowest = 0, 0.0
        while True:
            run = time.perf_counter()
            settled_now = await service.expire()
            slowest = max(slowest, time.perf_counter() - run)
            runs += 1
            if not settled_now:
                break
        seconds = time.perf_counter() - started
        async with service.db.reading() as repos:
            settled = await repos.session.scalar(
                select(func.count()).select_from(LoyaltyEntry).where(LoyaltyEntry.kind == "expiry")
            )
        line(
            "expiry planner (a day's accruals)",
            {
                "s": f"{seconds:.2f}",
                "runs": runs,
                "accruals_settled": settled,
                "slowest_run_s": f"{slowest:.2f}",
                "load": load,
            },
        )
        started = time.perf_counter()
        planned = await service.remind()
        line(
            "reminder planner (the week ahead)",
            {"s": f"{time.perf_counter() - started:.2f}", "outbox_rows": planned},
        )
        started = time.perf_counter()
        for customer in range(1, 101):
            await service.wallet(customer)
        line("/card of 100 customers", {"s": f"{time.perf_counter() - started:.2f}"})
        club = business.model_copy(
            update={"loyalty": Loyalty(cashback=business.loyalty.cashback, tiers=TIERS)}
        )
        tiers = TierService(service.db, FixedClock(NOW), club, TZ)
        started = time.perf_counter()
        runs, changed, slowest = 0, 0, 0.0
        while True:
            run = time.perf_counter()
            moved = await tiers.evaluate()
            slowest = max(slowest, time.perf_counter() - run)
            runs += 1
            changed += moved
            if not moved:
                break
        seconds = time.perf_counter() - started
        async with service.db.reading() as repos:
            held = await repos.session.scalar(select(func.count()).select_from(LoyaltyTier))
            messages = await repos.session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.template.in_(["tier_up", "tier_down"]))
            )
        line(
            "tier planner (a day's changes)",
            {
                "s": f"{seconds:.2f}",
                "runs": runs,
                "customers_changed": changed,
                "slowest_run_s": f"{slowest:.2f}",
                "in_a_tier": held,
                "messages": messages,
            },
        )
        started = time.perf_counter()
        assert await tiers.evaluate() == 0
        line("tier planner (nothing to do)", {"s": f"{time.perf_counter() - started:.2f}"})
    finally:
        await engine.dispose()


async def main() -> None:
    args = scale_arguments(__doc__.splitlines()[0])
    await seed_then_measure(args, "loyalty.sqlite3", seed, lambda url, _: measure(url))


if __name__ == "__main__":
    asyncio.run(main())
