"""Settings, the business file, templates, logs and the FSM storage."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.business import load_business
from bot.db.repositories import Database
from bot.logs import LogfmtFormatter, redact
from bot.rendering import Renderer, pick_language
from bot.settings import ConfigError, load_settings
from handlers.fsm_storage import SqlStorage
from tests import PROJECT_ROOT

TOKEN = "123456:TEST-token-for-carebot-end-to-end"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "DATABASE_URL",
        "TIMEZONE",
        "REDIS_URL",
        "ADMIN_CHAT_ID",
        "TELEGRAM_API_URL",
        "BUSINESS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///data/carebot.sqlite3"
    assert settings.tz == ZoneInfo("Europe/Moscow") and settings.redis_url is None
    (tmp_path / ".env").write_text(
        "ADMIN_CHAT_ID=-100123\nTELEGRAM_API_URL=http://127.0.0.1:8081/\n"
    )
    settings = load_settings()
    assert (
        settings.admin_chat_id == -100123 and settings.telegram_api_url == "http://127.0.0.1:8081"
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({}, "setting BOT_TOKEN is missing"),
        ({"BOT_TOKEN": "nope"}, "setting BOT_TOKEN is malformed"),
        ({"BOT_TOKEN": TOKEN, "ADMIN_CHAT_ID": "admins"}, "setting ADMIN_CHAT_ID is malformed"),
        ({"BOT_TOKEN": TOKEN, "TIMEZONE": "Moscow"}, "setting TIMEZONE is malformed"),
        ({"BOT_TOKEN": TOKEN, "DATABASE_URL": "mysql://x"}, "setting DATABASE_URL is malformed"),
        (
            {"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": "localhost"},
            "setting TELEGRAM_API_URL is malformed",
        ),
    ],
)
def test_bad_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], line: str
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("BOT_TOKEN", "DATABASE_URL", "TIMEZONE", "ADMIN_CHAT_ID", "TELEGRAM_API_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(line)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (None, "not found"),
        ("name = ", "not valid TOML"),
        ('privacy_version = "1"\n[coupons.welcome]\npercent = 10\nvalid_days = 3', "field name"),
        (
            'name = "X"\nprivacy_version = "1"\n[coupons.welcome]\npercent = 150\nvalid_days = 3',
            "field coupons.welcome.percent",
        ),
        (
            'name = "X"\nprivacy_version = "1"\n[coupons.welcome]\npercent = 5\namount = 5\nvalid_days = 3',
            "give exactly one of percent or amount",
        ),
        (
            'name = "X"\nprivacy_version = "1"\n[coupons.welcome]\npercent = 5\nvalid_days = 3\n'
            '[[masters]]\nid = "a"\nname = "A"\n[masters.hours]\nmon = "19:00-10:00"',
            "field masters.0.hours",
        ),
        (
            'name = "X"\nprivacy_version = "1"\n[coupons.welcome]\npercent = 5\nvalid_days = 3\n'
            '[[services]]\nid = "s"\nname = "S"\nduration_minutes = 60\nprice = 1\ncycle_days = 20\nmasters = ["ghost"]',
            "unknown master 'ghost'",
        ),
    ],
)
def test_bad_business_file_names_the_field(tmp_path: Path, content: str | None, field: str) -> None:
    path = tmp_path / "business.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_business(path)
    assert field in str(caught.value) and "\n" not in str(caught.value)


def test_committed_example_business_file_is_valid() -> None:
    business = load_business(PROJECT_ROOT / "data" / "business.toml")
    assert business.coupons.welcome.valid_days > 0 and business.services and business.masters


def _carebot(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "BOT_TOKEN",
            "DATABASE_URL",
            "BUSINESS_FILE",
            "TIMEZONE",
            "ADMIN_CHAT_ID",
            "REDIS_URL",
            "TELEGRAM_API_URL",
        )
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_stops_with_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = _carebot(["run"], {}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "carebot: setting BOT_TOKEN is missing: set it in the environment or in .env"
    ]
    result = _carebot(
        ["run"], {"BOT_TOKEN": TOKEN, "BUSINESS_FILE": str(tmp_path / "none.toml")}, tmp_path
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "business file" in result.stderr and "Traceback" not in result.stderr


def test_cli_migrate_creates_the_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/nested/carebot.sqlite3"
    result = _carebot(["migrate"], {"BOT_TOKEN": TOKEN, "DATABASE_URL": url}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "nested" / "carebot.sqlite3").exists()
    assert "database is up to date" in result.stderr


def test_head_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from bot.db.migrate import MIGRATIONS, head

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head() == ScriptDirectory.from_config(config).get_current_head()


def test_alembic_is_loaded_only_when_the_database_is_behind(tmp_path: Path) -> None:
    """A start on an up-to-date database leaves alembic (about 12 MB) unloaded."""
    script = (
        "import asyncio, sys\n"
        "from bot.db.engine import create_engine\n"
        "from bot.db.migrate import current, head, upgrade\n"
        "async def main():\n"
        f"    engine = create_engine('sqlite+aiosqlite:///{tmp_path}/carebot.sqlite3')\n"
        "    before = await current(engine)\n"
        "    await upgrade(engine)\n"
        "    print(before, await current(engine) == head(), 'alembic' in sys.modules)\n"
        "    await engine.dispose()\n"
        "asyncio.run(main())\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        for _ in range(2)
    ]
    assert runs[0] == ["None", "True", "True"]  # a new database: migrated by alembic
    assert runs[1][1:] == ["True", "False"]  # up to date: nothing loaded


def test_templates_escape_customer_text_but_not_labels() -> None:
    render = Renderer(ZoneInfo("Europe/Moscow"))
    text = render.text(
        "ru",
        "returning",
        name="<b>Ann</b> & Co",
        business=load_business(PROJECT_ROOT / "tests" / "data" / "business.toml"),
    )
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; Co" in text and "<b>Ann" not in text
    assert render.label("en", "keep_name", name="Ann & Co") == "Yes, Ann & Co"


def test_every_template_exists_in_both_languages() -> None:
    ru = {p.name for p in (PROJECT_ROOT / "templates" / "ru").iterdir()}
    en = {p.name for p in (PROJECT_ROOT / "templates" / "en").iterdir()}
    assert ru == en


def test_override_directory_wins(tmp_path: Path) -> None:
    (tmp_path / "ru").mkdir()
    (tmp_path / "ru" / "forget_cancelled.html").write_text("Свой текст владельца")
    render = Renderer(ZoneInfo("Europe/Moscow"), [tmp_path, PROJECT_ROOT / "templates"])
    assert render.text("ru", "forget_cancelled") == "Свой текст владельца"
    assert render.text("en", "forget_cancelled") == "All right, nothing is erased 🙂"


@pytest.mark.parametrize("code", [None, "ru", "uk", "de", "en", "en-GB", "EN"])
def test_language(code: str | None) -> None:
    assert pick_language(code) == ("en" if code and code.lower().startswith("en") else "ru")


def test_logs_are_one_line_and_hide_phones_and_dates() -> None:
    assert (
        redact("phone +7 916 123-45-67 and 79161234567, born 14.03.1990")
        == "phone <phone> and <phone>, born <date>"
    )
    assert redact("user_id=123456789 update_id=42") == "user_id=123456789 update_id=42"
    try:
        raise ValueError("contact +79161234567\nsecond line")
    except ValueError:
        record = logging.LogRecord(
            "carebot",
            logging.ERROR,
            __file__,
            1,
            "failed for %s",
            ("8 916 123 45 67",),
            sys.exc_info(),
        )
    line = LogfmtFormatter().format(record)
    assert "\n" not in line and "916" not in line and "level=error" in line


async def test_fsm_state_survives_a_new_storage(db: Database) -> None:
    key = StorageKey(bot_id=1, chat_id=7, user_id=7)
    storage = SqlStorage(db)
    await storage.set_state(key, "Onboarding:phone")
    await storage.set_data(key, {"source": "vk"})
    assert await storage.update_data(key, {"step": 2}) == {"source": "vk", "step": 2}
    reopened = SqlStorage(db)
    assert await reopened.get_state(key) == "Onboarding:phone"
    assert await reopened.get_data(key) == {"source": "vk", "step": 2}
    await reopened.set_state(key, None)
    await reopened.set_data(key, {})
    assert await storage.get_state(key) is None and await storage.count() == 0


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(db: Database, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite pragmas only")
    from sqlalchemy import text

    async with db.engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() == 10_000
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1


async def test_writers_take_turns_in_order_and_readers_wait_for_none(
    db: Database, backend: str
) -> None:
    """Sixty writers beside one slow writer all get their turn, first come first served (on SQLite
    they queue in the process; SQLite's busy handler alone starved some of them past its
    timeout under the sender's load), and a read beside the slow writer sees the last commit."""
    import asyncio
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from bot.db.models import Customer

    async def add(n: int, order: list[int], hold: float = 0.0) -> None:
        async with db.transaction() as repos:
            repos.session.add(
                Customer(
                    tg_user_id=1000 + n,
                    name=f"Клиент {n}",
                    language="ru",
                    created_at=datetime(2026, 11, 24, tzinfo=UTC),
                )
            )
            await repos.session.flush()  # the write lock is ours from here
            order.append(n)
            await asyncio.sleep(hold)

    order: list[int] = []
    slow = asyncio.create_task(add(0, order, hold=0.5))
    await asyncio.sleep(0.1)  # the slow writer holds the write lock now
    async with db.reading() as repos:  # does not wait for it
        assert await repos.session.scalar(select(func.count(Customer.id))) == 0
    assert not slow.done()
    await asyncio.gather(slow, *(add(n, order) for n in range(1, 61)))
    async with db.reading() as repos:
        assert await repos.session.scalar(select(func.count(Customer.id))) == 61
    if backend == "sqlite":
        assert order == list(range(61))


async def test_a_transaction_inside_a_transaction_is_refused_at_once(
    db: Database, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("on PostgreSQL it is simply a second connection")
    async with db.transaction():
        with pytest.raises(RuntimeError, match="inside a transaction"):
            async with db.transaction():
                pass
    async with db.transaction():  # and the lock was let go
        pass
