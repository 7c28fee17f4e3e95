"""/healthz and /metrics in polling mode (`carebot run --http HOST:PORT`, HTTP_LISTEN): the
database and the Bot API checked, the outbox's lag, Prometheus' text; one process on SQLite (or
PostgreSQL) with no Redis leads the planners by itself, as it always has."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import aiohttp

from bot.app import App
from bot.clock import FixedClock
from bot.db.models import OutboxMessage
from tests.conftest import make_settings
from tests.instances import free_port
from tests.telegram_server import TelegramServer


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def test_health_and_metrics_beside_polling(
    telegram: TelegramServer, database_url: str, clock: FixedClock
) -> None:
    app = await App.create(make_settings(telegram, database_url), clock=clock)
    async with app.db.transaction() as repos:  # a message due for five minutes, not sent
        repos.session.add(
            OutboxMessage(
                key="late:1",
                chat_id=42,
                kind="service",
                template="late",
                data={},
                text="late",
                not_before=clock.now() - timedelta(minutes=5),
                not_after=clock.now() + timedelta(hours=1),
                due_at=clock.now() - timedelta(minutes=5),
                state="failed",  # not waiting: the queue is empty
                attempts=1,
                created_at=clock.now(),
            )
        )
    port = free_port()
    running = asyncio.create_task(app.run_polling(handle_signals=False, http=("127.0.0.1", port)))
    try:
        for _ in range(100):
            try:
                status, body = await _get(f"http://127.0.0.1:{port}/healthz")
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        report = json.loads(body)
        assert status == 200, report
        assert report["database"] == "ok" and report["bot_api"] == "ok"
        assert "redis" not in report  # no REDIS_URL: nothing to check
        assert report["outbox"] == {"due": 0, "oldest_seconds": 0.0}
        assert report["status"] == "ok"

        status, metrics = await _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        for name in (
            "carebot_updates_handled_total",
            "carebot_outbox_sent_total",
            "carebot_telegram_429_total",
            "carebot_telegram_retries_total",
            "carebot_outbox_queue_depth 0.0",
            "carebot_outbox_queue_age_seconds 0.0",
            "carebot_planner_duration_seconds_bucket",
        ):
            assert name in metrics, name

        # the Bot API stops answering: /healthz says so (after its getMe's cache, at once when
        # the cache is cleared)
        app.ops._api_ok_at = float("-inf")
        telegram.hang = True
        status, body = await _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503 and json.loads(body)["bot_api"] != "ok"
        telegram.hang = False
    finally:
        await app.dp.stop_polling()
        await running
