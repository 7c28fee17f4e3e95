"""Booking benchmark: prints figures, asserts nothing (these machines are shared and noisy).

    python bench/slots.py [--bookings 10000] [--customers 1000000] [--database-url URL]

1. Slot search for 20 masters over 30 days with 10,000 existing bookings: the days with free
   time for "any master", one day's times, and a due-offer's six slots.
2. The due-offer planner over 1,000,000 customers with a learned cycle: the first run, a run
   10 minutes later (the steady state: it runs every 10 minutes), and a run a day later (a
   day's offers, and the cycles whose due date passed rolled on).

SQLite by default (a new file per run); `--database-url postgresql+asyncpg://…` runs both on
PostgreSQL (its public schema is dropped and recreated: a scratch database).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import Seeder, database_argument, line, migrated  # noqa: E402
from bot.business import Business, load_business  # noqa: E402
from bot.clock import FixedClock  # noqa: E402
from bot.db.engine import create_engine  # noqa: E402
from bot.db.repositories import Database  # noqa: E402
from bot.events import Events  # noqa: E402
from bot.rendering import Renderer  # noqa: E402
from bot.services.booking import BookingService  # noqa: E402
from bot.services.cycles import CycleService  # noqa: E402
from bot.services.slots import cells  # noqa: E402
from bot.services.staff import StaffService  # noqa: E402

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # Monday 10:00 in Moscow
MASTERS = 20
DAYS = 30


def salon(masters: int) -> Business:
    """The test business with `masters` masters working 08:00-22:00 every day, a 30-minute
    express service (what the seeded bookings are) and the 90-minute manicure (what we search)."""
    base = load_business(ROOT / "tests" / "data" / "business.toml").model_dump()
    hours = {day: "08:00-22:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    base["masters"] = [
        {"id": f"m{n}", "name": f"Мастер {n}", "hours": hours, "breaks": ["14:00-14:30"]}
        for n in range(masters)
    ]
    ids = [m["id"] for m in base["masters"]]
    base["services"] = [
        {
            "id": "manicure",
            "name": "Маникюр",
            "duration_minutes": 90,
            "price": 2000,
            "cycle_days": 21,
            "masters": ids,
        },
        {
            "id": "express",
            "name": "Экспресс",
            "duration_minutes": 30,
            "price": 800,
            "cycle_days": 14,
            "masters": ids,
        },
    ]
    base["booking"] = {**base.get("booking", {}), "days_ahead": DAYS}
    for master in base["masters"]:
        master["hours"] = {
            day: f"{r['start']:%H:%M}-{r['end']:%H:%M}" if isinstance(r, dict) else r
            for day, r in master["hours"].items()
        }
    return Business.model_validate(base)


async def seed_bookings(seeder: Seeder, business: Business, count: int) -> int:
    """`count` 30-minute bookings at random free cells of the masters' next 30 days."""
    booking = BookingService(None, FixedClock(NOW), business, MOSCOW, None, None, None)  # type: ignore[arg-type]
    express = business.service("express")
    assert express is not None
    free = [
        (m.id, start)
        for m in business.masters
        for d in range(DAYS)
        for start in booking.finder.starts(
            m, express, NOW.astimezone(MOSCOW).date() + timedelta(days=d)
        )
    ]
    rng = random.Random(7)
    chosen = rng.sample(free, min(count, len(free)))
    stamp = seeder.stamp
    await seeder.insert(
        "customers",
        ("id", "language", "marketing_opt_out", "created_at"),
        [(1, "ru", False, stamp(NOW))],
    )
    await seeder.insert(
        "bookings",
        (
            "id",
            "customer_id",
            "service_id",
            "master_id",
            "starts_at",
            "ends_at",
            "state",
            "source",
            "created_at",
            "answer_due_at",
        ),
        [
            (
                n,
                1,
                "express",
                master_id,
                stamp(start),
                stamp(start + timedelta(minutes=30)),
                "confirmed",
                "menu",
                stamp(NOW),
                stamp(NOW),
            )
            for n, (master_id, start) in enumerate(chosen, start=1)
        ],
    )
    await seeder.insert(
        "booking_cells",
        ("master_id", "starts_at", "booking_id"),
        [
            (master_id, stamp(cell), n)
            for n, (master_id, start) in enumerate(chosen, start=1)
            for cell in cells(start, 30, business.booking.grid_minutes)
        ],
    )
    await seeder.close()
    return len(chosen)


