"""Telegram Business without Telegram: connections and their changes, who a customer of the
account is, when the bot may write there, the working hours and the out-of-hours reply once
per evening, the owner's own messages, edits and deletions, /forget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.business import Business, Retention, load_business
from bot.clock import FixedClock
from bot.db.models import (
    BusinessChat,
    BusinessMessage,
    CareMessage,
    Customer,
    OutboxMessage,
    OutboxState,
    StaffAction,
)
from bot.db.repositories import Database
from bot.events import CustomerErased
from bot.services.business_chats import (
    AUTO_REPLY,
    BIZ_REPLY,
    CONNECTION_NOTICE,
    DELETED,
    EDITED,
    BusinessChats,
    ConnectionInfo,
    Refusal,
)
from bot.services.care import Author, CareService, Incoming, StaffReply
from bot.services.customers import CustomerService
from bot.services.retention import RetentionService
from bot.settings import ConfigError
from tests.conftest import BUSINESS_FILE

MOSCOW = ZoneInfo("Europe/Moscow")
ADMIN = -100777
CONNECTION = "biz-1"
OWNER = 7001


def msk(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=MOSCOW).astimezone(UTC)


def info(*, enabled: bool = True, can_reply: bool = True, name: str = "Салон") -> ConnectionInfo:
    return ConnectionInfo(CONNECTION, OWNER, name, {"can_reply": can_reply}, enabled)


@pytest.fixture
def auto_reply(business: Business) -> Business:
    return business.model_copy(
        update={
            "business_account": business.business_account.model_copy(update={"auto_reply": True})
        }
    )


def service(db: Database, clock: FixedClock, business: Business) -> BusinessChats:
    return BusinessChats(db, clock, business, MOSCOW, CareService(db, clock, business), ADMIN)


async def rows(db: Database, model: type, *where: Any) -> list[Any]:
    async with db.reading() as repos:
        found: list[Any] = list(await repos.session.scalars(select(model).where(*where)))
        repos.session.expunge_all()  # read as they are, after the session is gone
        return found


async def outbox(db: Database, template: str) -> list[tuple[str, dict[str, Any]]]:
    async with db.reading() as repos:
        query = select(OutboxMessage.key, OutboxMessage.data).where(
            OutboxMessage.template == template
        )
        return [(k, dict(d or {})) for k, d in await repos.session.execute(query)]


async def write(
    chats: BusinessChats, user: int, message_id: int, text: str = "Привет", **kw: Any
) -> None:
    await chats.from_customer(
        CONNECTION, Incoming(Author(user, "Вера"), message_id, "text", text), **kw
    )


async def test_connection_changes_are_stored_and_told_once_each(
    db: Database, clock: FixedClock, business: Business
) -> None:
    chats = service(db, clock, business)
    account = await chats.connection_changed(info())
    assert (account.enabled, account.can_reply, account.rights) == (True, True, ("can_reply",))
    await chats.connection_changed(info())  # the same update again: nothing new to tell
    await chats.connection_changed(info(can_reply=False))
    await chats.connection_changed(info(enabled=False, can_reply=False))
    notices = [d for _, d in await outbox(db, CONNECTION_NOTICE)]
    assert [(d["enabled"], d["can_reply"], d["was_can_reply"]) for d in notices] == [
        (True, True, None),
        (True, False, True),
        (False, False, False),
    ]
    [stored] = await chats.accounts()
    assert (stored.enabled, stored.can_reply, stored.owner_name) == (False, False, "Салон")


async def test_the_bot_may_write_only_while_the_account_allows_it(
    db: Database, clock: FixedClock, business: Business
) -> None:
    chats = service(db, clock, business)
    assert await chats.sendable(CONNECTION, 501) is Refusal.DISCONNECTED
    await chats.connection_changed(info())
    assert await chats.sendable(CONNECTION, 501) is Refusal.NO_CHAT  # never wrote there
    await write(chats, 501, 1)
    assert await chats.sendable(CONNECTION, 501) is None
    clock.advance(timedelta(hours=23, minutes=59))
    assert await chats.sendable(CONNECTION, 501) is None
    clock.advance(timedelta(minutes=2))  # Telegram's 24 hours are over
    assert await chats.sendable(CONNECTION, 501) is Refusal.EXPIRED
    await write(chats, 501, 2)
    await chats.connection_changed(info(can_reply=False))
    assert await chats.sendable(CONNECTION, 501) is Refusal.NO_RIGHT
    await chats.connection_changed(info(enabled=False))
    assert await chats.sendable(CONNECTION, 501) is Refusal.DISCONNECTED
    # A request is refused at once, and nothing is queued.
    refusal = await chats.request(
        "invite", 501, staff_id=1, staff_name="Ольга", chat_id=ADMIN, message_id=9, thread_id=None
    )
    assert refusal is Refusal.DISCONNECTED and not await outbox(db, "business_invite")


async def test_replies_go_through_the_account_the_customer_wrote_to_last(
    db: Database, clock: FixedClock, business: Business
) -> None:
    chats = service(db, clock, business)
    await chats.connection_changed(info())
    assert await chats.route(502) is None
    await write(chats, 502, 1)
    route = await chats.route(502)
    assert route is not None and (route.connection_id, route.owner_name) == (CONNECTION, "Салон")
    reply = StaffReply(502, 9001, "Ольга", ADMIN, 77, None, "text", "Ответ", None, None)
    await chats.take_reply(reply, route, html="Ответ", media=None)
    [(key, data)] = await outbox(db, BIZ_REPLY)
    assert key == f"{BIZ_REPLY}:502:77"
    assert data["business_connection_id"] == CONNECTION and data["html"] == "Ответ"
    assert await rows(db, StaffAction, StaffAction.action == "reply")  # audited as any reply
    # They wrote to the bot itself afterwards: the answer goes there.
    clock.advance(timedelta(minutes=1))
    care = CareService(db, clock, business)
    await care.take_incoming(Incoming(Author(502, "Вера"), 5, "text", "в бот"), ADMIN)
    assert await chats.route(502) is None


async def test_a_customer_is_matched_to_their_card_by_their_own_phone(
    db: Database, clock: FixedClock, business: Business
) -> None:
    chats = service(db, clock, business)
    await chats.connection_changed(info())
    async with db.transaction() as repos:
        imported = Customer(name="Вера", phone="+79161112233", created_at=clock.now())
        someone = Customer(
            name="Инна", phone="+79164445566", tg_user_id=999, created_at=clock.now()
        )
        repos.session.add_all([imported, someone])
        await repos.session.flush()
        imported_id = imported.id
    await write(chats, 503, 1, "8 916 111-22-33", phone="8 916 111-22-33")
    await write(chats, 503, 2, "а купоны?")  # later messages: the card remembered for the chat
    assert [m.customer_id for m in await rows(db, BusinessMessage)] == [imported_id, imported_id]
    [chat] = await rows(db, BusinessChat)
    assert chat.customer_id == imported_id
    # Someone else's phone (another Telegram account's card) is no match.
    await write(chats, 504, 1, "", phone="+79164445566")
    [other] = await rows(db, BusinessChat, BusinessChat.tg_user_id == 504)
    assert other.customer_id is None


async def test_the_owners_messages_edits_and_deletions(
    db: Database, clock: FixedClock, business: Business
) -> None:
    chats = service(db, clock, business)
    await chats.connection_changed(info())
    await write(chats, 505, 1, "Запишите на среду")
    await chats.from_owner(CONNECTION, 505, 2, "text", "Записали!")
    await chats.from_owner(CONNECTION, 505, 2, "text", "Записали!")  # the same update again
    care = await rows(db, CareMessage, CareMessage.tg_user_id == 505)
    assert [(c.direction, c.text, c.staff_id) for c in care] == [
        ("in", "Запишите на среду", None),
        ("out", "Записали!", OWNER),
    ]
    await chats.edited(CONNECTION, 505, 1, "Запишите на четверг")
    await chats.edited(CONNECTION, 505, 2, "Записали на четверг!")  # the owner's: no note
    await chats.edited(CONNECTION, 505, 99, "до подключения")  # unknown here: nothing
    [(_, note)] = await outbox(db, EDITED)
    assert note["text"] == "Запишите на четверг" and note["tg_user_id"] == 505
    await chats.deleted(CONNECTION, 505, [1, 2, 99])
    await chats.deleted(CONNECTION, 505, [1])  # again: nothing new
    assert len(await outbox(db, DELETED)) == 1  # the customer's message only
    care = await rows(db, CareMessage, CareMessage.tg_user_id == 505)
    assert [c.text for c in care] == [None, None]
    assert all(m.deleted_at is not None for m in await rows(db, BusinessMessage))


def test_working_hours_are_the_masters_hours(clock: FixedClock, business: Business) -> None:
    chats = BusinessChats(None, clock, business, MOSCOW, None, ADMIN)  # type: ignore[arg-type]
    # Анна: Mon-Fri 10-19; Ольга: Wed-Fri 11-20, Sat 10-18, Sun 10-16 (2026-11-23 is a Monday).
    assert chats.opening(msk("2026-11-23T12:00:00")) is None
    assert chats.opening(msk("2026-11-23T09:59:00")) == msk("2026-11-23T10:00:00")
    assert chats.opening(msk("2026-11-23T19:00:00")) == msk("2026-11-24T10:00:00")
    assert chats.opening(msk("2026-11-25T19:30:00")) is None  # Ольга till 20 on Wednesdays
    assert chats.opening(msk("2026-11-28T18:30:00")) == msk("2026-11-29T10:00:00")
    assert chats.opening(msk("2026-11-29T23:00:00")) == msk("2026-11-30T10:00:00")


async def test_out_of_hours_reply_once_per_evening(
    db: Database, clock: FixedClock, auto_reply: Business, business: Business
) -> None:
    chats = service(db, clock, auto_reply)
    await chats.connection_changed(info())
    clock.set(msk("2026-11-23T12:00:00"))
    await write(chats, 506, 1)
    assert not await outbox(db, AUTO_REPLY)  # open
    clock.set(msk("2026-11-23T21:00:00"))
    await write(chats, 506, 2)
    clock.set(msk("2026-11-24T02:00:00"))  # after midnight: the same evening
    await write(chats, 506, 3)
    await write(chats, 507, 1)  # another customer: their own
    clock.set(msk("2026-11-24T20:00:00"))
    await write(chats, 506, 4)
    keys = sorted(k for k, _ in await outbox(db, AUTO_REPLY))
    assert keys == [
        f"{AUTO_REPLY}:506:2026-11-24",
        f"{AUTO_REPLY}:506:2026-11-25",
        f"{AUTO_REPLY}:507:2026-11-24",
    ]
    # Off in the business file (the default): never.
    off = service(db, clock, business)
    await off.from_customer(CONNECTION, Incoming(Author(508, "Я"), 1, "text", "x"))
    assert not [k for k, _ in await outbox(db, AUTO_REPLY) if ":508:" in k]


async def test_forget_erases_their_account_chats(
    db: Database, clock: FixedClock, business: Business
) -> None:
    chats = service(db, clock, business)
    await chats.connection_changed(info())
    async with db.transaction() as repos:
        vera = Customer(name="Вера", tg_user_id=509, created_at=clock.now())
        repos.session.add(vera)
        await repos.session.flush()
        vera_id = vera.id
    await write(chats, 509, 1)
    await chats.from_owner(CONNECTION, 509, 2, "text", "Ответ")
    await write(chats, 510, 1)  # someone else's stays
    async with db.transaction() as repos:
        await chats.erase(repos, CustomerErased(vera_id, clock.now()))
    assert [m.tg_user_id for m in await rows(db, BusinessMessage)] == [510]
    assert [c.tg_user_id for c in await rows(db, BusinessChat)] == [510]


def test_auto_reply_needs_working_hours(tmp_path: Path) -> None:
    text = BUSINESS_FILE.read_text()
    start, end = text.index("[[masters]]"), text.index("# Messages the bot sends on its own")
    path = tmp_path / "business.toml"
    path.write_text(
        text[:start].replace('masters = ["anna", "olga"]', "").replace('masters = ["olga"]', "")
        + text[end:]
        + "\n[business_account]\nauto_reply = true\n"
    )
    with pytest.raises(ConfigError, match="business_account.auto_reply needs working hours"):
        load_business(path)
    path.write_text(text + '\n[business_account]\nauto_reply = "maybe"\n')
    with pytest.raises(ConfigError, match="business_account.auto_reply"):
        load_business(path)


async def test_the_retention_period_blanks_the_account_chat_words_too(
    db: Database, clock: FixedClock, business: Business
) -> None:
    chats = service(db, clock, business)
    await chats.connection_changed(info())
    await write(chats, 511, 1, "старый вопрос")
    route = await chats.route(511)
    assert route is not None
    reply = StaffReply(511, 9001, "Ольга", ADMIN, 78, None, "text", "старый ответ", None, None)
    await chats.take_reply(reply, route, html="старый ответ", media=None)
    await chats.from_owner(CONNECTION, 511, 2, "text", "ответ владельца")
    async with db.transaction() as repos:  # everything went out
        for row in await repos.session.scalars(select(OutboxMessage)):
            row.state = OutboxState.SENT
    clock.advance(timedelta(days=40))
    kept = business.model_copy(update={"retention": Retention(care_texts_days=30)})
    customers = CustomerService(db, clock, kept, MOSCOW, secret_key=b"test-secret-key")
    await RetentionService(db, clock, kept, customers).erase_old_care_texts()
    care = await rows(db, CareMessage, CareMessage.tg_user_id == 511)
    assert [c.text for c in care] == [None, None, None]
    [sent] = await rows(db, OutboxMessage, OutboxMessage.template == BIZ_REPLY)
    assert "старый ответ" not in str(sent.data) and not sent.text
