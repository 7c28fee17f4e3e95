"""The installed package, not the source tree: `pip install .` (not editable) into a fresh venv, then
`carebot run` from an empty folder with only BOT_TOKEN set (and TELEGRAM_API_URL, the test server).
It finds its templates, the example business file and the migrations inside the package, and makes
its database under ./data/ of that folder. .ci/run builds the venv and sets CAREBOT_INSTALLED."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TOKEN
from tests.telegram_server import TelegramServer

INSTALLED = os.environ.get("CAREBOT_INSTALLED")  # the `carebot` script of a `pip install .` venv

pytestmark = pytest.mark.skipif(
    not INSTALLED, reason="CAREBOT_INSTALLED (a pip-installed carebot) not set"
)


def test_the_installed_package_is_not_the_source_tree(tmp_path: Path) -> None:
    assert INSTALLED
    python = Path(INSTALLED).parent / "python"
    script = (
        "import bot, bot.templates, bot.data, bot.db\n"
        "from importlib import resources\n"
        "print(bot.__file__)\n"
        "print(len(list((resources.files('bot.templates') / 'ru').iterdir())))\n"
        "print((resources.files('bot.data') / 'business.toml').is_file())\n"
        "print(len(list((resources.files('bot.db') / 'migrations' / 'versions').iterdir())))\n"
    )
    where, templates, business, migrations = subprocess.run(
        [python, "-c", script],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert "site-packages" in where, where
    assert int(templates) > 100 and business == "True" and int(migrations) >= 9


async def test_carebot_run_from_an_empty_folder_with_only_the_token(
    tmp_path: Path, telegram: TelegramServer
) -> None:
    assert INSTALLED
    env = {"PATH": os.environ["PATH"], "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url}
    bot = await asyncio.create_subprocess_exec(
        INSTALLED,
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        anna = telegram.user(3001)
        await anna.send("/start")
        intro = await anna.reply(
            timeout=60
        )  # a bundled template, the example business, Babel's plural
        assert "Студия маникюра «Ноготки»" in intro.text and "он действует 30 дней" in intro.text
    finally:
        bot.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(bot.communicate(), 30)
    log = err.decode()
    assert bot.returncode == 0, log
    assert "running with the example business" in log and "Traceback" not in log
    assert sorted(os.listdir(tmp_path)) == ["data"] and "carebot.sqlite3" in os.listdir(
        tmp_path / "data"
    )


def test_carebot_demo_from_an_empty_folder_with_nothing_set(tmp_path: Path) -> None:
    """`carebot demo` of the installed package: its stand-in and its page's files come from the
    package; one line says where the page is, and the page is there."""
    assert INSTALLED
    with socket.socket() as probe:  # a port free now, for the demo to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = subprocess.Popen(
        [INSTALLED, "demo", "--port", str(port)],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stdout is not None
        line = demo.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        assert line.startswith(f"carebot demo: open {url}"), line
        for path in ("/", "/static/demo.js", "/static/demo.css"):
            with urllib.request.urlopen(url + path, timeout=10) as answer:
                assert answer.status == 200 and answer.read()
        assert (tmp_path / "carebot-demo" / "carebot.sqlite3").exists()
    finally:
        demo.send_signal(signal.SIGINT)
        _, errors = demo.communicate(timeout=60)
    assert demo.returncode == 0 and "Traceback" not in errors, errors
