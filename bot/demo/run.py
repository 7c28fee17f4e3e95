"""`carebot demo`: the stand-in, the real bot polling it, and the page, started and stopped
together."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.app import App
from bot.clock import ShiftedClock
from bot.demo.seed import SEED_DAYS, seed
from bot.demo.web import web_app
from bot.demo.world import DEMO_TOKEN, GROUP_ID, DemoServer, Refused, World
from bot.settings import load_settings
from bot.standin import BOT_USER

log = logging.getLogger("carebot.demo")

DATABASE = "carebot.sqlite3"
# What a tick reports that is no message: the statistics closing their past days.
BOOKKEEPING = frozenset({"campaign_days", "stats_days"})


class DemoError(Exception):
    """The demo cannot start (its port is taken, its folder cannot be written): one line."""


@dataclass
class DemoOptions:
    folder: Path = Path("carebot-demo")
    port: int = 8080
    host: str = "127.0.0.1"
    seed: bool = False
    business_file: Path | None = None
    database_url: str | None = None  # default: SQLite in the folder (tests give another)
    start: datetime | None = None  # the demo's first "now" (default: the wall clock's)
    timezone: str | None = None  # default: TIMEZONE, as `carebot run`


class Demo:
    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.stopping = asyncio.Event()
        self.url = ""
        self._tick_lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._polling: asyncio.Task[None] | None = None

    async def start(self) -> None:
        options = self.options
        try:
            options.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DemoError(f"cannot create {options.folder}: {error.strerror or error}") from None
        self.server = DemoServer(DEMO_TOKEN)
        await self.server.start()
        database = options.database_url or f"sqlite+aiosqlite:///{options.folder / DATABASE}"
        values: dict[str, Any] = dict(
            bot_token=DEMO_TOKEN,
            telegram_api_url=self.server.url,
            database_url=database,
            admin_chat_id=GROUP_ID,
            redis_url=None,  # the demo keeps to its folder, whatever the environment says
            secret_key="carebot-demo-secret-key" if options.database_url else None,
            payment_provider_token=None,
            webhook_secret=None,
        )
        if options.business_file is not None:
            values["business_file"] = options.business_file
        if options.timezone is not None:
            values["timezone"] = options.timezone
        try:
            settings = load_settings(_env_file=None, **values)  # a bad TIMEZONE: one line
        except BaseException:
            await self.server.stop()
            raise
        start = options.start or datetime.now(UTC)
        # A history to seed is written as it happened: the clock starts months back.
        self.clock = ShiftedClock(start - timedelta(days=SEED_DAYS) if options.seed else start)
        try:
            self.app = await App.create(settings, clock=self.clock)
        except BaseException:
            await self.server.stop()
            raise
        self.tz: tzinfo = settings.tz
        business = self.app.business
        staff_name = "Владелец" if business.staff_language == "ru" else "Owner"
        self.world = World(
            self.server,
            options.folder,
            [(m.id, m.name) for m in business.masters],
            staff_name,
            self.clock.now,
        )
        try:
            if not self.world.customers:  # someone to start with, before any seeded ones
                ru = business.staff_language == "ru"
                self.world.add_customer("Мария" if ru else "Mary", "ru" if ru else "en")
            if options.seed:
                known = [await self.app.customers.find(c) for c in self.world.customers]
                if any(known):
                    log.info("%s has customers already: --seed adds none", options.folder)
                else:
                    await seed(self, start)
                self.clock.move_to(max(start, self.clock.now()))
            await self._serve()
        except BaseException:
            await self.app.close()
            await self.server.stop()
            raise
        self._polling = asyncio.create_task(
            self.app.run_polling(handle_signals=False), name="demo-bot"
        )
        await self._link_masters()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(web_app(self), handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            raise DemoError(
                f"cannot listen on {self.options.host}:{self.options.port} "
                f"({error.strerror or error}): choose another with --port"
            ) from None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{self.options.host}:{port}"

    async def _link_masters(self) -> None:
        """Each master of the business file opens their invite link in their chat, as a master
        does the first time (a master linked in an earlier run is linked already)."""
        for master in self.world.masters:
            if await self.app.booking.master_of(master.user_id) is not None:
                continue
            token = await self.app.booking.invite(master.id, by="demo")
            await self.world.write(master.user_id, f"/start master_{token}")

    @property
    def finished(self) -> asyncio.Task[None] | None:
        """The bot's task: done when it stopped on its own (a fault)."""
        return self._polling

    async def stop(self) -> None:
        self.stopping.set()
        if self._polling is not None and not self._polling.done():
            try:
                await self.app.dp.stop_polling()
            except RuntimeError:  # not polling yet
                self._polling.cancel()
        if self._polling is not None:
            try:
                await self._polling
            except asyncio.CancelledError:
                await self.app.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.server.stop()

    async def move_clock(self, moment: datetime) -> dict[str, Any]:
        """Move the demo's now to `moment` and run every planner and the sender as of it, as
        `carebot tick --now` does; what it did, for the clock panel."""
        async with self._tick_lock:
            try:
                self.clock.move_to(moment)
            except ValueError as error:
                raise Refused(f"{error}: choose a later moment") from None
            self.world.hub.publish({"type": "clock", **self.clock_state()})
            result = await self.app.tick()
        result.pop("outbox_reasons", None)
        done = {
            k: v for k, v in result.items() if isinstance(v, int) and v and k not in BOOKKEEPING
        }
        self.world.hub.publish({"type": "ticked", "result": done, **self.clock_state()})
        return {"result": done, **self.clock_state()}

    def clock_state(self) -> dict[str, Any]:
        now = self.clock.now()
        return {"now": now.isoformat(), "local": now.astimezone(self.tz).isoformat()}

    async def state(self) -> dict[str, Any]:
        world = self.world
        chats = {GROUP_ID: world.chat(GROUP_ID)}
        for customer in world.customers.values():
            chats[customer.id] = world.chat(customer.id)
        masters = []
        for master in world.masters:
            chats[master.user_id] = world.chat(master.user_id)
            linked = await self.app.booking.master_of(master.user_id) is not None
            masters.append({"id": master.user_id, "name": master.name, "linked": linked})
        return {
            "business": self.app.business.name,
            "bot": BOT_USER["username"],
            "tz": str(self.tz),
            "clock": self.clock_state(),
            "group": {
                "id": GROUP_ID,
                "staff": world.staff.first_name,
                "topics_on": GROUP_ID in self.server.forum_chats,
                "topics": {str(k): v for k, v in world.topics().items()},
            },
            "customers": world.customer_list(),
            "masters": masters,
            "chats": {str(k): v for k, v in chats.items()},
            "keyboards": {str(k): v for k, v in world.keyboards.items()},
        }


