"""Outbox benchmark: prints figures, asserts nothing (these machines are shared and noisy).

    python bench/outbox.py [--messages 10000] [--customers 1000000] [--database-url URL]
    python bench/outbox.py --latency 0.25 [--kills 3] [--messages 3000]

1. Queues N messages to N chats and delivers them with the real sender (`App`, in a separate
   process) to a local Bot API test server that allows 30 sends/s (429 + retry_after beyond)
   and fails 1% of calls with 500. Prints the achieved rate, 429s, duplicates and losses.
2. The same, with the sender killed (SIGKILL) at a random moment and started again. With
   `--latency`, only this, `--kills` times, the server answering each call that much later
   (the message is delivered at once; the answer is late): the duplicates are the calls in
   flight and the outcomes not yet written at the kill.
3. The birthday planner's time over 1,000,000 customers.

SQLite by default (a new file per run); `--database-url postgresql+asyncpg://…` runs all three
on PostgreSQL (its public schema is dropped and recreated: a scratch database).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench._common import Seeder, bot_environment, database_argument, line, migrated  # noqa: E402
from bot.db.engine import create_engine  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402
from bot.db.models import OutboxMessage  # noqa: E402
from bot.db.repositories import Database  # noqa: E402
from tests.telegram_server import TelegramServer  # noqa: E402

TOKEN = "123456:BENCH-token-for-carebot-outbox"
LEASE_SECONDS = 3


def business_file(folder: Path) -> Path:
    """The test business, with a short claim lease so a killed sender's rows come back soon."""
    text = (ROOT / "tests" / "data" / "business.toml").read_text()
    path = folder / "business.toml"
    path.write_text(
        text.replace("max_attempts = 8", f"max_attempts = 8\nlease_seconds = {LEASE_SECONDS}")
    )
    return path


async def queue(url: str, count: int) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    now = datetime.now(UTC)
    async with Database(engine).transaction() as repos:
        repos.session.add_all(
            OutboxMessage(
                key=f"bench:{n}",
                chat_id=1_000_000 + n,
                kind="service",
                template="bench",
                data={},
                text=f"Сообщение №{n}",
                not_before=now,
                not_after=now + timedelta(hours=2),
                due_at=now,
                state="pending",
                attempts=0,
                created_at=now,
            )
            for n in range(count)
        )
    await engine.dispose()


async def states(url: str) -> Counter[str]:
    engine = create_engine(url)
    async with Database(engine).transaction() as repos:
        rows = await repos.session.execute(
            select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
        )
        result = Counter({state: n for state, n in rows})
    await engine.dispose()
    return result


async def worker(url: str, api: str, business: str) -> None:
    """The sender process: deliver until nothing is pending or sending."""
    bot_environment(TOKEN, url, api, business)
    from bot.app import App
    from bot.settings import load_settings

    app = await App.create(load_settings())
    try:
        while True:
            await app.sender.drain()
            left = await states(url)
            if left["pending"] + left["sending"] == 0:
                return
            await asyncio.sleep(0.2)  # rows waiting for a backoff or a lease
    finally:
        await app.close()


async def spawn(url: str, api: str, business: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--worker",
        url,
        api,
        str(business),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def report(
    server: TelegramServer, count: int, started: float, finished: float, left: Counter[str]
) -> dict[str, float]:
    delivered = [c for c in server.calls if c.method == "sendMessage" and c.result]
    per_chat = Counter(c.chat_id for c in delivered)
    times = sorted(c.at for c in delivered)
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "messages": count,
        "delivered": len(per_chat),
        "duplicates": sum(n - 1 for n in per_chat.values()),
        "lost": count - left["sent"],
        "http_429": server.throttled,
        "http_500": sum(1 for c in server.calls if c.method == "sendMessage" and c.result is None)
        - server.throttled,
        "seconds": round(finished - started, 1),
        "rate_per_s": round(steady, 2),
    }


