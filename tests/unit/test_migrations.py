"""Migrations up and down on both databases; 0009's CHECK constraints and `error_code` backfill."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.db.engine import create_engine
from bot.db.migrate import MIGRATIONS
from bot.db.models import Base


def _alembic(connection: Any, action: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


def _differences(connection: Any) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return compare_metadata(context, Base.metadata)


OLD_ROWS = [  # (key, state, last_error) as 0008 left them, and the code 0009 gives them
    ("a", "failed", "403 Forbidden: bot was blocked by the user", "blocked"),
    ("b", "skipped", "blocked", "blocked"),
    ("c", "failed", "gave up: 502 Bad Gateway", "gave_up"),
    ("d", "failed", "400 Bad Request: chat not found", "refused"),
    ("e", "expired", "late", "late"),
    ("f", "skipped", "opted_out", "opted_out"),
    ("g", "skipped", "cancelled", "cancelled"),
    ("h", "skipped", "booking is cancelled", "obsolete"),
    ("i", "sent", None, None),
    ("j", "pending", "quiet_hours", None),
]


async def test_every_migration_up_and_down_and_0009_backfills(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_alembic, "upgrade", "0008")
            for key, state, error, _ in OLD_ROWS:
                await connection.execute(
                    text(
                        "INSERT INTO outbox (key, kind, template, data, not_before, not_after, due_at, state, attempts,"
                        " last_error, created_at) VALUES (:key, 'marketing', 't', '{}', :at, :at, :at, :state, 0,"
                        " :error, :at)"
                    ),
                    {"key": key, "state": state, "error": error, "at": datetime(2026, 11, 23, 9)},
                )
            await connection.run_sync(_alembic, "upgrade", "head")
            rows = (await connection.execute(text("SELECT key, error_code FROM outbox"))).all()
            codes: dict[str, str | None] = {key: code for key, code in rows}
            assert codes == {key: code for key, _, _, code in OLD_ROWS}
            assert await connection.run_sync(_differences) == []  # the schema is the models'
        for statement in (
            "UPDATE outbox SET state = 'lost' WHERE key = 'a'",
            "UPDATE outbox SET kind = 'spam' WHERE key = 'a'",
            "UPDATE outbox SET error_code = '403' WHERE key = 'a'",
        ):
            with pytest.raises(IntegrityError):
                async with engine.begin() as connection:
                    await connection.execute(text(statement))
        async with engine.begin() as connection:
            await connection.run_sync(_alembic, "downgrade", "0008")
            await connection.execute(
                text("UPDATE outbox SET state = 'lost' WHERE key = 'a'")
            )  # unchecked again
            await connection.run_sync(_alembic, "downgrade", "base")
            await connection.run_sync(_alembic, "upgrade", "head")
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_0014_lets_a_held_out_row_be_written_and_its_downgrade_drops_them(
    empty_database_url: str,
) -> None:
    """0014's error code `holdout` is checked like the others; going back to 0013 removes the
    held-out rows (never sent: nothing lost), and the code is refused again."""
    engine = create_engine(empty_database_url)
    insert = text(
        "INSERT INTO outbox (key, kind, template, data, not_before, not_after, due_at, state,"
        " attempts, error_code, created_at) VALUES (:key, 'marketing', 't', '{}', :at, :at, :at,"
        " 'skipped', 0, :code, :at)"
    )
    at = datetime(2026, 11, 23, 9)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_alembic, "upgrade", "head")
            await connection.execute(insert, {"key": "held", "code": "holdout", "at": at})
            await connection.execute(insert, {"key": "kept", "code": "cancelled", "at": at})
            await connection.run_sync(_alembic, "downgrade", "0013")
            keys = (await connection.execute(text("SELECT key FROM outbox"))).scalars().all()
            assert keys == ["kept"]
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(insert, {"key": "held", "code": "holdout", "at": at})
        async with engine.begin() as connection:
            await connection.run_sync(_alembic, "upgrade", "head")
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()