def booking_service(db: Database, clock: FixedClock, business: Business) -> BookingService:
    return BookingService(
        db,
        clock,
        business,
        MOSCOW,
        Renderer(MOSCOW),
        StaffService(db, clock, business, MOSCOW, Events()),
        None,
    )


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    """Median milliseconds of `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1), result


async def run_slots(count: int, database_url: str | None) -> dict[str, Any]:
    business = salon(MASTERS)
    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "slots.sqlite3", database_url)
        seeded = await seed_bookings(seeder, business, count)
        engine = create_engine(url)
        db, clock = Database(engine), FixedClock(NOW)
        booking = booking_service(db, clock, business)
        days_ms, days = await timed(lambda: booking.days_with_slots("manicure", None), 5)
        one_ms, _ = await timed(lambda: booking.days_with_slots("manicure", "m3"), 5)
        day = NOW.astimezone(MOSCOW).date() + timedelta(days=3)
        times_ms, times = await timed(lambda: booking.slots_on("manicure", None, day), 10)

        async def offer() -> Any:
            async with db.transaction() as repos:
                return await booking.offer(
                    repos,
                    business.service("manicure"),
                    "m5",  # type: ignore[arg-type]
                    day,
                    6,
                )

        offer_ms, offered = await timed(offer, 10)
        await engine.dispose()
    return {
        "masters": MASTERS,
        "days": DAYS,
        "bookings": seeded,
        "any_master_30_days_ms": days_ms,
        "days_with_time": len(days),
        "one_master_30_days_ms": one_ms,
        "one_day_any_master_ms": times_ms,
        "times_that_day": len(times),
        "due_offer_6_slots_ms": offer_ms,
        "offered": len(offered),
    }


async def seed_cycles(seeder: Seeder, count: int) -> None:
    """`count` customers, each with a manicure cycle: due dates spread over the next 40 days;
    one in ten already left to the reactivation campaign (no due date)."""
    stamp = seeder.stamp
    rng = random.Random(3)
    created = stamp(NOW - timedelta(days=200))
    customers, cycles = [], []
    for n in range(1, count + 1):
        customers.append(
            (n, 10_000_000 + n, f"Клиент {n}", "ru", f"+7916{n:07d}", False, created, created)
        )
        interval = rng.choice((14, 21, 21, 28, 30))
        due = NOW + timedelta(minutes=rng.randrange(40 * 24 * 60))
        lead = timedelta(days=min(max(interval / 6, 3), 5))
        asleep = rng.random() < 0.1
        cycles.append(
            (
                n,
                "manicure",
                f"m{n % MASTERS}",
                n,
                stamp(due - timedelta(days=interval)),
                interval,
                True,
                None if asleep else stamp(due),
                None if asleep else stamp(due - lead),
                0,
                None,
                2 if asleep else 0,
            )
        )
        if len(customers) == 50_000:
            await _flush(seeder, customers, cycles)
    await _flush(seeder, customers, cycles)
    await seeder.close()


async def _flush(
    seeder: Seeder, customers: list[tuple[Any, ...]], cycles: list[tuple[Any, ...]]
) -> None:
    await seeder.insert(
        "customers",
        (
            "id",
            "tg_user_id",
            "name",
            "language",
            "phone",
            "marketing_opt_out",
            "created_at",
            "onboarded_at",
        ),
        customers,
    )
    await seeder.insert(
        "cycles",
        (
            "customer_id",
            "service_id",
            "master_id",
            "last_purchase_id",
            "last_visit_at",
            "interval_days",
            "learned",
            "due_at",
            "offer_at",
            "round",
            "offered_round",
            "ignored",
        ),
        cycles,
    )
    customers.clear()
    cycles.clear()


async def run_planner(count: int, database_url: str | None) -> dict[str, Any]:
    business = salon(MASTERS)
    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "cycles.sqlite3", database_url)
        seeding = time.monotonic()
        await seed_cycles(seeder, count)
        seeded = time.monotonic() - seeding
        engine = create_engine(url)
        db, clock = Database(engine), FixedClock(NOW)
        cycles = CycleService(db, clock, business, MOSCOW, booking_service(db, clock, business))
        figures: dict[str, Any] = {"customers": count, "seed_seconds": round(seeded, 1)}
        for label, step in (
            ("first", timedelta(0)),
            ("10_min_later", timedelta(minutes=10)),
            ("a_day_later", timedelta(days=1)),
        ):
            clock.advance(step)
            started = time.perf_counter()
            planned = await cycles.plan_due_offers()
            figures[f"{label}_seconds"] = round(time.perf_counter() - started, 3)
            figures[f"{label}_offers"] = planned
        await engine.dispose()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bookings", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    database_argument(parser)
    args = parser.parse_args()
    line("slot search", await run_slots(args.bookings, args.database_url))
    line("due-offer planner", await run_planner(args.customers, args.database_url))


if __name__ == "__main__":
    asyncio.run(main())
