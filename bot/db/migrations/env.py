"""Alembic environment: runs on the connection handed in by `bot.db.migrate.upgrade`.

For `alembic revision --autogenerate` during development, set DATABASE_URL and run
`alembic -c alembic.ini revision --autogenerate -m "..."` from the project root.
"""

from __future__ import annotations

import asyncio

from alembic import context

from bot.db.models import Base

target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from bot.db.engine import create_engine
    from bot.settings import load_settings

    async def _main() -> None:
        engine = create_engine(load_settings().database_url)
        async with engine.begin() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(_main())