async def run_delivery(
    count: int, kill: bool, database_url: str | None, latency: float = 0.0
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "bench.sqlite3", database_url)
        await seeder.close()
        await queue(url, count)
        server = TelegramServer(TOKEN)
        server.rate_limit, server.fail_ratio, server.latency = 30, 0.01, latency
        await server.start()
        business = business_file(Path(folder))
        started = time.monotonic()
        process = await spawn(url, server.url, business)
        extra: dict[str, float] = {}
        if kill:
            await asyncio.sleep(random.uniform(0.2, 0.6) * count / 29)
            process.send_signal(signal.SIGKILL)
            await process.wait()
            at_kill = await states(url)
            extra = {"sent_before_kill": at_kill["sent"], "claimed_at_kill": at_kill["sending"]}
            process = await spawn(url, server.url, business)
        await process.wait()
        finished = time.monotonic()
        left = await states(url)
        await server.stop()
        return {**report(server, count, started, finished, left), **extra}


async def seed_customers(seeder: Seeder, count: int) -> None:
    """A million customers with random birthdays, written straight through the driver (fast)."""
    now = seeder.stamp(datetime.now(UTC))
    rng = random.Random(1)
    rows = []
    for n in range(count):
        born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
        rows.append(
            (
                1_000_000 + n,
                f"Клиент {n}",
                f"клиент {n}",
                "ru",
                f"+7916{n:07d}",
                born.day,
                born.month,
                born.year,
                False,
                now,
                now,
            )
        )
        if len(rows) == 50_000:
            await seeder.insert("customers", _COLUMNS, rows)
            rows.clear()
    await seeder.insert("customers", _COLUMNS, rows)
    await seeder.close()


_COLUMNS = (
    "tg_user_id",
    "name",
    "name_folded",
    "language",
    "phone",
    "birth_day",
    "birth_month",
    "birth_year",
    "marketing_opt_out",
    "created_at",
    "onboarded_at",
)


async def run_planner(count: int, database_url: str | None) -> dict[str, float]:
    from zoneinfo import ZoneInfo

    from bot.business import load_business
    from bot.clock import FixedClock
    from bot.outbox.planners import Planners

    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "million.sqlite3", database_url)
        seeding = time.monotonic()
        await seed_customers(seeder, count)
        seeded = time.monotonic() - seeding
        engine = create_engine(url)
        clock = FixedClock(datetime(2027, 3, 14, 7, 0, tzinfo=UTC))
        planners = Planners(
            Database(engine),
            clock,
            load_business(ROOT / "data" / "business.toml"),
            ZoneInfo("Europe/Moscow"),
        )
        started = time.monotonic()
        planned = await planners.birthdays()
        first = time.monotonic() - started
        started = time.monotonic()
        again = await planners.birthdays()
        second = time.monotonic() - started
        await engine.dispose()
        return {
            "customers": count,
            "seed_seconds": round(seeded, 1),
            "birthday_planner_seconds": round(first, 3),
            "planned": planned,
            "second_run_seconds": round(second, 3),
            "second_run_planned": again,
        }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds the test server takes to answer each call; with it only the kill run, --kills times",
    )
    parser.add_argument("--kills", type=int, default=3)
    database_argument(parser)
    args = parser.parse_args()
    if args.latency:  # the API answering slowly: more calls in flight when the process is killed
        for _ in range(args.kills):
            line(
                f"delivery with kill -9 at {args.latency} s API latency",
                await run_delivery(
                    args.messages, kill=True, database_url=args.database_url, latency=args.latency
                ),
            )
        return
    line("delivery", await run_delivery(args.messages, kill=False, database_url=args.database_url))
    line(
        "delivery with kill -9",
        await run_delivery(args.messages, kill=True, database_url=args.database_url),
    )
    line("planner", await run_planner(args.customers, args.database_url))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        asyncio.run(worker(*sys.argv[2:5]))
    else:
        asyncio.run(main())
