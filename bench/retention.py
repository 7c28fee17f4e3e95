"""What the retention planners cost (`[retention]` in the business file): the first run over a
base where some customers have slept past `inactive_customers_years` and the care chat has old
texts, and every run after, when nothing is left (the check each planner run makes).

    .venv/bin/python -m bench.retention [--customers 100000] [--inactive 2000] [--messages 200000]
        [--database-url URL]
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
from bot.business import Retention, load_business
from bot.clock import FixedClock
from bot.db.engine import create_engine
from bot.db.repositories import Database
from bot.events import Events
from bot.services.customers import CustomerService
from bot.services.retention import RetentionService
from tests.conftest import NOW

PURCHASE_COLUMNS = ("id", "customer_id", "amount_minor", "service_id", "at", "staff_name")


async def seed(seeder: Seeder, customers: int, inactive: int, messages: int) -> None:
    """Onboarded customers with three visits each, the last within a year, except `inactive`
    of them whose last visit was five years ago; `messages` care-chat messages, half of them
    older than the texts' retention."""
    rng = random.Random(16)
    created = seeder.stamp(NOW - timedelta(days=6 * 365))
    await seeder.insert(
        "customers",
        (
            "id",
            "tg_user_id",
            "name",
            "phone",
            "language",
            "marketing_opt_out",
            "created_at",
            "onboarded_at",
        ),
        (
            (n, 10_000_000 + n, f"Клиент {n}", f"+7916{n:07d}", "ru", False, created, created)
            for n in range(1, customers + 1)
        ),
    )
    rows, purchase = [], 0
    for customer in range(1, customers + 1):
        last = 5 * 365 if customer <= inactive else rng.randint(1, 360)
        for back in (last, last + 40, last + 80):
            purchase += 1
            rows.append(
                (
                    purchase,
                    customer,
                    200000,
                    "manicure",
                    seeder.stamp(NOW - timedelta(days=back)),
                    "bench",
                )
            )
        if len(rows) >= 100_000:
            await seeder.insert("purchases", PURCHASE_COLUMNS, rows)
            rows = []
    if rows:
        await seeder.insert("purchases", PURCHASE_COLUMNS, rows)
    await seeder.insert(
        "care_messages",
        ("id", "tg_user_id", "customer_id", "direction", "kind", "text", "at"),
        (
            (
                n,
                10_000_000 + inactive + n % (customers - inactive) + 1,
                inactive + n % (customers - inactive) + 1,  # the inactive ones wrote nothing
                "in",
                "text",
                f"вопрос {n}",
                seeder.stamp(NOW - timedelta(days=(400 if n % 2 else 10) + n % 50)),
            )
            for n in range(1, messages + 1)
        ),
    )
    await seeder.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--inactive", type=int, default=2_000)
    parser.add_argument("--messages", type=int, default=200_000)
    database_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "retention.sqlite3", args.database_url)
        started = time.perf_counter()
        await seed(seeder, args.customers, args.inactive, args.messages)
        line(
            "seeded",
            {
                "customers": args.customers,
                "inactive": args.inactive,
                "care_messages": args.messages,
                "s": round(time.perf_counter() - started, 1),
            },
        )
        business = load_business(business_file(Path(folder)))
        business = business.model_copy(
            update={"retention": Retention(care_texts_days=180, inactive_customers_years=3)}
        )
        clock = FixedClock(NOW)
        engine = create_engine(url)
        db = Database(engine)
        tz = ZoneInfo("Europe/Moscow")
        customers = CustomerService(db, clock, business, tz, Events(), secret_key=b"bench-key")
        retention = RetentionService(db, clock, business, customers)
        try:
            for name, planner in (
                ("care_texts", retention.erase_old_care_texts),
                ("customers", retention.erase_inactive_customers),
            ):
                runs, total = 0, 0
                started, cpu = time.perf_counter(), time.process_time()
                while erased := await planner():  # a run is bounded; the rest goes next run
                    runs, total = runs + 1, total + erased
                line(
                    f"until done {name}",
                    {
                        "erased": total,
                        "runs": runs,
                        "s": round(time.perf_counter() - started, 2),
                        "cpu_s": round(time.process_time() - cpu, 2),
                    },
                )
                started = time.perf_counter()
                assert await planner() == 0
                line(f"every run after {name}", {"s": round(time.perf_counter() - started, 3)})
        finally:
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
