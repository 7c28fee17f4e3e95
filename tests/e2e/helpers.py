"""Steps a customer takes, and what the database holds afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.app import App
from bot.clock import FixedClock
from bot.db.models import Consent, Coupon, Customer
from bot.db.repositories import Database
from tests.conftest import ADMIN_CHAT, BUSINESS_FILE, TOKEN, make_settings
from tests.harness import InProcessBot, Renderings
from tests.telegram_server import Call, Person, TelegramServer

MOSCOW = ZoneInfo("Europe/Moscow")

# cashback on: 5 % of a sale in points, up to 30 % of a check paid with them, kept 12 months
CASHBACK = """
[loyalty.cashback]
enabled = true
percent = 5
max_share = 0.3
expire_months = 12
"""


def msk(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=MOSCOW)


def business_with(folder: Path, old: str, new: str) -> Path:
    """The test business file with one line changed, written into `folder`."""
    path = folder / "business.toml"
    path.write_text(BUSINESS_FILE.read_text().replace(old, new))
    return path


def business_plus(folder: Path, sections: str) -> Path:
    """The test business file with `sections` (TOML) added at its end, written into `folder`."""
    path = folder / "business.toml"
    path.write_text(BUSINESS_FILE.read_text() + sections)
    return path


@asynccontextmanager
async def bot_on(
    telegram: TelegramServer,
    database_url: str,
    clock: FixedClock,
    business_file: Path,
    **settings: object,
) -> AsyncIterator[InProcessBot]:
    """The bot fed in-process (tests/harness.py), as the `carebot` fixture runs it, on a business
    file of the test's own (and other `settings`, like a payment provider's token)."""
    running = InProcessBot(
        make_settings(telegram, database_url, business_file=business_file, **settings),
        clock,
        telegram,
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@asynccontextmanager
async def app_of(
    telegram: TelegramServer, database_url: str, clock: FixedClock, business_file: Path
) -> AsyncIterator[App]:
    """The bot's App on a business file of the test's own, each Call knowing its template."""
    instance = await App.create(
        make_settings(telegram, database_url, business_file=business_file), clock=clock
    )
    Renderings(telegram.templates).wrap(instance.render)  # so each Call knows its template
    try:
        yield instance
    finally:
        await instance.close()


def carebot_env(telegram: TelegramServer, database_url: str) -> dict[str, str]:
    """The environment `carebot` commands run in: the test bot, base and business, no Redis."""
    env = {
        **os.environ,
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.url,
        "DATABASE_URL": database_url,
        "BUSINESS_FILE": str(BUSINESS_FILE),
        "ADMIN_CHAT_ID": str(ADMIN_CHAT),
    }
    env.pop("REDIS_URL", None)
    return env


def carebot_cli(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`carebot <args>` in its own process, as the owner runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def tap(
    person: Person, message: Call, button: str, edit: str = "editMessageReplyMarkup"
) -> Call:
    """Press a button whose handler answers the press and edits its message; return the edit."""
    await person.press(message, button)
    await person.next("answerCallbackQuery")
    return await person.next(edit)


async def book_days(person: Person, service: str = "Маникюр", master: str = "Анна") -> Call:
    """/book → the service → the master: the message with the master's days."""
    await person.send("/book")
    masters = await tap(person, await person.reply(), service, "editMessageText")
    return await tap(person, masters, master, "editMessageText")


async def forget(person: Person) -> Call:
    """/forget, confirmed: the question's message as the erasure leaves it."""
    await person.send("/forget")
    return await tap(person, await person.reply(), "Да, удалить", "editMessageText")


async def reply_of(person: Person, template: str, tries: int = 6) -> Call:
    """The first of `person`'s next `tries` messages made from `template` (others sent on their
    own, a thank-you offer say, may come first)."""
    for _ in range(tries):
        message = await person.reply(timeout=15)
        if message.template == template:
            return message
    raise AssertionError(f"no {template} in {tries} messages")


async def consent(person: Person, start: str = "/start") -> Call:
    await person.send(start)
    await tap(person, await person.reply(), "✅")
    return await person.reply()  # the phone question


async def to_birthday(person: Person, phone: str = "79161234567") -> Call:
    """Consent and share the phone; return the birthday question."""
    await consent(person)
    await person.send_contact(phone)
    await person.reply()  # "number saved", removes the contact keyboard
    return await person.reply()


async def onboard(
    person: Person,
    phone: str = "79161234567",
    birthday: str | None = "14.03.1990",
    start: str = "/start",
    offers: bool = True,
) -> Call:
    """From /start to the welcome coupon, saying yes (or no) to offers; returns the bot's last
    message."""
    await consent(person, start)
    await person.send_contact(phone)
    await person.reply()  # "number saved", removes the contact keyboard
    ask_birthday = await person.reply()
    if birthday is None:
        await tap(person, ask_birthday, "Пропустить" if person.language_code == "ru" else "Skip")
    else:
        await person.send(birthday)
    await tap(person, await person.reply(), person.first_name)
    return await answer_offers(person, await person.reply(), offers)


async def answer_offers(person: Person, question: Call, offers: bool) -> Call:
    """The offers question answered with its button; returns the welcome message."""
    ru = person.language_code == "ru"
    await tap(person, question, ("Да" if offers else "Нет") if ru else ("Yes" if offers else "No"))
    return await person.reply()


async def ask_staff(customer: Person, staff: Person, text: str) -> Call:
    """The customer writes to the care chat; returns the message as the staff see it."""
    await customer.send(text)
    relayed = await staff.reply()
    await customer.reply()  # "we got your message"
    return relayed


async def customer_of(db: Database, tg_user_id: int) -> Customer | None:
    async with db.transaction() as repos:
        return await repos.customers.by_tg_user(tg_user_id)


async def customer_id_of(db: Database, tg_user_id: int) -> int:
    customer = await customer_of(db, tg_user_id)
    assert customer is not None, f"no customer {tg_user_id}"
    return customer.id


async def count(db: Database, model: type, *where: Any) -> int:
    async with db.transaction() as repos:
        query = select(func.count()).select_from(model).where(*where)
        return int(await repos.session.scalar(query) or 0)


async def coupons_of(db: Database, customer_id: int) -> list[Coupon]:
    async with db.transaction() as repos:
        return list(
            await repos.session.scalars(select(Coupon).where(Coupon.customer_id == customer_id))
        )


async def consents_of(db: Database, customer_id: int) -> list[Consent]:
    async with db.transaction() as repos:
        query = select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.id)
        return list(await repos.session.scalars(query))
