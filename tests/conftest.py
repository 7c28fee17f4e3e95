"""Fixtures: a fresh database per test (SQLite, plus PostgreSQL when CAREBOT_TEST_POSTGRES_URL
is set), a fixed clock, the Bot API test server, and the real bot wired as `carebot run` does."""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import App
from bot.business import Business, load_business
from bot.clock import FixedClock
from bot.db.engine import create_engine
from bot.db.migrate import upgrade
from bot.db.repositories import Database
from bot.settings import Settings
from tests.telegram_server import TelegramServer

TOKEN = "123456:TEST-token-for-carebot-end-to-end"
BUSINESS_FILE = Path(__file__).parent / "data" / "business.toml"
POSTGRES_URL = os.environ.get("CAREBOT_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
ADMIN_CHAT = -1001234567890


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/carebot.sqlite3"
    assert POSTGRES_URL
    engine = create_async_engine(POSTGRES_URL)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def backend(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield Database(engine)
    await engine.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def business() -> Business:
    return load_business(BUSINESS_FILE)


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramServer]:
    server = TelegramServer(TOKEN)
    await server.start()
    yield server
    await server.stop()


class RunningBot:
    """The real app polling the test server; can be stopped and started again (a restart)."""

    def __init__(self, settings: Settings, clock: FixedClock) -> None:
        self.settings = settings
        self.clock = clock
        self.app: App | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.app = await App.create(self.settings, clock=self.clock)
        self._task = asyncio.create_task(self.app.run_polling(handle_signals=False))

    async def stop(self) -> None:
        if self.app and self._task and not self._task.done():
            await self.app.dp.stop_polling()
        if self._task:
            await self._task
        self._task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def db(self) -> Database:
        assert self.app is not None
        return self.app.db


def make_settings(telegram: TelegramServer, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        bot_token=TOKEN,
        telegram_api_url=telegram.url,
        database_url=database_url,
        admin_chat_id=ADMIN_CHAT,
        timezone="Europe/Moscow",
        redis_url=None,
        business_file=BUSINESS_FILE,
    )
    if database_url.startswith("postgresql"):  # its key file would go to ./data, shared by every run
        values["secret_key"] = "carebot-tests-secret-key"
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
async def carebot(telegram: TelegramServer, database_url: str, clock: FixedClock) -> AsyncIterator[RunningBot]:
    running = RunningBot(make_settings(telegram, database_url), clock)
    await running.start()
    yield running
    await running.stop()
