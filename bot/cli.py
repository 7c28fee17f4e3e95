"""`carebot run | migrate | tick | outbox | import | export`: every fault at start-up is one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy.exc import DBAPIError, OperationalError

from bot import lazy_types
from bot.logs import setup_logging
from bot.settings import ConfigError, Settings, load_settings, split_listen

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger("carebot")

EXIT_CONFIG = 2
EXIT_FAILURE = 1
REDIS_TIMEOUT_SECONDS = 3.0


class Unreachable(Exception):
    """Something the bot needs did not answer at start-up (or went away): one line, exit 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carebot", description="carebot: bring customers back.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="start the bot (long polling, or a webhook with --webhook)"
    )
    run.add_argument("--webhook", metavar="URL", help="public HTTPS URL Telegram posts updates to")
    run.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default="0.0.0.0:8080",
        help="where the webhook server listens (default 0.0.0.0:8080)",
    )
    run.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="polling mode: serve /healthz and /metrics here (default: the HTTP_LISTEN setting;"
        " in webhook mode they are on --listen)",
    )
    commands.add_parser("migrate", help="apply database migrations and exit")
    demo = commands.add_parser(
        "demo",
        help="the whole bot in a browser, no token needed: a stand-in for Telegram and a clock",
        description="Start the bot against a built-in stand-in for Telegram, on a database of its "
        "own, and serve a page with a customer's, the staff group's and a master's chats and a "
        "clock to move (it runs the planners and the sender as `carebot tick --now` does).",
    )
    demo.add_argument(
        "--port", type=int, default=8080, help="the page's port on 127.0.0.1 (default 8080)"
    )
    demo.add_argument(
        "--seed", action="store_true", help="a dozen customers with visits, for /stats at once"
    )
    demo.add_argument(
        "--business", metavar="PATH", type=Path, help="a business file to preview (default as run)"
    )
    demo.add_argument(
        "--dir",
        metavar="DIR",
        type=Path,
        default=Path("carebot-demo"),
        help="the demo's database and files (default ./carebot-demo)",
    )
    tick = commands.add_parser(
        "tick", help="run every planner once, deliver what is due, and exit (cron)"
    )
    tick.add_argument(
        "--now",
        metavar="ISO-8601",
        type=_moment,
        help="act as of this moment, e.g. 2026-03-14T10:30+03:00 (default: now)",
    )
    commands.add_parser("outbox", help="print the outbox queue by kind and state")
    export = commands.add_parser(
        "export",
        help="write the base as CSV files (customers, visits, coupons, bookings, surveys, consents)",
        description="Write the base as CSV files (UTF-8 with a BOM, commas), customers and visits "
        "in the import template's columns, so `carebot import` restores them.",
    )
    export.add_argument(
        "--to", metavar="DIR", type=Path, help="the folder to write (default ./export-<date>)"
    )
    importing = commands.add_parser(
        "import",
        help="bring in customers or visits from a CSV file (a dry run unless --apply)",
        description="Read a CSV of customers or visits (the generic template, or a YCLIENTS or "
        "Altegio export; UTF-8 or Windows-1251, comma or semicolon) and print what it holds. "
        "Nothing is written without --apply; importing the same file again adds nothing.",
    )
    importing.add_argument("kind", choices=("customers", "visits"))
    importing.add_argument("file", metavar="FILE", help="the CSV file")
    importing.add_argument("--apply", action="store_true", help="write it (default: a dry run)")
    importing.add_argument(
        "--lang", choices=("ru", "en"), default="ru", help="the report's language (default ru)"
    )
    importing.add_argument(
        "--rejected",
        metavar="CSV",
        help="also write every rejected line (line, reason, value) to this CSV file",
    )
    return parser


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 moment like 2026-03-14T10:30+03:00"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add one, like +03:00 or Z")
    return moment


async def _tick(settings: Settings, now: datetime | None) -> None:
    from bot.app import App
    from bot.clock import FixedClock

    await _reach_redis(settings)
    app = await App.create(settings, clock=FixedClock(now) if now else None)
    try:
        result = await app.tick()
    finally:
        await app.close()
    reasons = result.pop("outbox_reasons", {})
    print(" ".join(f"{k}={v}" for k, v in result.items()))
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        print(f"outbox reason={_quoted(reason)} count={count}")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


