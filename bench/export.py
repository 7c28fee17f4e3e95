"""Export benchmark: prints figures, asserts nothing (these machines are shared and noisy).

    python bench/export.py [--customers 100000] [--visits 1000000] [--database-url URL]

Seeds a base (customers with consents and a note for one in ten, visits spread over them) straight
through the driver, then runs `carebot export --to DIR` as the owner would (its own process, so its
peak memory is its own: RUSAGE_CHILDREN), and zips the files as `/export` does to show the size
of the archive the admin chat would get (Telegram carries 50 MB). Prints seconds, CPU seconds,
rows/s, peak RSS and sizes. What it checks by its figures (issue 16): the base is streamed, so
the peak memory stays flat however large the base.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    ONBOARDED_COLUMNS,
    bot_environment,
    line,
    migrated,
    onboarded,
    run_carebot,
    volume_arguments,
)

TOKEN = "123456:BENCH-token-for-carebot-export"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
BATCH = 50_000


async def seed(url: str, folder: str, customers: int, visits: int) -> None:
    _, seeder = await migrated(
        folder, "export.sqlite3", url if url.startswith("postgresql") else None
    )
    now = seeder.stamp(NOW)
    for first in range(0, customers, BATCH):
        count = min(BATCH, customers - first)
        # ids 1..N given, no Telegram account (as if imported): the seeded rows name them by id
        rows = [(1 + first + n, *row[1:]) for n, row in enumerate(onboarded(first, count, now))]
        await seeder.insert("customers", ("id", *ONBOARDED_COLUMNS[1:]), rows)
        await seeder.insert(
            "consents",
            ("customer_id", "kind", "granted", "version", "at", "via"),
            [(r[0], "personal_data", True, "2026-11-01", now, "button") for r in rows],
        )
        await seeder.insert(
            "staff_notes",
            ("customer_id", "text", "staff_id", "staff_name", "at"),
            [(r[0], "любит холодный чай", 1, "Ольга", now) for r in rows if r[0] % 10 == 0],
        )
    rng = random.Random(16)
    services = ("manicure", "pedicure")
    masters = ("anna", "olga", None)
    for first in range(0, visits, BATCH):
        count = min(BATCH, visits - first)
        await seeder.insert(
            "purchases",
            ("customer_id", "amount_minor", "service_id", "master_id", "at", "staff_name"),
            [
                (
                    1 + (first + n) % customers,
                    rng.randrange(1000, 4000) * 100,
                    services[(first + n) % 2],
                    masters[(first + n) % 3],
                    seeder.stamp(
                        NOW - timedelta(days=rng.randrange(1000), minutes=rng.randrange(600))
                    ),
                    "Ольга",
                )
                for n in range(count)
            ],
        )
    await seeder.close()


def export(folder: Path) -> dict[str, object]:
    run = run_carebot("export", "export", "--to", str(folder))
    rows = sum(int(s.rsplit("rows=", 1)[1]) for s in run.stdout.splitlines() if "rows=" in s)
    return {
        **run.figures(rows),
        "csv_mb": f"{sum(p.stat().st_size for p in folder.iterdir()) / 2**20:.1f}",
    }


def archive_mb(folder: Path, target: Path) -> str:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
    return f"{target.stat().st_size / 2**20:.1f}"


async def main() -> None:
    args, url_given = volume_arguments(__doc__.splitlines()[0])
    with tempfile.TemporaryDirectory() as folder:
        url = url_given or f"sqlite+aiosqlite:///{Path(folder) / 'export.sqlite3'}"
        started = time.perf_counter()
        await seed(url, folder, args.customers, args.visits)
        line(
            "seeded",
            {
                "customers": args.customers,
                "visits": args.visits,
                "seconds": f"{time.perf_counter() - started:.1f}",
            },
        )
        bot_environment(TOKEN, url, "", str(ROOT / "tests" / "data" / "business.toml"))
        os.environ.pop("TELEGRAM_API_URL", None)
        out = Path(folder) / "out"
        database = "postgresql" if url.startswith("postgresql") else "sqlite"
        figures = export(out)
        figures["zip_mb"] = archive_mb(out, Path(folder) / "export.zip")
        line(f"carebot export database={database}", figures)


if __name__ == "__main__":
    asyncio.run(main())
