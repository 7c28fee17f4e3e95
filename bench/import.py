"""Import benchmark: prints figures, asserts nothing (these machines are shared and noisy).

    python bench/import.py [--customers 100000] [--visits 1000000] [--database-url URL]

Writes a customers CSV (the generic template, UTF-8) and a visits CSV (YCLIENTS-shaped:
cp1251, semicolons, Russian dates and amounts) with a fixed seed, then runs
`carebot import customers FILE --apply` and `carebot import visits FILE --apply` as the owner
would (each its own process, so its peak memory is its own: RUSAGE_CHILDREN), and both again
to show that a second import adds nothing. Prints rows/s, seconds and peak RSS of each run.
Goal (issue 16): both imports under 60 s in all on SQLite, each under 300 MB.

SQLite by default (a new file per run); `--database-url postgresql+asyncpg://…` (or
CAREBOT_TEST_POSTGRES_URL with `--postgres`) runs the same on PostgreSQL, whose public schema is
dropped and recreated first (a scratch database).
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    bot_environment,
    line,
    migrated,
    run_carebot,
    volume_arguments,
)

TOKEN = "123456:BENCH-token-for-carebot-import"
SERVICES = ("Маникюр с покрытием", "Педикюр", "manicure", "pedicure")
MASTERS = ("Анна", "Ольга", "")


def phone_of(n: int) -> str:
    return f"+7916{n:07d}"


def write_customers(path: Path, count: int, seed: int = 16) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["name", "phone", "birthday", "notes", "email"])
        for n in range(count):
            birthday = date(1960, 1, 1) + timedelta(days=rng.randrange(16000))
            writer.writerow(
                [
                    f"Клиент {n}",
                    phone_of(n),
                    birthday.isoformat() if n % 3 else "",
                    "любит красный" if n % 10 == 0 else "",
                    f"c{n}@example.com" if n % 4 == 0 else "",
                ]
            )


def write_visits(path: Path, count: int, customers: int, seed: int = 16) -> None:
    """YCLIENTS-shaped: `Дата;Время;Клиент;Телефон;Услуга;Сотрудник;Сумма`, cp1251."""
    rng = random.Random(seed)
    first = date(2023, 1, 1)
    with path.open("w", encoding="cp1251", newline="") as file:
        writer = csv.writer(file, delimiter=";")
        writer.writerow(["Дата", "Время", "Клиент", "Телефон", "Услуга", "Сотрудник", "Сумма"])
        for n in range(count):
            customer = n % customers
            day = first + timedelta(days=(n // customers) * 21 + rng.randrange(21))
            service = SERVICES[(customer + n // customers) % 4]
            writer.writerow(
                [
                    day.strftime("%d.%m.%Y"),
                    f"{10 + rng.randrange(9)}:{rng.choice(('00', '30'))}",
                    f"Клиент {customer}",
                    f"8 916 {customer // 10000:03d}-{customer // 100 % 100:02d}-{customer % 100:02d}",
                    service,
                    MASTERS[n % 3],
                    f"{rng.randrange(10, 40)} {rng.choice(('000', '500'))},00",
                ]
            )


def run(kind: str, path: Path) -> dict[str, object]:
    done = run_carebot(f"import {kind}", "import", kind, str(path), "--apply", "--lang", "en")
    rows = sum(1 for _ in path.open("rb")) - 1
    summary = [s for s in done.stdout.splitlines() if s.strip()][2:5]
    return {**done.figures(rows), "report": " | ".join(summary)}


async def main() -> None:
    args, url_given = volume_arguments(__doc__.splitlines()[0])
    with tempfile.TemporaryDirectory() as folder:
        url, _ = await migrated(folder, "import.sqlite3", url_given)
        bot_environment(TOKEN, url, "", str(ROOT / "tests" / "data" / "business.toml"))
        os.environ.pop("TELEGRAM_API_URL", None)
        customers = Path(folder) / "customers.csv"
        visits = Path(folder) / "visits.csv"
        started = time.perf_counter()
        write_customers(customers, args.customers)
        write_visits(visits, args.visits, args.customers)
        line(
            "files",
            {
                "customers": args.customers,
                "visits": args.visits,
                "seconds": f"{time.perf_counter() - started:.1f}",
                "mb": f"{(customers.stat().st_size + visits.stat().st_size) / 2**20:.0f}",
            },
        )
        database = "postgresql" if url.startswith("postgresql") else "sqlite"
        total = cpu = 0.0
        for round_ in ("first", "again"):
            for kind, path in (("customers", customers), ("visits", visits)):
                figures = run(kind, path)
                if round_ == "first":
                    total += float(str(figures["seconds"]))
                    cpu += float(str(figures["cpu_seconds"]))
                line(f"import {kind} {round_} database={database}", figures)
        line(
            "first import of both",
            {"seconds": f"{total:.1f}", "cpu_seconds": f"{cpu:.1f}", "goal_seconds": 60},
        )


if __name__ == "__main__":
    asyncio.run(main())
