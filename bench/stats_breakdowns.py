"""`/stats masters|sources|funnel` on a big base: prints figures, asserts nothing.

    .venv/bin/python -m bench.stats_breakdowns [--scale 1.0] [--database-url URL]

Seeds, straight through the driver, 100,000 customers who joined in Telegram over 3 years (each
with their consent, a source among 200 deep links or none, a phone for 9 in 10, a birthday for
7 in 10, a welcome coupon for 6 in 10), 1,000,000 sales among 8 masters (and some without one),
300,000 answered surveys and 300,000 bookings done or missed (× `--scale`): what the breakdowns
read, which `bench/stats.py`'s base does not have. Then times each breakdown for the last 3
months and the last 3 years, and prints wall seconds, the process's peak RSS and the load
average (the machine is shared: a loaded one stretches wall time).
"""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    Seeder,
    business_file,
    line,
    peak_rss_mb,
    scale_arguments,
    seed_then_measure,
)
from bot.business import load_business  # noqa: E402
from bot.clock import FixedClock  # noqa: E402
from bot.db.engine import create_engine  # noqa: E402
from bot.db.repositories import Database  # noqa: E402
from bot.services.stats import Period, months_back  # noqa: E402
from bot.services.stats_breakdowns import StatsBreakdownService  # noqa: E402

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("UTC"))
TZ = ZoneInfo("Europe/Moscow")
YEARS = 3
CUSTOMERS, SALES_EACH, SURVEY_SHARE, BOOKING_SHARE = 100_000, 10, 0.3, 0.3
MASTERS = ("anna", "olga", "ivan", "maria", "petr", "lena", "sveta", "dima", None)
SOURCES = [f"src{n:03}" for n in range(200)]
BATCH = 50_000


async def seed(seeder: Seeder, scale: float) -> dict[str, int]:
    """Customers first, then the sales of all of them in time order (ids rising with time, as a
    live business records them), from a heap of each customer's next visit: memory stays flat."""
    rng = random.Random(17)
    stamp = seeder.stamp
    customers = max(10, round(CUSTOMERS * scale))
    start = NOW - timedelta(days=365 * YEARS)
    span = (NOW - start).total_seconds()
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in COLUMNS}
    counts = dict.fromkeys(rows, 0)
    upcoming: list[tuple[datetime, int, int]] = []  # (next visit, customer, visits left)
    for customer in range(1, customers + 1):
        joined = start + timedelta(seconds=span * rng.random() ** 0.8)
        phone = rng.random() < 0.9
        birthday = phone and rng.random() < 0.78
        source = rng.choice(SOURCES) if rng.random() < 0.7 else None
        rows["customers"].append(
            (customer, customer, "ru", False, stamp(joined), source)
            + (f"+7916{customer:07d}" if phone else None,)
            + ((5, 17) if birthday else (None, None))
        )
        rows["consents"].append((customer, "personal_data", True, "1", stamp(joined), "button"))
        if birthday and rng.random() < 0.85:
            rows["coupons"].append(
                (customer, f"W{customer}", customer, "welcome", 10)
                + (stamp(joined), stamp(joined + timedelta(days=30)))
            )
        visits = rng.choice((0, 1, 4, 10, 20, 32, 50)) if phone else 0
        if visits:
            heapq.heappush(
                upcoming, (joined + timedelta(days=rng.uniform(0, 14)), customer, visits)
            )
        if len(rows["customers"]) >= BATCH:
            await _flush(seeder, rows, counts)
    await _flush(seeder, rows, counts)
    purchase = 0
    while upcoming:
        at, customer, visits = heapq.heappop(upcoming)
        if at >= NOW:
            continue
        purchase += 1
        master = MASTERS[(customer + purchase % 3) % len(MASTERS)]
        rows["purchases"].append((purchase, customer, 250_000, "manicure", master, stamp(at)))
        if rng.random() < SURVEY_SHARE:
            answered = stamp(at + timedelta(hours=3))
            rows["surveys"].append(
                (purchase, purchase, customer, master, stamp(at))
                + (answered, rng.randint(1, 5), answered)
            )
        if master and rng.random() < BOOKING_SHARE:
            state = "no_show" if rng.random() < 0.08 else "done"
            rows["bookings"].append(
                (purchase, customer, "manicure", master, stamp(at))
                + (stamp(at + timedelta(hours=1)), state, "menu")
                + (stamp(at - timedelta(days=2)), stamp(at - timedelta(days=1)))
            )
        if visits > 1:
            heapq.heappush(
                upcoming, (at + timedelta(days=rng.uniform(10, 40)), customer, visits - 1)
            )
        if len(rows["purchases"]) >= BATCH:
            await _flush(seeder, rows, counts)
    await _flush(seeder, rows, counts)
    await seeder.close()
    return counts


COLUMNS = {
    "customers": (
        "id",
        "tg_user_id",
        "language",
        "marketing_opt_out",
        "created_at",
        "source",
        "phone",
        "birth_month",
        "birth_day",
    ),
    "consents": ("customer_id", "kind", "granted", "version", "at", "via"),
    "coupons": ("id", "code", "customer_id", "kind", "percent", "issued_at", "expires_at"),
    "purchases": ("id", "customer_id", "amount_minor", "service_id", "master_id", "at"),
    "surveys": ("id", "purchase_id", "customer_id", "master_id", "planned_at")
    + ("closes_at", "score", "answered_at"),
    "bookings": ("id", "customer_id", "service_id", "master_id", "starts_at", "ends_at")
    + ("state", "source", "created_at", "answer_due_at"),
}


async def _flush(
    seeder: Seeder, rows: dict[str, list[tuple[Any, ...]]], counts: dict[str, int]
) -> None:
    """In the order the foreign keys want; the lists emptied."""
    for table, batch in rows.items():
        if batch:
            await seeder.insert(table, COLUMNS[table], batch)
            counts[table] += len(batch)
            batch.clear()


Run = Callable[[StatsBreakdownService, Period], Awaitable[Any]]
STEPS: list[tuple[str, Run, int]] = [
    ("masters 3 months", lambda s, p: s.masters(p), 3),
    ("masters 3 years", lambda s, p: s.masters(p), 36),
    ("sources 3 months", lambda s, p: s.sources(p), 3),
    ("sources 3 years", lambda s, p: s.sources(p), 36),
    ("funnel 3 months", lambda s, p: s.funnel(p), 3),
    ("funnel 3 years", lambda s, p: s.funnel(p), 36),
]


async def measure(url: str, folder: Path) -> None:
    business = load_business(business_file(folder))
    engine = create_engine(url)
    service = StatsBreakdownService(Database(engine), FixedClock(NOW), TZ, business)
    today = NOW.astimezone(TZ).date()
    try:
        for name, run, months in STEPS:
            period = Period(months_back(today, months) + timedelta(days=1), today)
            started = time.perf_counter()
            result = await run(service, period)
            seconds = time.perf_counter() - started
            first = result[0] if result else None
            line(
                name,
                {
                    "s": f"{seconds:.2f}",
                    "rows": len(result),
                    "first": getattr(first, "customers", None)
                    or getattr(first, "joined", None)
                    or getattr(first, "sales", None),
                    "peak_rss_mb": f"{peak_rss_mb():.0f}",
                    "load": "/".join(f"{x:.1f}" for x in os.getloadavg()),
                },
            )
    finally:
        await engine.dispose()


async def main() -> None:
    args = scale_arguments((__doc__ or "").splitlines()[0])
    await seed_then_measure(args, "breakdowns.sqlite3", seed, measure)


if __name__ == "__main__":
    asyncio.run(main())
