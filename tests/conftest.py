"""Fixtures: a fresh database per test (SQLite, plus PostgreSQL when CAREBOT_TEST_POSTGRES_URL
is set), a fixed clock, the Bot API test server, and the real bot wired as `carebot run` does."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from bot.business import Business, load_business
from bot.clock import FixedClock
from bot.db.engine import create_engine
from bot.db.migrate import upgrade
from bot.db.repositories import Database
from bot.settings import Settings
from tests.harness import InProcessBot, RunningBot
from tests.telegram_server import TelegramServer

TOKEN = "123456:TEST-token-for-carebot-end-to-end"
BUSINESS_FILE = Path(__file__).parent / "data" / "business.toml"
POSTGRES_URL = os.environ.get("CAREBOT_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
ADMIN_CHAT = -1001234567890


# ---- databases: migrated once per session, emptied or copied per test ------------------------
# Running every Alembic migration cost each database test about 0.25 s. The schema is built once
# per session from the current head (so a new migration is picked up by the next run):
# SQLite copies that file for every test; PostgreSQL keeps one database per test process (so
# parallel workers, and other runs against the same server, never share one) and empties it
# before each test: DELETE with the foreign-key triggers off and the sequences reset takes about
# a millisecond where TRUNCATE took 0.1-0.4 s and CREATE DATABASE … TEMPLATE 0.07-0.2 s.
# tests/unit/test_migrations.py still runs every migration up and down on both databases.


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


class SqliteDatabases:
    """A migrated database file, copied for each test."""

    def __init__(self, template: Path) -> None:
        self.template = template

    def copy(self, folder: Path) -> str:
        path = folder / "carebot.sqlite3"
        shutil.copy(self.template, path)
        return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteDatabases:
    path = tmp_path_factory.mktemp("template") / "carebot.sqlite3"
    asyncio.run(
        _migrate(f"sqlite+aiosqlite:///{path}")
    )  # disposed: the WAL is checkpointed into the file
    assert not path.with_name(path.name + "-wal").exists()
    return SqliteDatabases(path)


class PostgresDatabases:
    """Databases on the server of CAREBOT_TEST_POSTGRES_URL, named after its database and this
    process (`<name>_t<pid>`, `<name>_t<pid>_<what>`); those of a run that was killed are dropped
    by the next one."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.prefix = f"{self.url.database}_t{os.getpid()}"
        self._empty = ""

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def _dsn(self, name: str | None = None) -> str:
        return self.url.set(
            drivername="postgresql", database=name or self.url.database
        ).render_as_string(hide_password=False)

    async def execute(self, sql: str, *, on: str | None = None) -> None:
        connection = await asyncpg.connect(self._dsn(on))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def create(self, name: str) -> str:
        """A new empty database `<prefix>_<name>` (or the process's own with no name); its URL."""
        database = f"{self.prefix}_{name}" if name else self.prefix
        await self.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await self.execute(f'CREATE DATABASE "{database}"')
        return self.url_of(database)

    async def drop(self, url: str) -> None:
        await self.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    async def set_up(self) -> None:
        await self._drop_leftovers()
        await _migrate(await self.create(""))
        connection = await asyncpg.connect(self._dsn(self.prefix))
        try:
            tables = [
                r[0]
                for r in await connection.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename != 'alembic_version'"
                )
            ]
            sequences = [
                r[0]
                for r in await connection.fetch(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
                )
            ]
        finally:
            await connection.close()
        resets = [f"SELECT setval('\"{s}\"', 1, false)" for s in sequences]
        self._empty = ";".join(
            [
                "BEGIN",
                "SET LOCAL session_replication_role = replica",
                *(f'DELETE FROM "{t}"' for t in tables),
                *resets,
                "COMMIT",
            ]
        )

    async def empty(self) -> str:
        """The process's database, as empty as when it was migrated; its URL."""
        await self.execute(self._empty, on=self.prefix)
        return self.url_of(self.prefix)

    async def _drop_leftovers(self) -> None:
        connection = await asyncpg.connect(self._dsn())
        try:
            names = [
                r[0]
                for r in await connection.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1",
                    f"{self.url.database}\\_t%",
                )
            ]
            for name in names:
                pid = name.removeprefix(f"{self.url.database}_t").split("_", 1)[0]
                if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    async def tear_down(self) -> None:
        await self.drop(self.url_of(self.prefix))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    assert POSTGRES_URL
    databases = PostgresDatabases(POSTGRES_URL)
    asyncio.run(databases.set_up())
    yield databases
    asyncio.run(databases.tear_down())


@pytest.fixture(params=BACKENDS)
def database_template(request: pytest.FixtureRequest) -> SqliteDatabases | PostgresDatabases:
    """Built on first use (outside the test's event loop, so a backend never asked for costs nothing)."""
    return request.getfixturevalue(
        "sqlite_template" if request.param == "sqlite" else "postgres_databases"
    )


@pytest.fixture
async def database_url(
    database_template: SqliteDatabases | PostgresDatabases, tmp_path: Path
) -> str:
    """A database at the current head, empty, this test's own."""
    if isinstance(database_template, SqliteDatabases):
        return database_template.copy(tmp_path)
    return await database_template.empty()


@pytest.fixture
async def empty_database_url(
    database_template: SqliteDatabases | PostgresDatabases, tmp_path: Path
) -> AsyncIterator[str]:
    """A database with no schema at all (for the migrations themselves)."""
    if isinstance(database_template, SqliteDatabases):
        yield f"sqlite+aiosqlite:///{tmp_path}/empty.sqlite3"
        return
    url = await database_template.create("empty")
    yield url
    await database_template.drop(url)


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
async def telegram(request: pytest.FixtureRequest) -> AsyncIterator[TelegramServer]:
    server = TelegramServer(TOKEN)
    await server.start()
    yield server
    await server.stop()
    if request.node.get_closest_marker("stand_in_refusals"):  # the test makes them on purpose
        return
    # every press answered, once: a spinning button, or a second answer Telegram refuses, is a bug
    refused = [c for c in server.calls if c.method == "answerCallbackQuery" and c.error_code]
    assert not refused, refused
    assert not server.unanswered_presses(), server.unanswered_presses()


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
    if database_url.startswith(
        "postgresql"
    ):  # its key file would go to ./data, shared by every run
        values["secret_key"] = "carebot-tests-secret-key"
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "in_process: `carebot` is the app without HTTP and polling "
        "(tests/harness.py InProcessBot), for plain dialogue tests",
    )
    config.addinivalue_line(
        "markers",
        "http: `carebot` polls the test server over HTTP even in a module "
        "marked in_process (restarts, pacing)",
    )
    config.addinivalue_line(
        "markers",
        "stand_in_refusals: the test makes the stand-in refuse button answers on purpose "
        "(the telegram fixture's every-press-answered-once check is skipped)",
    )


@pytest.fixture
async def carebot(
    request: pytest.FixtureRequest, telegram: TelegramServer, database_url: str, clock: FixedClock
) -> AsyncIterator[RunningBot]:
    """The bot as `carebot run` runs it, polling the test server; in a test marked `in_process`,
    the same app fed in-process (tests/harness.py). Either way `Person.quiet()` waits until it is idle."""
    in_process = request.node.get_closest_marker(
        "in_process"
    ) and not request.node.get_closest_marker("http")
    kind = InProcessBot if in_process else RunningBot
    running = kind(make_settings(telegram, database_url), clock, telegram)
    await running.start()
    yield running
    await running.stop()
