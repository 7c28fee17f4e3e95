"""The bot under test, two ways, and what it is doing.

`RunningBot` is the real app polling the Bot API test server over HTTP, as `carebot run` does:
for running, restarts, webhooks, the outbox and pacing. `InProcessBot` is the same app with the
same stand-in, without the network and the polling loop: each update a person sends is fed to
the dispatcher at once (`Dispatcher._process_update`, as polling does, one task per update) and
every Bot API call goes through `StandInSession`, which hands it to the stand-in's own request
path (`TelegramServer.call`): the same validation, limits, answers and records as over HTTP. Its
limiter keeps time on a `VirtualTime` (a turn that would wait a second is taken at once, in the
same order), so a dialogue never waits for Telegram's pacing. Tests pick it with
`pytestmark = pytest.mark.in_process`; `carebot` is then an `InProcessBot`.

`Probe` answers "is the bot idle?" for both: every update pushed so far has been handled, no
Bot API call is in flight (including one waiting for its turn), and the outbox sender, woken
up, claimed nothing and has nothing on its way. `Person.quiet()` waits for that instead of
sleeping, then asserts that nothing arrived.

`Renderings` records which template made each text, so a test can say
`assert call.template == "booking_confirmed"` where the words themselves do not matter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InputFile, Update

from bot.app import App
from bot.clock import FixedClock
from bot.db.repositories import Database
from bot.settings import Settings
from tests.telegram_server import TelegramServer, Upload

log = logging.getLogger("tests.harness")

IDLE_TIMEOUT = 10.0  # a bot still busy after this long is a failure of its own
POLL = 0.002


class StandInSession(BaseSession):
    """An aiogram session that hands each call to the test server in this process: the form
    fields AiohttpSession would post, read back as the server reads them, and its JSON answer
    checked by aiogram's own `check_response` (errors become the same exceptions)."""

    def __init__(self, server: TelegramServer) -> None:
        super().__init__()
        self.server = server

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        files: dict[str, InputFile] = {}
        raw: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            value = self.prepare_value(value, bot=bot, files=files)
            if value:
                raw[key] = value
        for key, file in files.items():  # read as the server would receive them
            data = b"".join([chunk async for chunk in file.read(bot)])
            raw[key] = Upload(file.filename or key, data)
        await asyncio.sleep(0)  # a call over the network lets other tasks run; so does this one
        status, body = await self.server.call(method.__api_method__, TelegramServer.decode(raw))
        response = self.check_response(
            bot=bot, method=method, status_code=status, content=json.dumps(body)
        )
        return response.result  # type: ignore[return-value]

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> Any:
        data = self.server.file_content(url.split("/file/bot", 1)[-1].split("/", 1)[-1])
        if data is None:
            raise NotImplementedError(f"the test server has no file at {url}")
        for start in range(0, len(data), chunk_size):  # as the HTTP download streams it
            yield data[start : start + chunk_size]

    async def close(self) -> None:
        pass


