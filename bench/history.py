"""How long the first planner run takes to learn every imported customer's cycles from their
visits (`CycleService.learn_from_history`), and what the check costs every run after, when there
is nothing left to learn. Prints one line per step.

    .venv/bin/python -m bench.history [--customers 100000] [--visits 10] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench._common import Seeder, business_file, database_argument, line, migrated
from bot.business import load_business
from bot.clock import FixedClock
from bot.db.engine import create_engine
from bot.db.repositories import Database
from bot.events import Events
from bot.rendering import Renderer
from bot.services.booking import BookingService
from bot.services.cycles import CycleService
from bot.services.sleeping import SleepingService
from bot.services.staff import StaffService
from tests.conftest import NOW

SERVICES = ("manicure", "pedicure")


async def seed(seeder: Seeder, customers: int, visits: int) -> None:
    """Imported customers (no Telegram) and their visits, newest first as an export lists them."""
    rng = random.Random(16)
    stamp = seeder.stamp(NOW - timedelta(days=1))
    await seeder.insert(
        "customers",
        (
            "id",
            "name",
            "phone",
            "language",
            "source",
            "marketing_opt_out",
            "imported_at",
            "created_at",
        ),
        (
            (n, f"Клиент {n}", f"+7916{n:07d}", "ru", "import", True, stamp, stamp)
            for n in range(1, customers + 1)
        ),
    )
    rows = []
    purchase = 0
    for customer in range(1, customers + 1):
        day = rng.randint(1, 120)
        for _ in range(visits):
            purchase += 1
            service = SERVICES[rng.random() < 0.3]
            at = NOW - timedelta(days=day)
            rows.append(
                (
                    purchase,
                    customer,
                    200000,
                    service,
                    "olga",
                    seeder.stamp(at),
                    "import",
                    f"{customer}:{at.date()}:{service}:{purchase}",
                )
            )
            day += rng.randint(14, 40)
        if len(rows) >= 100_000:
            await seeder.insert(
                "purchases",
                (
                    "id",
                    "customer_id",
                    "amount_minor",
                    "service_id",
                    "master_id",
                    "at",
                    "staff_name",
                    "import_key",
                ),
                rows,
            )
            rows = []
    if rows:
        await seeder.insert(
            "purchases",
            (
                "id",
                "customer_id",
                "amount_minor",
                "service_id",
                "master_id",
                "at",
                "staff_name",
                "import_key",
            ),
            rows,
        )
    await seeder.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--visits", type=int, default=10, help="visits per customer")
    database_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "history.sqlite3", args.database_url)
        started = time.perf_counter()
        await seed(seeder, args.customers, args.visits)
        line(
            "seeded",
            {
                "customers": args.customers,
                "visits": args.customers * args.visits,
                "s": round(time.perf_counter() - started, 1),
            },
        )
        business = load_business(business_file(Path(folder)))
        clock = FixedClock(NOW)
        engine = create_engine(url)
        db = Database(engine)
        tz = ZoneInfo("Europe/Moscow")
        staff = StaffService(db, clock, business, tz, Events())
        booking = BookingService(db, clock, business, tz, Renderer(tz), staff, -100)
        cycles = CycleService(db, clock, business, tz, booking)
        sleeping = SleepingService(db, clock, business, tz, Renderer(tz))
        try:
            started, cpu = time.perf_counter(), time.process_time()
            learned = await cycles.learn_from_history()
            line(
                "first run",
                {
                    "cycles_learned": learned,
                    "s": round(time.perf_counter() - started, 2),
                    "cpu_s": round(time.process_time() - cpu, 2),  # steadier on a busy machine
                },
            )
            started = time.perf_counter()
            again = await cycles.learn_from_history()
            line(
                "every run after",
                {"cycles_learned": again, "s": round(time.perf_counter() - started, 3)},
            )
            started = time.perf_counter()
            stats = await sleeping.stats()
            line(
                "/sleeping", {"asleep": stats.asleep, "s": round(time.perf_counter() - started, 2)}
            )
        finally:
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
