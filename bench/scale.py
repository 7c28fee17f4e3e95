"""Several instances as one bot: prints figures, asserts nothing (these machines are shared).

    python bench/scale.py [--messages 20000] [--paid-messages 20000] [--instances 1,2,3]
                          [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench]
                          [--redis-url redis://127.0.0.1:6379/13]

For 1, 2 and 3 `carebot run --webhook` processes on one PostgreSQL database and one Redis, twice:
a broadcast of `--messages` at the free limit (the stand-in for Telegram refuses more than 30 a
second in all and more than one a second into one chat, with a 429 each), and one of
`--paid-messages` with `[broadcasts] allow_paid_broadcast` (the stand-in allows 1,000 paid sends a
second). Meanwhile a person writes `/start` to the bot every half second (through the instances'
webhooks in turn) and the time until their answer arrives is measured. Printed per run: the
delivery rate (steady, first to last message), the rate of everything the bot sent meanwhile (the
broadcast and the answers share one budget), the most that arrived in any one second (of all of
them at the free limit; of the broadcast's at the paid one, which Telegram counts apart), 429s,
duplicates, lost, p95 and max of the interactive answer, and the CPU per 1,000 messages of the
bot processes, of the stand-in (in this process) and of PostgreSQL and Redis: all of them share
this machine.

The database's public schema is dropped and recreated for each run: give it a scratch database.
Redis database 13 is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench._common import line  # noqa: E402
from bot.db.engine import create_engine  # noqa: E402
from handlers.delivery import NEW_MESSAGE_METHODS  # noqa: E402
from tests.instances import (  # noqa: E402
    Instance,
    business_text,
    close_engines,
    eventually,
    most_in_a_second,
    outbox_states,
    queue_broadcast,
    served_apart,
    start_update,
)
from tests.telegram_server import TelegramServer  # noqa: E402

TOKEN = "123456:BENCH-token-for-carebot-scale"
SECRET = "bench-scale-webhook-secret"
BUSINESS = ROOT / "tests" / "data" / "business.toml"
PROBE_EVERY = 0.5


async def fresh_schema(url: str) -> None:
    """The scratch database (made if missing), its public schema empty."""
    import asyncpg
    from sqlalchemy.engine import make_url

    where = make_url(url)
    server = where.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        if not await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", where.database
        ):
            await connection.execute(f'CREATE DATABASE "{where.database}"')
    finally:
        await connection.close()
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


async def flush(redis_url: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


def process_cpu(stat: Path) -> tuple[str, float]:
    """A process's name and its user and system CPU in seconds, from its /proc/<pid>/stat."""
    name, fields = stat.read_text().split(" (", 1)[1].rsplit(")", 1)
    values = fields.split()
    return name, (int(values[11]) + int(values[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a live process (Linux /proc), in seconds."""
    return process_cpu(Path(f"/proc/{pid}/stat"))[1]


def services_cpu() -> dict[str, float]:
    """CPU seconds used so far by PostgreSQL's and Redis's processes on this machine (their
    share of the work: the same machine runs everything here)."""
    used = {"postgres": 0.0, "redis": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, cpu = process_cpu(stat)
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        for service in used:
            if name.startswith(service):
                used[service] += cpu
    return used


async def probe(
    instances: list[Instance],
    server: TelegramServer,
    http: aiohttp.ClientSession,
    stop: asyncio.Event,
    latencies: list[float],
) -> None:
    """A new person writes /start every PROBE_EVERY s; how long until the bot's answer arrives."""
    n = 0
    pending: dict[int, float] = {}
    while not stop.is_set():
        user = 7_000_000 + n
        instance = instances[n % len(instances)]
        pending[user] = time.monotonic()
        try:
            async with http.post(
                f"{instance.base}/telegram",
                json=start_update(800_000 + n, user),
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            ):
                pass
        except aiohttp.ClientError:
            pass
        n += 1
        await asyncio.sleep(PROBE_EVERY)
        for user, asked in list(pending.items()):
            answers = server.sent_to(user)
            if answers:
                latencies.append(answers[0].at - asked)
                del pending[user]


async def run(
    count: int, instances_count: int, paid: bool, database_url: str, redis_url: str
) -> dict[str, Any]:
    await fresh_schema(database_url)
    await flush(redis_url)
    server = TelegramServer(TOKEN)
    server.rate_limit, server.chat_gap, server.paid_rate_limit = 30, 1.0, 1000
    server.group_per_minute = None
    async with served_apart(server):
        return await _run(server, count, instances_count, paid, database_url, redis_url)


async def _run(
    server: TelegramServer,
    count: int,
    instances_count: int,
    paid: bool,
    database_url: str,
    redis_url: str,
) -> dict[str, Any]:
    http = aiohttp.ClientSession()
    with tempfile.TemporaryDirectory() as folder:
        business = Path(folder) / "business.toml"
        business.write_text(business_text(BUSINESS, paid=paid))
        env = {
            **os.environ,
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": server.url,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "BUSINESS_FILE": str(business),
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "WEBHOOK_SECRET": SECRET,
        }
        env.pop("ADMIN_CHAT_ID", None)
        instances = [Instance(n, env, Path(folder)) for n in range(instances_count)]
        try:
            await asyncio.gather(*(i.start() for i in instances))

            async def healthy() -> bool:
                return all([await i.healthy(http) for i in instances])

            await eventually("instances healthy", healthy, 180)
            await queue_broadcast(database_url, count, count, first_chat=5_000_000)
            cpu_before = sum(cpu_seconds(i.process.pid) for i in instances if i.process)
            services_before, here_before = services_cpu(), time.process_time()
            stop = asyncio.Event()
            latencies: list[float] = []
            probing = asyncio.create_task(probe(instances, server, http, stop, latencies))
            started = time.monotonic()

            async def delivered() -> bool:
                states = await outbox_states(database_url)
                return states["pending"] + states["sending"] == 0

            try:
                await eventually("delivered", delivered, count / 20 + 300, every=1)
            except AssertionError:
                pass  # printed as lost
            finished = time.monotonic()
            stop.set()
            await probing
            cpu = sum(cpu_seconds(i.process.pid) for i in instances if i.process) - cpu_before
            here = time.process_time() - here_before
            services = {k: v - services_before[k] for k, v in services_cpu().items()}
            states = await outbox_states(database_url)
        finally:
            await asyncio.gather(*(i.stop() for i in instances))
            await http.close()
            await close_engines()
    sent = [
        c
        for c in server.calls
        if c.method == "sendMessage" and c.ok and str(c.params.get("text", "")).startswith("m")
    ]
    texts = Counter(c.params["text"] for c in sent)
    times = sorted(c.at for c in sent)
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    # everything the bot sent meanwhile on the same budget: the broadcast and the answers
    everything = sorted(
        c.at
        for c in server.calls
        if c.ok and c.method in NEW_MESSAGE_METHODS and times and times[0] <= c.at <= times[-1]
    )
    combined = (len(everything) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    latencies.sort()
    return {
        "instances": instances_count,
        "limit": "paid 1000/s" if paid else "free 30/s",
        "messages": count,
        "rate_per_s": round(steady, 1),
        "with_answers_per_s": round(combined, 1),
        # Telegram counts the paid lane apart: there the broadcast's own busiest second
        "busiest_second": most_in_a_second(times if paid else everything),
        "seconds": round(finished - started, 1),
        "http_429": server.throttled,
        "duplicates": sum(n - 1 for n in texts.values()),
        "lost": count - len(texts),
        "not_sent_rows": count - states["sent"],
        "states": "/".join(f"{k}:{v}" for k, v in sorted(states.items())),
        "answers": len(latencies),
        "p95_answer_s": round(statistics.quantiles(latencies, n=20)[18], 3)
        if len(latencies) >= 20
        else (round(max(latencies), 3) if latencies else None),
        "max_answer_s": round(max(latencies), 3) if latencies else None,
        "cpu_s_per_1000": round(cpu / max(1, len(texts)) * 1000, 2),
        # where the rest of the machine's time went, per 1,000 messages: the stand-in for
        # Telegram (with the probe, in this process), PostgreSQL and Redis
        "stand_in_cpu_s_per_1000": round(here / max(1, len(texts)) * 1000, 2),
        "postgres_cpu_s_per_1000": round(services["postgres"] / max(1, len(texts)) * 1000, 2),
        "redis_cpu_s_per_1000": round(services["redis"] / max(1, len(texts)) * 1000, 2),
        "machine_cores": os.cpu_count(),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--paid-messages", type=int, default=20_000)
    parser.add_argument("--instances", default="1,2,3")
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--only", choices=("free", "paid"))
    args = parser.parse_args()
    counts = [int(n) for n in args.instances.split(",")]
    for paid in (False, True):
        if args.only and args.only != ("paid" if paid else "free"):
            continue
        for n in counts:
            figures = await run(
                args.paid_messages if paid else args.messages,
                n,
                paid,
                args.database_url,
                args.redis_url,
            )
            line("scale", figures)


if __name__ == "__main__":
    asyncio.run(main())
