"""The composition root: settings → database → the core's services (each feature registers its
planners, composers and event subscribers itself) → the Telegram edge (aiogram's Bot and
Dispatcher, the handlers, the outbox's Telegram client). Tests use it as is."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.business import Business, load_business
from bot.clock import Clock, SystemClock
from bot.db.engine import create_engine
from bot.db.guard import FileGuard
from bot.db.migrate import upgrade
from bot.db.repositories import Database
from bot.events import Events
from bot.features import Features
from bot.keys import load_secret_key
from bot.leader import Leadership, leadership
from bot.outbox.limits import Limiter
from bot.outbox.planners import Planners
from bot.outbox.sender import OutboxSender
from bot.outbox.shared_budget import SharedBudget
from bot.rendering import LANGUAGES, Renderer
from bot.services.bonuses import BonusService
from bot.services.booking import BookingService
from bot.services.broadcasts import BroadcastService
from bot.services.business_chats import BusinessChats
from bot.services.campaign_results import CampaignResultsService
from bot.services.campaigns import CampaignAssigner
from bot.services.care import CareService
from bot.services.certificates import CertificateService
from bot.services.charts import FigureSources
from bot.services.customers import CustomerService
from bot.services.cycles import CycleService
from bot.services.deposits import DepositService
from bot.services.digest import StatsDigest
from bot.services.exporting import Exporter
from bot.services.importing import ImportService
from bot.services.loyalty import LoyaltyService
from bot.services.missed_you import MissedYou
from bot.services.onboarding_starts import OnboardingStarts
from bot.services.packages import PackageService
from bot.services.points_pay import PointsPayService
from bot.services.referrals import ReferralService
from bot.services.retention import RetentionService
from bot.services.sale_cancel import SaleCancelService
from bot.services.sleeping import SleepingService
from bot.services.staff import StaffService
from bot.services.stamps import StampService
from bot.services.stats import StatsService
from bot.services.stats_breakdowns import StatsBreakdownService
from bot.services.stats_export import StatsExporter
from bot.services.surveys import SurveyService
from bot.services.tiers import TierService
from bot.services.waitlist import WaitlistService
from bot.settings import Settings
from handlers import setup_dispatcher
from handlers.admin_chat import AdminChat
from handlers.api_wait import ApiWait
from handlers.broadcasts import ProgressBoard
from handlers.business_chats import BusinessRelay
from handlers.care import CareRelay
from handlers.delivery import TelegramLimits
from handlers.fsm_storage import SqlStorage
from handlers.ops import Ops
from handlers.outbox_client import TelegramTransport
from handlers.stats_digest import StatsDigestDelivery
from handlers.updates_once import CountUpdates, OnceOnly

log = logging.getLogger("carebot")

PLAN_EVERY = timedelta(minutes=10)
WATCH_EVERY = timedelta(seconds=2)
GUARD_EVERY = timedelta(seconds=2)
COMMANDS = (
    "start",
    "book",
    "mycoupons",
    "profile",
    "card",
    "waitlist",
    "stop",
    "resume",
    "mydata",
    "forget",
    "privacy",
)


@dataclass(kw_only=True)
class Core:
    """The core's services, wired to each other; no Telegram here."""

    events: Events
    planners: Planners
    features: Features
    customers: CustomerService
    staff: StaffService
    care: CareService
    surveys: SurveyService
    booking: BookingService
    cycles: CycleService
    sleeping: SleepingService
    retention: RetentionService
    loyalty: LoyaltyService
    referrals: ReferralService
    packages: PackageService
    deposits: DepositService
    waitlist: WaitlistService
    stamps: StampService
    business_chats: BusinessChats  # Telegram Business: the salon's own account

    @classmethod
    async def build(
        cls, settings: Settings, business: Business, clock: Clock, db: Database, render: Renderer
    ) -> Core:
        tz = settings.tz
        events = Events()
        db.assign = CampaignAssigner(business.campaigns)  # every planned row's campaign and arm
        planners = Planners(db, clock, business, tz)
        features = Features(events, planners)
        features.on_purchase(planners.thanks_after_purchase)
        secret = load_secret_key(settings)  # SECRET_KEY, or the key file beside the database
        customers = CustomerService(db, clock, business, tz, events, secret_key=secret.value)
        await customers.rekey_welcome_claims(new_key=secret.created)
        staff = StaffService(db, clock, business, tz, events)
        care = CareService(db, clock, business)
        booking = BookingService(db, clock, business, tz, render, staff, settings.admin_chat_id)
        core = cls(
            events=events,
            planners=planners,
            features=features,
            customers=customers,
            staff=staff,
            care=care,
            surveys=SurveyService(db, clock, business, tz, render),
            booking=booking,
            cycles=CycleService(db, clock, business, tz, booking),
            sleeping=SleepingService(db, clock, business, tz, render),
            retention=RetentionService(db, clock, business, customers),
            loyalty=LoyaltyService(db, clock, business, tz),
            referrals=ReferralService(db, clock, business, tz, secret_key=secret.value),
            packages=PackageService(db, clock, business, tz),
            deposits=DepositService(
                db,
                clock,
                business,
                tz,
                render,
                events,
                booking,
                settings.admin_chat_id,
                settings.payment_provider_token.get_secret_value()
                if settings.payment_provider_token
                else None,
            ),
            waitlist=WaitlistService(db, clock, business, tz, render, booking),
            stamps=StampService(db, clock, business, tz),
            business_chats=BusinessChats(db, clock, business, tz, care, settings.admin_chat_id),
        )
        # In this order, as the subscribers and planners have always run.
        for feature in (
            core.surveys,
            core.cycles,
            core.booking,
            core.sleeping,
            core.retention,
            core.loyalty,  # a sale's cashback, the points' expiry
            core.referrals,  # bring a friend: the reward at the friend's first sale; /forget
            core.packages,  # prepaid packages: the expiry reminder, a cancelled sale, /forget
            core.stamps,  # the stamp card: a sale's stamp, the reward, a cancelled sale's withdrawal
        ):
            feature.register(features)
        TierService(db, clock, business, tz).register(features)  # club tiers: the daily planner
        core.deposits.register(features)  # deposits: expired holds, a visit's sale, /forget
        core.waitlist.register(features)  # freed times offered to the waiting customers
        core.business_chats.register(features)  # Telegram Business: /forget
        MissedYou(db, clock, business, tz, render, booking).register(features)  # no-shows
        # the welcome bonus at the phone, the birthday bonus with the greeting
        BonusService(db, clock, business, tz, secret_key=secret.value).register(features)
        return core

    def parts(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(Core)}