async def _until_stopped(options: DemoOptions) -> None:
    import signal
    from contextlib import suppress

    demo = Demo(options)
    await demo.start()
    try:
        print(
            f"carebot demo: open {demo.url} in a browser (no Telegram needed; its database and "
            f"files are in {options.folder}{'' if str(options.folder).endswith('/') else '/'}; "
            "Ctrl-C stops it)",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        waiting = asyncio.create_task(stop.wait())
        assert demo.finished is not None
        await asyncio.wait({waiting, demo.finished}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
    finally:
        await demo.stop()
    if demo.app.fault:
        raise DemoError(f"stopped: {demo.app.fault}")


def main(folder: Path, port: int, seed: bool, business: Path | None) -> int:
    """`carebot demo`: runs until Ctrl-C; a fault at start-up is one line on stderr."""
    import sys

    from sqlalchemy.exc import DBAPIError, OperationalError

    from bot.settings import ConfigError

    if not 0 < port < 65536:
        print(f"carebot: --port {port} is not a port (1-65535)", file=sys.stderr)
        return 2
    options = DemoOptions(folder=folder, port=port, seed=seed, business_file=business)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # every poll and page request
    try:
        asyncio.run(_until_stopped(options))
    except ConfigError as error:
        print(f"carebot: {error}", file=sys.stderr)
        return 2
    except DemoError as error:
        print(f"carebot: {error}", file=sys.stderr)
        return 1
    except (OperationalError, DBAPIError) as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        print(f"carebot: cannot open the demo's database: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