async def _reach_redis(settings: Settings) -> None:
    """PING the Redis of REDIS_URL, so a wrong host is one line at start-up, not the first
    customer's "something went wrong"."""
    if not settings.redis_url:
        return
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    try:
        client = Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
    except ValueError as error:
        raise ConfigError(f"setting REDIS_URL is malformed: {error}") from None
    try:
        await asyncio.wait_for(client.ping(), REDIS_TIMEOUT_SECONDS)
    except (RedisError, OSError, TimeoutError) as error:
        reason = (
            str(error).splitlines()[0]
            if str(error)
            else f"no answer within {REDIS_TIMEOUT_SECONDS:g} s"
        )
        raise Unreachable(f"cannot reach Redis (REDIS_URL): {reason}") from None
    finally:
        await client.aclose()


async def _reach_api(app: App, settings: Settings) -> None:
    """getMe, bounded by TELEGRAM_TIMEOUT: a wrong token, an unreachable or a silent API fails
    here in one line (ApiWait has logged what we wait for after a couple of seconds)."""
    from aiogram.exceptions import TelegramNetworkError

    try:
        await asyncio.wait_for(app.bot.get_me(), settings.telegram_timeout + 1)
    except TimeoutError:
        raise _silent(settings, "getMe") from None
    except TelegramNetworkError as error:
        if "timeout" in str(error).lower():
            raise _silent(settings, "getMe") from None
        raise


def _silent(settings: Settings, method: str) -> Unreachable:
    where = settings.telegram_api_url or "https://api.telegram.org"
    return Unreachable(
        f"the Bot API at {where} did not answer {method} within {settings.telegram_timeout:g} s "
        "(TELEGRAM_TIMEOUT): check TELEGRAM_API_URL and the network"
    )


async def _outbox(settings: Settings) -> None:
    from bot.db.engine import create_engine
    from bot.db.migrate import upgrade
    from bot.db.repositories import Database

    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with Database(engine).transaction() as repos:
            counts = await repos.outbox.counts()
    finally:
        await engine.dispose()
    print(f"{'kind':<10} {'state':<10} {'count':>8}")
    for kind, state, count in counts:
        print(f"{kind:<10} {state:<10} {count:>8}")
    if not counts:
        print("(the outbox is empty)")


class ImportFailed(Exception):
    """The file to import cannot be read: one line, exit 1, nothing written."""


IMPORT_LINES_SHOWN = 50  # rejected lines printed; --rejected writes them all


def _import(settings: Settings, args: argparse.Namespace) -> None:
    """The file is opened (and the rejected lines written) here, outside the event loop."""
    try:
        stream = open(args.file, "rb")  # noqa: SIM115  (closed once imported)
    except OSError as error:
        raise ImportFailed(f"cannot open {args.file}: {error.strerror or error}") from None
    with stream:
        text, rejected = asyncio.run(_imported(settings, args, stream))
    print(text)
    if args.rejected:
        try:
            with open(args.rejected, "wb") as out:
                out.write(rejected)
        except OSError as error:
            raise ImportFailed(f"cannot write {args.rejected}: {error.strerror or error}") from None


async def _imported(
    settings: Settings, args: argparse.Namespace, stream: BinaryIO
) -> tuple[str, bytes]:
    from bot.business import load_business
    from bot.clock import SystemClock
    from bot.db.engine import create_engine
    from bot.db.migrate import upgrade
    from bot.db.repositories import Database
    from bot.rendering import Renderer
    from bot.services.importing import ImportFileError, ImportService, Kind
    from bot.telegram_text import visible

    business = load_business(settings.business_file)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        service = ImportService(Database(engine), SystemClock(), business, settings.tz)
        try:
            report = await service.run(stream, Kind(args.kind), apply=args.apply)
        except ImportFileError as error:
            raise ImportFailed(f"{args.file}: {error}") from None
    finally:
        await engine.dispose()
    text = Renderer(settings.tz).text(
        args.lang,
        "import_report",
        report=report,
        lines=report.rejected[:IMPORT_LINES_SHOWN],
        channel="cli",
    )
    return visible(text), report.rejected_csv() if args.rejected else b""


class ExportFailed(Exception):
    """The export's folder cannot be written: one line, exit 1."""


