"""Broadcast benchmark: prints figures, asserts nothing (these machines are shared and noisy).

    python bench/broadcast.py [--customers 100000] [--database-url URL]

A broadcast to every customer of a seeded base (a new SQLite file by default;
`--database-url postgresql+asyncpg://…` on PostgreSQL, whose public schema is dropped and
recreated: a scratch database), sent by the real app (`App`, in its
own process, so its memory is its own) to a local Bot API test server that allows 30 sends/s
and answers 429 with retry_after beyond that. Prints the time to queue, the achieved rate
(goal ≥ 28/s), 429s (goal 0), duplicates (goal 0) and the bot process's peak memory (goal
under 200 MB), next to its memory right after start-up, before the broadcast, so the
difference is what the broadcast costs (bot/lazy_types.py explains why start-up is about
95 MB and not 200). 100,000 messages at 29/s take about an hour; `--customers 20000` twelve
minutes.

The bench's business file moves quiet hours to 04:00-04:01, so a run that crosses the evening
is not held until the morning: the policy itself is tested elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    ONBOARDED_COLUMNS,
    Seeder,
    bot_environment,
    business_file,
    database_argument,
    line,
    migrated,
    onboarded,
)
from tests.telegram_server import TelegramServer  # noqa: E402

TOKEN = "123456:BENCH-token-for-carebot-broadcast"


async def seed(seeder: Seeder, count: int) -> None:
    now = seeder.stamp(datetime.now(UTC))
    await seeder.insert(
        "customers",
        ONBOARDED_COLUMNS,
        onboarded(2_000_000, count, now),
    )
    await seeder.close()


async def worker(url: str, api: str, business: str, report: str) -> None:
    """The bot's process: create the broadcast, queue it, send it all, write its own figures."""
    bot_environment(TOKEN, url, api, business)
    from bot.app import App
    from bot.services.segments import Condition
    from bot.settings import load_settings

    app = await App.create(load_settings())
    idle_mb = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )  # the bot before any broadcast
    try:
        broadcast_id = await app.broadcasts.create(
            by="bench",
            content={"kind": "text", "html": "<b>Скидки</b> к Новому году"},
            buttons=[],
            coupon={"percent": 10, "last_day": "2099-12-31"},
            conditions=[Condition("all")],
            starts_at=None,
        )
        started = time.perf_counter()
        queued = await app.broadcasts.queue_due()
        queue_seconds = time.perf_counter() - started
        while True:
            await app.sender.drain()
            progress = await app.broadcasts.progress(broadcast_id)
            if progress is None or not progress.waiting:
                break
            await asyncio.sleep(0.2)  # rows waiting for retry_after or a backoff
        await asyncio.to_thread(
            Path(report).write_text, f"{queued} {queue_seconds:.3f} {idle_mb:.1f}"
        )
    finally:
        await app.close()


async def run(count: int, database_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "broadcast.sqlite3", database_url)
        await seed(seeder, count)
        # The test server keeps every call (100,000 of them by the end), and a full collection of
        # the cyclic GC over them stalls its event loop for 100-300 ms: the sends that queued up
        # meanwhile were then stamped together and counted as a burst the bot never made (a
        # 100,000 run met 31 such 429s, a 20,000 run one). Its objects hold no cycles to collect.
        gc.disable()
        server = TelegramServer(TOKEN)
        server.rate_limit = 30
        await server.start()
        report = Path(folder) / "worker.txt"
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            url,
            server.url,
            str(business_file(Path(folder))),
            str(report),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.wait()
        finished = time.monotonic()
        await server.stop()
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KB on Linux
        queued, queue_seconds, idle_mb = (
            report.read_text().split() if report.exists() else ("0", "nan", "nan")
        )
        delivered = [c for c in server.calls if c.method == "sendMessage" and c.result]
        per_chat = Counter(c.chat_id for c in delivered)
        times = sorted(c.at for c in delivered)
        return {
            "customers": count,
            "queued": int(queued),
            "queue_seconds": float(queue_seconds),
            "delivered": len(per_chat),
            "duplicates": sum(n - 1 for n in per_chat.values()),
            "http_429": server.throttled,
            "seconds": round(finished - started, 1),
            "rate_per_s": round((len(times) - 1) / (times[-1] - times[0]), 2)
            if len(times) > 1
            else 0.0,
            "bot_peak_mb": round(peak_mb, 1),
            "bot_idle_mb": float(
                idle_mb
            ),  # after start-up, before the broadcast (aiogram's types alone ~145 MB)
        }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    database_argument(parser)
    args = parser.parse_args()
    line("broadcast", await run(args.customers, args.database_url))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        asyncio.run(worker(*sys.argv[2:6]))
    else:
        asyncio.run(main())
