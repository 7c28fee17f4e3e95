"""How the bot runs: the start-up line, webhook mode, and Redis-backed conversation state."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

import aiohttp
import pytest

from bot.app import App
from bot.clock import FixedClock
from tests.conftest import RunningBot, make_settings
from tests.e2e.helpers import consent, customer_of
from tests.harness import Renderings
from tests.telegram_server import TelegramServer

REDIS_URL = os.environ.get("CAREBOT_TEST_REDIS_URL")


async def test_start_up_line_names_the_bot_and_the_database(
    telegram: TelegramServer, database_url: str, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="carebot")
    running = RunningBot(make_settings(telegram, database_url), clock)
    await running.start()
    try:
        await telegram.wait_for(lambda: any(c.method == "setMyCommands" for c in telegram.calls))
        await asyncio.sleep(0.05)
        [line] = [r.getMessage() for r in caplog.records if "carebot started" in r.getMessage()]
        assert (
            "bot=@carebot_test_bot" in line and f"database={database_url.split('://')[0]}" in line
        )
        commands = [c for c in telegram.calls if c.method == "setMyCommands"]
        assert {c.params.get("language_code") for c in commands} == {None, "en"}
        assert [x["command"] for x in commands[0].params["commands"]][:4] == [
            "start",
            "book",
            "mycoupons",
            "profile",
        ]
    finally:
        await running.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_webhook_mode(telegram: TelegramServer, database_url: str, clock: FixedClock) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    app = await App.create(
        make_settings(telegram, database_url, webhook_secret="s3cret-token"), clock=clock
    )
    Renderings(telegram.templates).wrap(app.render)  # so each Call knows its template
    stop = asyncio.Event()
    task = asyncio.create_task(app.run_webhook(url, "127.0.0.1", port, stop))
    try:
        await telegram.wait_for(lambda: any(c.method == "setWebhook" for c in telegram.calls))
        [hook] = [c for c in telegram.calls if c.method == "setWebhook"]
        assert hook.params["url"] == url and hook.params["secret_token"] == "s3cret-token"
        anna = telegram.user(3001)
        update = {
            "update_id": 1,
            "message": anna._message(
                text="/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}]
            ),
        }
        async with aiohttp.ClientSession() as http:
            forged = await http.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            )
            assert forged.status == 401
            ok = await http.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
            )
            assert ok.status == 200
        intro = await anna.reply()
        assert intro.template == "onboarding_intro"
        await anna.quiet()  # the forged post reached nothing
    finally:
        stop.set()
        await task


@pytest.mark.skipif(not REDIS_URL, reason="CAREBOT_TEST_REDIS_URL is not set (CI sets it)")
# The press the restart cuts short is delivered again to the new process, which answers it a
# second time: Telegram refuses that (PressAnswers lets the handler run all the same).
@pytest.mark.stand_in_refusals
async def test_conversation_in_redis_survives_a_restart(
    telegram: TelegramServer, database_url: str, clock: FixedClock
) -> None:
    from redis.asyncio import Redis

    assert REDIS_URL
    # Its own person per database: the two run at once in parallel test processes and share
    # one Redis, so neither may flush it or meet the other's conversation state and locks.
    user_id = 3002 if database_url.startswith("sqlite") else 3012
    redis = Redis.from_url(REDIS_URL)
    stale = [key async for key in redis.scan_iter(f"fsm:*:{user_id}:*")]
    if stale:
        await redis.delete(*stale)
    await redis.aclose()
    running = RunningBot(make_settings(telegram, database_url, redis_url=REDIS_URL), clock)
    await running.start()
    try:
        anna = telegram.user(user_id)
        await consent(anna)
        await running.restart()
        assert running.app is not None
        Renderings(telegram.templates).wrap(running.app.render)  # so each Call knows its template
        await anna.send_contact("79161234567")
        assert (await anna.reply()).template == "phone_saved"
        customer = await customer_of(running.db, user_id)
        assert customer and customer.phone == "+79161234567"
    finally:
        await running.stop()


async def test_a_failure_is_answered_politely_and_logged_with_context(
    carebot,
    telegram: TelegramServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.services.customers import CustomerService

    async def broken(self: CustomerService, tg_user_id: int) -> list[object]:
        raise RuntimeError("database on fire for +79161234567")

    monkeypatch.setattr(CustomerService, "active_coupons", broken)
    caplog.set_level(logging.ERROR, logger="carebot")
    anna = telegram.user(3003)
    await anna.send("/mycoupons")
    answer = await anna.reply()
    assert answer.template == "error"
    assert "Traceback" not in answer.text and "fire" not in answer.text
    [record] = [r for r in caplog.records if "update failed" in r.getMessage()]
    assert "user_id=3003" in record.getMessage() and "error=RuntimeError" in record.getMessage()
    from bot.logs import LogfmtFormatter

    line = LogfmtFormatter().format(record)
    assert "\n" not in line and "79161234567" not in line and "Traceback" in line


async def test_carebot_run_process_answers_and_stops_on_sigterm(
    telegram: TelegramServer, tmp_path: Path
) -> None:
    """The installed command, as an owner starts it: one start-up line, then a clean stop."""
    import signal
    import sys
    import time

    from tests.conftest import BUSINESS_FILE, TOKEN

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ADMIN_CHAT_ID")}
    env.update(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=telegram.url,
        BUSINESS_FILE=str(BUSINESS_FILE),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/run.sqlite3",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        anna = telegram.user(3004)
        await anna.send("/start")
        assert "приветственный купон" in (await anna.reply(timeout=30)).text
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert time.monotonic() - started < 5
        assert process.stderr is not None
        log = (await process.stderr.read()).decode().splitlines()
        started_lines = [line for line in log if "carebot started" in line]
        assert len(started_lines) == 1 and "bot=@carebot_test_bot" in started_lines[0]
        assert "Traceback" not in "\n".join(log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