async def _export(settings: Settings, folder: Path | None) -> None:
    from bot.business import load_business
    from bot.clock import SystemClock
    from bot.db.engine import create_engine
    from bot.db.migrate import upgrade
    from bot.db.repositories import Database
    from bot.services.exporting import Exporter

    business = load_business(settings.business_file)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        exporter = Exporter(Database(engine), SystemClock(), business, settings.tz)
        folder = folder or Path(exporter.folder_name())
        try:
            files = await exporter.to_folder(folder)
        except OSError as error:
            raise ExportFailed(f"cannot write {folder}: {error.strerror or error}") from None
    finally:
        await engine.dispose()
    for file in files:
        print(f"{folder / file.name} rows={file.rows}")


async def _migrate(settings: Settings) -> None:
    from bot.db.engine import create_engine
    from bot.db.migrate import upgrade

    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    log.info("database is up to date database=%s", settings.database_label())


def freeze_start_up() -> None:
    """What start-up built (templates, Bot API types, the schema, the business) lives as long as
    the process: out of the garbage collector's way, its full collections no longer walk it while
    updates are handled (about a sixth of the CPU an update costs, measured by bench/updates.py)."""
    gc.collect()
    gc.freeze()


async def _run(
    settings: Settings, webhook: str | None, listen: str, http: str | None = None
) -> None:
    from bot.app import App

    await _reach_redis(settings)
    app = await App.create(settings)
    try:
        await _reach_api(app, settings)
    except BaseException:
        await app.close()
        raise
    freeze_start_up()
    if webhook:
        host, _, port = listen.rpartition(":")
        if not port.isdigit():
            raise ConfigError(f"--listen {listen!r} is not HOST:PORT")
        await app.run_webhook(webhook, host or "0.0.0.0", int(port))
    else:
        where: tuple[str, int] | None = None
        if http or settings.http_listen:
            try:
                where = split_listen(http or settings.http_listen or "")
            except ValueError as error:
                await app.close()
                raise ConfigError(f"--http: {error}") from None
        await app.run_polling(http=where)
    if app.fault:
        raise Unreachable(f"stopped: {app.fault}; restore it and start again")


OFFLINE_COMMANDS = frozenset({"import", "export", "migrate"})


class _NeverRaised(Exception):
    """Stands in for aiogram's errors in a command that does not load aiogram."""


def main(argv: list[str] | None = None) -> int:
    lazy_types.install()  # the process's entry point: before anything imports aiogram (bot/lazy_types.py)
    args = _parser().parse_args(argv)
    if args.command in OFFLINE_COMMANDS:
        # They never talk to Telegram: aiogram (a second and a half of CPU to import) stays out.
        unauthorized: type[Exception] = _NeverRaised
        network: type[Exception] = _NeverRaised
    else:
        from aiogram.exceptions import TelegramNetworkError, TelegramUnauthorizedError

        unauthorized, network = TelegramUnauthorizedError, TelegramNetworkError
    setup_logging()
    if args.command == "demo":  # no settings to read: the demo brings its own
        from bot.demo.run import main as demo

        return demo(args.dir, args.port, args.seed, args.business)
    try:
        settings = load_settings()
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "tick":
            asyncio.run(_tick(settings, args.now))
        elif args.command == "outbox":
            asyncio.run(_outbox(settings))
        elif args.command == "export":
            asyncio.run(_export(settings, args.to))
        elif args.command == "import":
            _import(settings, args)
        else:
            asyncio.run(_run(settings, args.webhook, args.listen, args.http))
    except ConfigError as error:
        print(f"carebot: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except (Unreachable, ImportFailed, ExportFailed) as error:
        print(f"carebot: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except unauthorized:
        print(
            "carebot: Telegram refused BOT_TOKEN (Unauthorized): copy it again from @BotFather",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    except network as error:
        where = "TELEGRAM_API_URL" if settings.telegram_api_url else "api.telegram.org"
        reason = str(error).removeprefix("HTTP Client says - ")
        if "timeout" in reason.lower():  # a call after getMe (setMyCommands) met a silent server
            reason = str(_silent(settings, error.method.__api_method__))  # type: ignore[attr-defined]
            print(f"carebot: {reason}", file=sys.stderr)
        else:
            print(f"carebot: cannot reach the Bot API ({where}): {reason}", file=sys.stderr)
        return EXIT_FAILURE
    except (OperationalError, DBAPIError, OSError) as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        print(f"carebot: cannot open the database (DATABASE_URL): {reason}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        pass
    return 0