@dataclass(kw_only=True)
class App(Core):
    settings: Settings
    business: Business
    clock: Clock
    db: Database
    render: Renderer
    storage: BaseStorage
    bot: Bot
    dp: Dispatcher
    admin_chat: AdminChat
    sender: OutboxSender
    broadcasts: BroadcastService
    progress_board: ProgressBoard
    fault: str | None = field(
        default=None, init=False
    )  # why the bot stopped on its own (database file)
    _webhook_stop: asyncio.Event | None = field(default=None, init=False)
    limiter: Limiter = field(init=False)
    leader: Leadership = field(init=False)  # who runs the planners (bot/leader.py)
    ops: Ops = field(init=False)

    @classmethod
    async def create(cls, settings: Settings, *, clock: Clock | None = None) -> App:
        """Build everything and bring the schema up to date (migrations run at start-up)."""
        business = load_business(settings.business_file)
        clock = clock or SystemClock()
        db = await _database(settings)
        render = Renderer(settings.tz)
        core = await Core.build(settings, business, clock, db, render)
        # One budget for every message, replies and outbox alike (bot/outbox/limits.py).
        # Several instances share it through Redis (REDIS_URL), one process keeps it itself.
        shared = (
            SharedBudget.from_url(
                settings.redis_url, _bot_id(settings), call_timeout=settings.telegram_timeout
            )
            if settings.redis_url
            else None
        )
        limiter = Limiter(
            business.outbox.messages_per_second,
            business.outbox.seconds_per_chat,
            business.outbox.group_per_minute,
            paid_per_second=business.broadcasts.paid_messages_per_second,
            shared=shared,
        )
        bot = _bot(settings, limiter)
        admin_chat = AdminChat(bot, settings.admin_chat_id, clock)
        sender = OutboxSender(
            db,
            TelegramTransport(bot),
            clock,
            business,
            settings.tz,
            render,
            composers=core.features.composers,
            limiter=limiter,
        )
        CareRelay(bot, admin_chat, core.care, core.staff, render, business).register(sender)
        BusinessRelay(bot, core.business_chats, core.booking, render, business).register(sender)
        broadcasts = BroadcastService(
            db,
            clock,
            business,
            settings.tz,
            render,
            settings.admin_chat_id,
            cancelled=sender.cancelled,
        )
        broadcasts.register(core.features)
        storage, isolation = _storage(settings, db)
        app = cls(
            **core.parts(),
            settings=settings,
            business=business,
            clock=clock,
            db=db,
            render=render,
            storage=storage,
            bot=bot,
            dp=Dispatcher(storage=storage, events_isolation=isolation),
            admin_chat=admin_chat,
            sender=sender,
            broadcasts=broadcasts,
            progress_board=ProgressBoard(bot, broadcasts, render, business.staff_language, clock),
        )
        app.limiter, app.leader = limiter, leadership(db.engine)
        app._wire_dispatcher()
        app._wire_operations()
        return app

    def _wire_operations(self) -> None:
        """Updates counted; /healthz and /metrics (handlers/ops.py)."""
        self.dp.update.outer_middleware(CountUpdates())
        shared = self.limiter.shared
        self.ops = Ops(
            database=self.db,
            clock=self.clock,
            bot_api=self.bot.get_me,
            redis=shared.ping if shared is not None else None,
        )

    def _wire_dispatcher(self) -> None:
        setup_dispatcher(self.dp, self.customers)
        self.dp.workflow_data.update(
            settings=self.settings,
            business=self.business,
            clock=self.clock,
            render=self.render,
            customers=self.customers,
            staff_service=self.staff,
            care=self.care,
            events=self.events,
            admin_chat=self.admin_chat,
            surveys=self.surveys,
            staff_lang=self.business.staff_language,
            booking=self.booking,
            cycles=self.cycles,
            broadcasts=self.broadcasts,
            sleeping=self.sleeping,
            retention=self.retention,
            loyalty=self.loyalty,
            referrals=self.referrals,
            packages=self.packages,
            deposits=self.deposits,
            waitlist=self.waitlist,
            stamps=self.stamps,
            business_chats=self.business_chats,
            sender=self.sender,
            exporter=Exporter(self.db, self.clock, self.business, self.settings.tz),
            importer=ImportService(self.db, self.clock, self.business, self.settings.tz),
            stats=StatsService(self.db, self.clock, self.settings.tz, self.business.sleeping),
            campaign_results=CampaignResultsService(
                self.db, self.clock, self.business.campaigns, self.settings.tz
            ),
            stats_breakdowns=StatsBreakdownService(
                self.db, self.clock, self.settings.tz, self.business
            ),
            onboarding_starts=OnboardingStarts(self.db, self.clock, self.settings.tz),
            certificates=CertificateService(
                self.db, self.clock, self.business.loyalty.certificates, self.settings.tz
            ),
            points_pay=PointsPayService(
                self.db,
                self.clock,
                self.business,
                self.loyalty,
                self.settings.admin_chat_id,
                self.render,
            ),
            sale_cancel=SaleCancelService(
                self.db, self.clock, self.business, self.loyalty, self.events
            ),
        )
        self._wire_stats_pictures()
        self.dp.workflow_data["points_pay"].register(self.features)  # unanswered: staff told
        self.dp.startup.register(self._on_startup)
        self.dp.shutdown.register(self._on_shutdown)

    def _wire_stats_pictures(self) -> None:
        """The /stats charts' sources, /stats export, and the weekly digest (its planner, and its
        delivery with a chart)."""
        data = self.dp.workflow_data
        breakdowns, campaigns = data["stats_breakdowns"], data["campaign_results"]
        stats = data["stats"]
        sources = FigureSources(
            months=stats.months,
            cohorts=stats.cohorts,
            funnel=breakdowns.funnel,
            campaigns=campaigns.results,
        )
        data["chart_sources"] = sources
        data["stats_exporter"] = StatsExporter(
            stats,
            sources,
            masters=breakdowns.masters,
            joined_by_source=breakdowns.sources,
        )
        digest = StatsDigest(
            self.db,
            self.clock,
            self.business,
            self.settings.tz,
            self.render,
            self.settings.admin_chat_id,
            stats=stats,
            sources=sources,
            masters=breakdowns.masters,
            campaigns=campaigns.results,
        )
        digest.register(self.features)
        campaigns.register(self.features)  # closes the campaign report's past days
        stats.register(self.features)  # closes /stats's past days and months
        StatsDigestDelivery(self.bot, digest).register(self.sender)

    def start_background(self) -> None:
        """Planners on APScheduler (now, then every PLAN_EVERY_SECONDS, on the one instance that
        leads) and the outbox sender."""
        self._stop_sending = asyncio.Event()
        self._sending = asyncio.create_task(
            self.sender.run(self._stop_sending), name="outbox-sender"
        )
        self._scheduler = AsyncIOScheduler(timezone=self.settings.tz)
        self._scheduler.add_job(
            self._plan,
            "interval",
            seconds=self.settings.plan_every_seconds,
            id="planners",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.start()
        self._first_plan = asyncio.create_task(self._plan(), name="planners-at-start")
        self._watching = asyncio.create_task(
            self.progress_board.run(self._stop_sending, WATCH_EVERY.total_seconds()),
            name="broadcasts",
        )
        self._guarding = asyncio.create_task(
            self._guard_database(self._stop_sending), name="database-guard"
        )

    async def stop_background(self) -> None:
        """Stop planning and let the sender finish the batch in flight (a few seconds at most)."""
        if getattr(self, "_scheduler", None) is None:
            return
        self._scheduler.shutdown(wait=False)
        self._scheduler = None
        self._stop_sending.set()
        self._first_plan.cancel()
        with suppress(asyncio.CancelledError):
            await self._first_plan
        await self._sending
        await self._watching
        await self._guarding
        await self.leader.close()  # another instance takes the planners over

    async def _guard_database(self, stop: asyncio.Event) -> None:
        """SQLite: a database file deleted, replaced or turned read-only under the running bot is
        said once, and the bot stops (no more updates taken, nothing more written into a file that
        is gone at the next restart); `carebot run` then exits 1 naming it."""
        guard = FileGuard.watch(self.db.engine)
        while guard is not None and not stop.is_set():
            problem = guard.problem()
            if problem:
                self.fault = f"the database file {guard.path} {problem}"
                log.error(
                    "%s: stopping, nothing more is taken or written; restore it and start again",
                    self.fault,
                )
                if self._webhook_stop is not None:
                    self._webhook_stop.set()
                else:
                    self._halting = asyncio.create_task(
                        self._stop_polling(), name="stop-on-database-fault"
                    )
                return
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), GUARD_EVERY.total_seconds())

    async def _stop_polling(self) -> None:
        with suppress(RuntimeError):  # not polling (tests driving start_background themselves)
            await self.dp.stop_polling()

    async def _plan(self) -> None:
        """The planners, on the one instance that leads (bot/leader.py); another takes over at
        its next interval when the leader is gone."""
        try:
            if not await self.leader.check():
                return
            await self.planners.run_all()
        except Exception:
            log.exception("planners failed; they run again at the next interval")

    async def tick(self) -> dict[str, Any]:
        """`carebot tick`: every planner once as of the clock's now, then deliver what is due."""
        planned = await self.planners.run_all()
        due = await self._due_ids()
        delivered = await self.sender.drain()
        await self.broadcasts.watch()  # finished broadcasts are marked done and reported
        due |= await self._due_ids()
        delivered.add(await self.sender.drain())
        async with (
            self.db.reading() as repos
        ):  # why what was due did not go: one line each in the CLI
            reasons = await repos.outbox.reasons(sorted(due))
        return {
            **planned,
            **{f"outbox_{k}": v for k, v in vars(delivered).items()},
            "outbox_reasons": reasons,
        }

    async def _due_ids(self) -> set[int]:
        async with self.db.reading() as repos:
            return set(await repos.outbox.due_ids(self.clock.now()))

    async def _on_shutdown(self) -> None:
        await self.stop_background()

    async def _on_startup(self, bot: Bot) -> None:
        self.start_background()
        me = await bot.get_me()
        for lang in LANGUAGES:
            commands = [
                BotCommand(command=c, description=self.render.label(lang, f"cmd_{c}"))
                for c in COMMANDS
            ]
            await bot.set_my_commands(
                commands,
                scope=BotCommandScopeAllPrivateChats(),
                language_code=None if lang == "ru" else lang,
            )
        log.info(  # the one line at start-up (README): the rest of it is DEBUG
            "carebot started bot=@%s bot_id=%s database=%s fsm=%s business=%r admin_chat=%s",
            me.username,
            me.id,
            self.settings.database_label(),
            "redis" if self.settings.redis_url else "database",
            self.business.name,
            self.settings.admin_chat_id
            or "unset (staff features are off until ADMIN_CHAT_ID is set)",
        )
        if note := self.deposits.startup_note():
            log.warning(note)

    async def run_polling(
        self, *, handle_signals: bool = True, http: tuple[str, int] | None = None
    ) -> None:
        """Long polling; with `http` (--http, HTTP_LISTEN), /healthz and /metrics served there."""
        runner = None
        try:
            if http is not None:
                from aiohttp import web

                web_app = web.Application()
                self.ops.register(web_app)
                runner = web.AppRunner(web_app)
                await runner.setup()
                await web.TCPSite(runner, *http).start()
                log.info("health and metrics on http://%s:%s/healthz and /metrics", *http)
            await self.dp.start_polling(
                self.bot, handle_signals=handle_signals, close_bot_session=True
            )
        finally:
            if runner is not None:
                await runner.cleanup()
            await self.close()

    async def run_webhook(
        self, url: str, host: str, port: int, stop: asyncio.Event | None = None
    ) -> None:
        """Webhook mode: Telegram posts updates to `url`, served here on host:port.

        Runs until SIGINT/SIGTERM, or until `stop` is set (tests).
        """
        from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
        from aiohttp import web
        from yarl import URL

        secret = (
            self.settings.webhook_secret.get_secret_value()
            if self.settings.webhook_secret
            else None
        )

        web_app = web.Application()
        SimpleRequestHandler(dispatcher=self.dp, bot=self.bot, secret_token=secret).register(
            web_app, path=URL(url).path or "/"
        )
        setup_application(web_app, self.dp, bot=self.bot)
        self.ops.register(web_app)  # /healthz and /metrics beside the webhook
        if self.limiter.shared is not None:
            # Behind a load balancer a retried update may land on another instance: the first
            # to see it takes it (polling has getUpdates' offset instead).
            self.dp.update.outer_middleware(
                OnceOnly(self.limiter.shared.redis, f"carebot:update:{self.bot.id}")
            )
        runner = web.AppRunner(web_app)
        await runner.setup()
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
        self._webhook_stop = stop  # the database guard stops the webhook with it
        try:
            await web.TCPSite(runner, host, port).start()
            # Only now that we listen may Telegram start posting updates.
            await self.bot.set_webhook(
                url, secret_token=secret, allowed_updates=self.dp.resolve_used_update_types()
            )
            log.info("webhook listening on %s:%s for %s", host, port, url)
            await stop.wait()
        finally:
            await runner.cleanup()
            await self.close()

    async def close(self) -> None:
        await self.leader.close()
        if self.limiter.shared is not None:
            await self.limiter.shared.close()
        await self.storage.close()
        await self.bot.session.close()
        await self.db.engine.dispose()


