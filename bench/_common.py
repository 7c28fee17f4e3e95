"""What the benchmarks share: a migrated database to seed (a new SQLite file, as before, or the
PostgreSQL of `--database-url`, so the same figures can be had there), bulk inserts that are
fast on both, and one printed line per run."""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.db.engine import create_engine
from bot.db.migrate import upgrade


def volume_arguments(description: str) -> tuple[argparse.Namespace, str | None]:
    """The export and import benchmarks' options (a base of `--customers` and `--visits`, on
    `--database-url` or, with `--postgres`, CAREBOT_TEST_POSTGRES_URL), and the URL given if any."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--visits", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres", action="store_true", help="use CAREBOT_TEST_POSTGRES_URL as --database-url"
    )
    database_argument(parser)
    args = parser.parse_args()
    url_given = args.database_url or (
        os.environ.get("CAREBOT_TEST_POSTGRES_URL") if args.postgres else None
    )
    return args, url_given


class CarebotRun(NamedTuple):
    stdout: str
    seconds: float
    cpu_seconds: float  # the process's own work, whatever else the machine runs
    peak_rss_mb: float  # the largest child so far (getrusage keeps one maximum over all children)

    def figures(self, rows: int) -> dict[str, object]:
        return {
            "rows": rows,
            "seconds": f"{self.seconds:.1f}",
            "cpu_seconds": f"{self.cpu_seconds:.1f}",
            "rows_per_s": f"{rows / self.seconds:.0f}",
            "peak_rss_mb": f"{self.peak_rss_mb:.0f}",
        }


def run_carebot(what: str, *args: str) -> CarebotRun:
    """`carebot <args>` as the owner runs it, in its own process, so its peak memory is its own
    (RUSAGE_CHILDREN); a failure stops the benchmark with its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        print(done.stdout, done.stderr, file=sys.stderr)
        raise SystemExit(f"carebot {what} failed ({done.returncode})")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return CarebotRun(done.stdout, seconds, cpu, after.ru_maxrss / 1024)


def database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=None,
        help="where to run: by default a new SQLite file in a temporary folder; a postgresql+asyncpg:// URL "
        "runs the same on PostgreSQL, whose public schema is DROPPED and recreated first (give it a "
        "scratch database)",
    )


class Seeder:
    """Rows straight through the driver, not the ORM (a million customers in seconds):
    sqlite3's executemany on SQLite, asyncpg's COPY on PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql")
        self._sqlite = None if self.postgres else sqlite3.connect(make_url(url).database or "")
        self._pg: Any = None
        self._tables: set[str] = set()

    def stamp(self, moment: datetime) -> Any:
        """A UTC moment as the app stores it: naive UTC; SQLite keeps SQLAlchemy's text form."""
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        return naive if self.postgres else naive.strftime("%Y-%m-%d %H:%M:%S.%f")

    async def insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        self._tables.add(table)
        if self._sqlite is not None:
            marks = ",".join("?" * len(columns))
            self._sqlite.executemany(
                f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})", rows
            )
            return
        if self._pg is None:
            import asyncpg

            self._pg = await asyncpg.connect(
                make_url(self.url)
                .set(drivername="postgresql")
                .render_as_string(hide_password=False)
            )
        await self._pg.copy_records_to_table(
            table, records=[tuple(row) for row in rows], columns=list(columns)
        )

    async def close(self) -> None:
        """Commit, let the planner know the tables (ANALYZE), and on PostgreSQL move each seeded
        table's id sequence past the ids given here."""
        if self._sqlite is not None:
            self._sqlite.commit()
            self._sqlite.execute("ANALYZE")
            self._sqlite.close()
            return
        if self._pg is None:
            return
        for table in sorted(self._tables):
            sequence = await self._pg.fetchval(
                "SELECT pg_get_serial_sequence(table_name, column_name) FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = $1 AND column_name = 'id'",
                table,
            )
            if sequence is not None:
                await self._pg.execute(
                    f"SELECT setval($1, max(id)) FROM {table} HAVING count(*) > 0", sequence
                )
        await self._pg.execute("ANALYZE")
        await self._pg.close()


async def migrated(folder: str, name: str, database_url: str | None) -> tuple[str, Seeder]:
    """A database with the current schema and nothing in it: a new SQLite file `name` in
    `folder`, or the PostgreSQL of `database_url` with its public schema dropped and recreated.
    Returns its URL and a seeder for it."""
    url = database_url or f"sqlite+aiosqlite:///{Path(folder) / name}"
    engine = create_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            async with engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url, Seeder(url)


def business_file(folder: Path) -> Path:
    """The test business with quiet hours moved to 04:00-04:01, so a run that crosses the evening
    is not held until the morning (the policy itself is tested elsewhere)."""
    text = (Path(__file__).resolve().parent.parent / "tests" / "data" / "business.toml").read_text()
    path = folder / "business.toml"
    path.write_text(text.replace('quiet_hours = "21:00-10:00"', 'quiet_hours = "04:00-04:01"'))
    return path


def bot_environment(
    token: str, database_url: str, api: str, business: str, *, admin_chat: int | None = None
) -> None:
    """A bot process's settings, as an owner's environment would give them to `carebot run`."""
    os.environ.update(
        BOT_TOKEN=token,
        TELEGRAM_API_URL=api,
        DATABASE_URL=database_url,
        BUSINESS_FILE=business,
        SECRET_KEY="bench-secret-key-not-for-production",
    )
    if admin_chat is not None:
        os.environ["ADMIN_CHAT_ID"] = str(admin_chat)


# Customers who went through onboarding (which is not what these benches measure).
ONBOARDED_COLUMNS = (
    "tg_user_id",
    "name",
    "language",
    "phone",
    "marketing_opt_out",
    "created_at",
    "onboarded_at",
    "data_consent_version",  # agreed to the test business's privacy text (else offers wait for it)
)
PRIVACY_VERSION = "2026-11-01"  # tests/data/business.toml's


def onboarded(
    first_id: int,
    count: int,
    now: Any,
    *,
    name: str = "Клиент",
    phone: str = "+7916",
    opted_out: bool = False,
) -> Iterator[tuple[Any, ...]]:
    """`count` rows for ONBOARDED_COLUMNS from Telegram id `first_id`: "<name> n", "<phone>nnnnnnn"."""
    return (
        (first_id + n, f"{name} {n}", "ru", f"{phone}{n:07d}", opted_out, now, now, PRIVACY_VERSION)
        for n in range(count)
    )


def line(title: str, figures: dict[str, Any]) -> None:
    print(f"{title}: " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale_arguments(description: str) -> argparse.Namespace:
    """`--scale` (a tenth of the base: 0.1) and `--database-url`, for the benches that seed a base."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scale", type=float, default=1.0, help="0.1: a tenth of the base")
    database_argument(parser)
    return parser.parse_args()


async def seed_then_measure(
    args: argparse.Namespace,
    filename: str,
    seed: Callable[[Seeder, float], Awaitable[dict[str, int]]],
    measure: Callable[[str, Path], Awaitable[None]],
) -> None:
    """A new base (a SQLite file in a temporary folder, or the scratch PostgreSQL of
    `--database-url`), seeded at `--scale` and timed; then `measure(url, folder)`; then the
    peak memory."""
    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, filename, args.database_url)
        started = time.perf_counter()
        counts = await seed(seeder, args.scale)
        line("seeded", {**counts, "s": f"{time.perf_counter() - started:.1f}"})
        await measure(url, Path(folder))
        line("done", {"peak_rss_mb": f"{peak_rss_mb():.0f}"})