class VirtualTime:
    """A monotonic clock that a sleep moves forward instead of waiting: real time plus every
    wait asked for so far. The limiter and the test server's rate windows share it, so what the
    limiter lets go is what the server accepts."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def now(self) -> float:
        return time.monotonic() + self.skipped

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.skipped += seconds
        await asyncio.sleep(0)


class Renderings:
    """Which template (or label key) produced which text, recorded around a Renderer's `text`
    and `label` into the test server's `templates`, where it looks up each message it records
    (`Call.template`)."""

    def __init__(self, by_text: dict[str, str]) -> None:
        self.by_text = by_text

    def wrap(self, render: Any) -> None:
        if getattr(render, "_recorded_by", None) is self.by_text:
            return
        text, label = render.text, render.label

        def recorded_text(lang: str, template: str, /, **context: Any) -> Any:
            result = text(lang, template, **context)
            self.by_text[str(result).strip()] = template
            return result

        def recorded_label(lang: str, key: str, /, **context: Any) -> Any:
            result = label(lang, key, **context)
            self.by_text[str(result).strip()] = key
            return result

        render.text, render.label, render._recorded_by = recorded_text, recorded_label, self.by_text


class Probe:
    """Counts what the app is doing; see the module's docstring."""

    def __init__(self, server: TelegramServer, running: Callable[[], bool]) -> None:
        self.server = server
        self.running = running
        self.finished: set[int] = set()  # update ids whose handling is over (however it ended)
        self.requests = 0  # Bot API calls in flight, getUpdates aside
        self.claiming = 0
        self.claims_started = 0
        self.last_claim: tuple[int, int] = (
            0,
            0,
        )  # (which claim, rows it returned), of the latest one done
        self.sending = 0  # rows claimed whose sending is not over
        self.app: App | None = None

    def attach(self, app: App) -> None:
        """Count this app's updates, calls and outbox work (after App.create, before it runs)."""
        self.app = app
        dp, sender = app.dp, app.sender
        process = dp._process_update

        async def counted_update(bot: Bot, update: Update, *args: Any, **kwargs: Any) -> bool:
            try:
                return await process(bot, update, *args, **kwargs)
            finally:
                self.finished.add(update.update_id)

        dp._process_update = counted_update  # type: ignore[method-assign]

        async def counted_request(make_request: Any, bot: Bot, method: TelegramMethod[Any]) -> Any:
            if method.__api_method__ == "getUpdates":
                return await make_request(bot, method)
            self.requests += 1
            try:
                return await make_request(bot, method)
            finally:
                self.requests -= 1

        # outermost: a call waiting for its turn in the limiter is in flight too
        app.bot.session.middleware._middlewares.insert(0, counted_request)

        claim, send_one = getattr(sender, "_claim", None), getattr(sender, "_send_one", None)
        if claim is None or send_one is None:  # the sender changed shape: the idle signal says so
            raise RuntimeError("tests/harness.py: OutboxSender has no _claim/_send_one to count")

        async def counted_claim(*args: Any, **kwargs: Any) -> Any:
            self.claims_started += 1
            number = self.claims_started
            self.claiming += 1
            ready: Any = []
            try:
                ready = await claim(*args, **kwargs)
                self.sending += len(ready)
                return ready
            finally:
                self.claiming -= 1
                self.last_claim = (number, len(ready))

        async def counted_send(*args: Any, **kwargs: Any) -> Any:
            try:
                return await send_one(*args, **kwargs)
            finally:
                self.sending -= 1

        sender._claim = counted_claim  # type: ignore[method-assign]
        sender._send_one = counted_send  # type: ignore[method-assign]

    def busy(self) -> str | None:
        """What keeps the bot from being idle right now, or None."""
        if not self.running():
            return None
        pending = [i for i in range(1, self.server.pushed + 1) if i not in self.finished]
        if pending:
            return f"updates {pending} not handled"
        if self.requests:
            return f"{self.requests} Bot API calls in flight"
        if self.claiming or self.sending:
            return f"the outbox sender is claiming ({self.claiming}) or sending ({self.sending})"
        first_plan = getattr(self.app, "_first_plan", None)
        if first_plan is not None and not first_plan.done():
            return "the planners' first run is not over"
        return None

    async def _until_idle(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while (why := self.busy()) is not None:
            if loop.time() > deadline:
                raise AssertionError(f"the bot did not become idle within {IDLE_TIMEOUT} s: {why}")
            await asyncio.sleep(POLL)

    async def settle(self) -> None:
        """Return once the bot is idle: nothing being handled or sent, and the outbox sender,
        woken up now, found nothing due."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IDLE_TIMEOUT
        while True:
            await self._until_idle(deadline)
            if not self.running() or self.app is None:
                return
            woken_at = self.claims_started
            self.app.sender.wake()
            while not (self.last_claim[0] > woken_at and not self.claiming):
                if loop.time() > deadline:
                    raise AssertionError(f"the outbox sender did not claim within {IDLE_TIMEOUT} s")
                await asyncio.sleep(POLL)
            if self.last_claim[1] == 0 and self.busy() is None:
                return


class RunningBot:
    """The real app polling the test server; can be stopped and started again (a restart)."""

    def __init__(
        self, settings: Settings, clock: FixedClock, server: TelegramServer | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.server = server
        self.app: App | None = None
        self.probe = Probe(server, self._running) if server is not None else None
        self._task: asyncio.Task[None] | None = None
        if server is not None:
            server.settle = self.settle

    def _running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _create(self) -> App:
        app = await App.create(self.settings, clock=self.clock)
        if self.probe is not None:
            self.probe.attach(app)
        if self.server is not None:
            Renderings(self.server.templates).wrap(app.render)
        return app

    async def start(self) -> None:
        self.app = await self._create()
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

    async def settle(self) -> None:
        if self.probe is not None:
            await self.probe.settle()

    @property
    def db(self) -> Database:
        assert self.app is not None
        return self.app.db


class InProcessBot(RunningBot):
    """The same app without HTTP or polling: see the module's docstring."""

    def __init__(self, settings: Settings, clock: FixedClock, server: TelegramServer) -> None:
        super().__init__(settings, clock, server)
        self.time = VirtualTime()
        self._updates: set[asyncio.Task[Any]] = set()
        self._started = False

    def _running(self) -> bool:
        return self._started

    async def start(self) -> None:
        assert self.server is not None
        app = self.app = await self._create()
        old = app.bot.session
        session = StandInSession(self.server)
        session.middleware = old.middleware  # the limiter and the rest, as App.create set them up
        app.bot.session = session
        await old.close()
        limiter = app.sender.limiter
        limiter._timer, limiter._sleep = self.time.now, self.time.sleep
        self.server.clock = self.time.now
        self._context = {"dispatcher": app.dp, "bots": [app.bot], **app.dp.workflow_data}
        await app.dp.emit_startup(bot=app.bot, **self._context)
        self.server.feed = self._feed
        self._started = True

    def _feed(self, update: dict[str, Any]) -> None:
        assert self.app is not None
        app = self.app
        parsed = Update.model_validate(update, context={"bot": app.bot})
        task = asyncio.create_task(
            app.dp._process_update(bot=app.bot, update=parsed, **self._context)
        )
        self._updates.add(task)
        task.add_done_callback(self._updates.discard)

    async def stop(self) -> None:
        if not self._started or self.app is None:
            return
        assert self.server is not None
        self.server.feed = None
        self._started = False
        if self._updates:
            await asyncio.wait(set(self._updates), timeout=IDLE_TIMEOUT)
        try:
            await self.app.dp.emit_shutdown(bot=self.app.bot, **self._context)
        finally:
            await self.app.close()
