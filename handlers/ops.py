"""`/healthz` and `/metrics`, served by the bot's own aiohttp app: on the webhook's listen address
in webhook mode, on `--http HOST:PORT` (HTTP_LISTEN) in polling mode.

/healthz answers 200 with one JSON object when the database, Redis (when REDIS_URL is set) and
the Bot API answer, and 503 naming what does not; the outbox's lag (messages due and not sent,
the oldest one's wait) is reported, and over `LAG_UNHEALTHY` it is a fault too: a sender that
stopped sending. /metrics is Prometheus' text format (bot/metrics.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from bot.metrics import QUEUE_AGE, QUEUE_DEPTH

CHECK_TIMEOUT = 5.0
LAG_UNHEALTHY = 600.0  # seconds the oldest due message may wait before /healthz says so
API_CHECK_EVERY = 30.0  # getMe at most this often (a load balancer may ask every second)

Check = Callable[[], Awaitable[Any]]


class Ops:
    def __init__(
        self,
        *,
        database: Any,  # bot.db.repositories.Database
        clock: Any,
        bot_api: Check,
        redis: Check | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.bot_api = bot_api
        self.redis = redis
        self._api_ok_at = float("-inf")

    def register(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)

    async def lag(self) -> tuple[int, float]:
        now = self.clock.now()
        async with self.database.reading(snapshot=False) as repos:
            depth, oldest = await repos.outbox.lag(now)
        if oldest is None:
            return depth, 0.0
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = max(0.0, (now - oldest).total_seconds())
        QUEUE_DEPTH.set(depth)
        QUEUE_AGE.set(age)
        return depth, age

    async def _database(self) -> None:
        async with self.database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def _api(self) -> None:
        if time.monotonic() - self._api_ok_at < API_CHECK_EVERY:
            return
        await self.bot_api()
        self._api_ok_at = time.monotonic()

    async def healthz(self, request: web.Request) -> web.Response:
        checks: dict[str, Check] = {"database": self._database, "bot_api": self._api}
        if self.redis is not None:
            checks["redis"] = self.redis
        report: dict[str, Any] = {}
        healthy = True

        async def run(name: str, check: Check) -> None:
            nonlocal healthy
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT)
                report[name] = "ok"
            except Exception as error:
                healthy = False
                report[name] = f"{type(error).__name__}: {error}"[:200] or type(error).__name__

        await asyncio.gather(*(run(name, check) for name, check in checks.items()))
        try:
            depth, age = await asyncio.wait_for(self.lag(), CHECK_TIMEOUT)
            report["outbox"] = {"due": depth, "oldest_seconds": round(age, 1)}
            if age > LAG_UNHEALTHY:
                healthy = False
                report["outbox"]["problem"] = (
                    f"the oldest due message waits over {LAG_UNHEALTHY:g} s"
                )
        except Exception as error:
            healthy = False
            report["outbox"] = f"{type(error).__name__}: {error}"[:200]
        report["status"] = "ok" if healthy else "fail"
        return web.Response(
            text=json.dumps(report, ensure_ascii=False),
            status=200 if healthy else 503,
            content_type="application/json",
        )

    async def metrics(self, request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self.lag(), CHECK_TIMEOUT)  # the queue's gauges, as of now
        except Exception:
            pass  # the rest is still worth scraping; /healthz says what is wrong
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
