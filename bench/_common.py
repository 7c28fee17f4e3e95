"""What the benchmarks share: a migrated SQLite file to seed, and one printed line per run."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.db.engine import create_engine
from bot.db.migrate import upgrade


async def migrated_sqlite(folder: str, name: str) -> tuple[Path, str]:
    """A new SQLite file with the current schema: its path (to seed with sqlite3) and its URL."""
    path = Path(folder) / name
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return path, url


def line(title: str, figures: dict[str, Any]) -> None:
    print(f"{title}: " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
