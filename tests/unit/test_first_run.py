"""The first run, tried as a new user would: each wrong setting is one line and the right exit code;
the SQLite file guard."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.db.engine import create_engine
from bot.db.guard import FileGuard
from bot.settings import ConfigError, load_settings
from tests import PROJECT_ROOT

TOKEN = "123456:TEST-token-for-carebot-end-to-end"
SETTINGS = (
    "BOT_TOKEN",
    "DATABASE_URL",
    "BUSINESS_FILE",
    "TIMEZONE",
    "ADMIN_CHAT_ID",
    "REDIS_URL",
    "TELEGRAM_API_URL",
    "TELEGRAM_TIMEOUT",
)
REPLACE = "replace the example token with yours from @BotFather"


def carebot(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    business = {
        "BUSINESS_FILE": str(PROJECT_ROOT / "data" / "business.toml"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{cwd}/carebot.sqlite3",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**clean, **business, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    [line] = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    return line


def test_the_readme_command_typed_as_written_asks_for_your_token(tmp_path: Path) -> None:
    [token] = re.findall(
        r"BOT_TOKEN=(\S+) \.venv/bin/carebot run", (PROJECT_ROOT / "README.md").read_text()
    )
    result = carebot(["run"], {"BOT_TOKEN": token}, tmp_path)
    assert result.returncode == 2 and REPLACE in one_line(result)


def test_env_example_holds_a_placeholder_that_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((PROJECT_ROOT / ".env.example").read_text())
    result = carebot(["run"], {}, tmp_path)
    assert result.returncode == 2
    assert (
        one_line(result).startswith("carebot: setting BOT_TOKEN is malformed")
        and REPLACE in result.stderr
    )


@pytest.mark.parametrize(
    "token", ["123456789:your-token", "123456789:your-token-from-BotFather", "nope"]
)
def test_example_and_malformed_tokens_say_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, token: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(bot_token=token)
    assert REPLACE in str(caught.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", ["run", "tick"])
def test_redis_url_malformed_or_unreachable_is_one_line(tmp_path: Path, command: str) -> None:
    result = carebot([command], {"BOT_TOKEN": TOKEN, "REDIS_URL": "nonsense"}, tmp_path)
    assert result.returncode == 2
    assert one_line(result).startswith(
        "carebot: setting REDIS_URL is malformed: must start with redis://"
    )
    result = carebot(
        [command],
        {"BOT_TOKEN": TOKEN, "REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"},
        tmp_path,
    )
    assert result.returncode == 1
    assert one_line(result).startswith("carebot: cannot reach Redis (REDIS_URL): ")


def test_a_positive_admin_chat_id_is_refused(tmp_path: Path) -> None:
    result = carebot(["run"], {"BOT_TOKEN": TOKEN, "ADMIN_CHAT_ID": "12345"}, tmp_path)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("carebot: setting ADMIN_CHAT_ID is malformed: a group's id is negative")
    assert "/chatid" in line


async def test_file_guard_sees_the_file_replaced_made_read_only_or_refusing_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "carebot.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    guard = FileGuard.watch(engine)
    assert guard is not None and guard.path == path and guard.problem() is None
    path.chmod(0o444)
    assert guard.problem() == "turned read-only"
    path.chmod(0o644)
    assert guard.problem() is None
    async with engine.connect() as conn:  # a write SQLite refuses
        await conn.execute(text("PRAGMA query_only = ON"))
        with pytest.raises(Exception, match="readonly database"):
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        await conn.execute(text("PRAGMA query_only = OFF"))
    assert (guard.problem() or "").startswith(
        "refused a write (attempt to write a readonly database"
    )
    await engine.dispose()
    other = FileGuard(path)
    backup = tmp_path / "backup.sqlite3"
    backup.write_bytes(path.read_bytes())
    backup.replace(path)  # a backup restored over the file in use
    assert other.problem() == "was replaced by another file"
    other = FileGuard(path)
    path.unlink()
    assert other.problem() == "was deleted"
    assert (
        FileGuard.watch(create_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/test")) is None
    )


@pytest.mark.parametrize(
    "token",
    [
        TOKEN,
        "123:" + "A" * 20,
        "123456789:AAH-_x" + "y" * 30,
        "12:" + "A" * 30,
        "123456:short",
        "123456:" + "A" * 19 + " ",
        "abc:" + "A" * 30,
        "123456" + "A" * 30,
        "123456:" + "A b" * 10,
        ":" + "A" * 30,
    ],
)
def test_every_token_settings_accept_is_one_aiogram_accepts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, token: str
) -> None:
    """The settings check (the core, no aiogram) is stricter than aiogram's validate_token, which
    `Bot()` runs in the composition root: a token that passes start-up never fails there."""
    from aiogram.utils.token import TokenValidationError, validate_token

    monkeypatch.chdir(tmp_path)
    try:
        accepted = load_settings(bot_token=token).bot_token.get_secret_value()
    except ConfigError:
        return
    try:
        validate_token(accepted)
    except TokenValidationError:
        pytest.fail(f"settings accept {token!r}, aiogram does not")