async def _database(settings: Settings) -> Database:
    """The database, its schema brought up to date."""
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    except BaseException:
        await engine.dispose()
        raise
    return Database(engine)


def _bot_id(settings: Settings) -> str:
    """The bot's id (a token starts with it): the shared budget's keys are the bot's own."""
    return settings.bot_token.get_secret_value().split(":", 1)[0]


def _bot(settings: Settings, limiter: Limiter) -> Bot:
    api = (
        TelegramAPIServer.from_base(settings.telegram_api_url)
        if settings.telegram_api_url
        else PRODUCTION
    )
    # every call bounded by TELEGRAM_TIMEOUT; a silent server is named in the log
    session = AiohttpSession(api=api, timeout=settings.telegram_timeout)
    # The limiter outermost, so the middlewares after it time the HTTP call, not the wait for a turn.
    session.middleware(TelegramLimits(limiter))
    session.middleware(
        ApiWait(settings.telegram_api_url or "https://api.telegram.org", settings.telegram_timeout)
    )
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def _storage(settings: Settings, db: Database) -> tuple[BaseStorage, Any]:
    """Conversation state that survives restarts: Redis when REDIS_URL is set, else the database."""
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        redis_storage = RedisStorage.from_url(
            settings.redis_url, key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
        )
        return redis_storage, redis_storage.create_isolation()
    # One lock per chat: two fast taps of the same person are handled one after the other; inside
    # it, the conversation is read once and written once per update (handlers/fsm_storage.py).
    storage = SqlStorage(db)
    return storage, storage.isolation(SimpleEventIsolation())
