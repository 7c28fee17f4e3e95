"""Apply Alembic migrations from code (start-up and `carebot migrate`).

Alembic is imported only when the database is behind: importing it costs the running bot
about 12 MB for good, and on every start but the first after an update there is nothing to do.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

# Alembic's package-resource form: found with importlib.resources, in a wheel as in the source tree.
MIGRATIONS = "bot.db:migrations"


def head() -> str:
    """The newest revision: our revisions are numbered like their files (0001_initial.py is '0001')."""
    versions = resources.files("bot.db") / "migrations" / "versions"
    return max(
        item.name.split("_", 1)[0]
        for item in versions.iterdir()
        if item.name[:1].isdigit() and "_" in item.name and item.name.endswith(".py")
    )


async def current(engine: AsyncEngine) -> str | None:
    """The database's revision, or None for a new database."""

    def _read(connection: Any) -> str | None:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()

    async with engine.connect() as connection:
        return await connection.run_sync(_read)


# Several instances starting at once: one migrates under this PostgreSQL advisory lock, the
# others wait for it and then find the schema current ("carebot" in ASCII, plus one; the planners'
# lock is bot/leader.py's).
MIGRATIONS_LOCK = 0x63617265626F75


async def upgrade(engine: AsyncEngine) -> None:
    if await current(engine) == head():
        return
    if engine.dialect.name != "postgresql":
        await _upgrade(engine)
        return
    async with engine.connect() as lock:
        lock = await lock.execution_options(isolation_level="AUTOCOMMIT")
        await lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATIONS_LOCK})
        try:
            await _upgrade(engine)
        finally:
            await lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATIONS_LOCK})


async def _upgrade(engine: AsyncEngine) -> None:
    if await current(engine) == head():  # another instance did it while this one waited
        return

    def _run(connection: Any) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(_run)
