"""`/forget` reaches every copy of the customer's personal data (one test per kind of copy),
leaves the anonymous totals, and welcome-claim fingerprints are keyed with a secret kept
outside the database."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import (
    Booking,
    CareMessage,
    Consent,
    ConsentVia,
    Erasure,
    ErasureReason,
    FsmRecord,
    OutboxMessage,
    Purchase,
    StaffAction,
    StaffNote,
    Survey,
    WelcomeClaim,
)
from bot.db.repositories import Database
from bot.events import Events
from bot.keys import KEY_FILE_NAME, key_file_path, load_secret_key
from bot.outbox.compose import compose
from bot.rendering import Renderer
from bot.services.birthdays import Birthday
from bot.services.booking import Actor, BookingService
from bot.services.care import CareService, Inbound, StaffReply
from bot.services.customers import (
    CustomerService,
    WelcomeOutcome,
    keyed_fingerprint,
    welcome_fingerprints,
    welcome_key,
)
from bot.services.staff import Staff, StaffService
from bot.settings import ConfigError, Settings, load_settings

MOSCOW = ZoneInfo("Europe/Moscow")
KEY = b"test-secret-key"
OLGA = Staff(1, "Ольга")
MONDAY = date(2026, 11, 30)
TG, OTHER_TG, MASTER_TG, ADMIN = 7, 8, 501, -100
NAME, PHONE = "Зульфия Ктоева", "+79161234567"


def moscow(day: date, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=MOSCOW).astimezone(UTC)


@pytest.fixture
def customers(
    db: Database, clock: FixedClock, business: Business, events: Events
) -> CustomerService:
    return CustomerService(db, clock, business, MOSCOW, events, secret_key=KEY)


@pytest.fixture
def booking(
    db: Database, clock: FixedClock, business: Business, staff: StaffService, events: Events
) -> BookingService:
    service = BookingService(
        db, clock, business, MOSCOW, Renderer(MOSCOW), staff, admin_chat_id=ADMIN
    )
    events.on_erased(service.cancel_for_erased)
    return service


async def _onboard(
    customers: CustomerService, tg: int, name: str = NAME, phone: str = PHONE
) -> int:
    view = await customers.consent(tg, name=name, username="zulfiya_k", language="ru", source=None)
    await customers.set_phone(tg, phone)
    await customers.finish_onboarding(tg)
    return view.id


async def _all(db: Database, model: type, *where: Any) -> list:  # type: ignore[type-arg]
    async with db.transaction() as repos:
        return list(await repos.session.scalars(select(model).where(*where)))


# ---- the copies --------------------------------------------------------------------------------


async def test_staff_notes_and_the_audits_free_text_go_amounts_stay(
    db: Database, customers: CustomerService, staff: StaffService
) -> None:
    customer_id = await _onboard(customers, TG)
    other_id = await _onboard(customers, OTHER_TG, name="Другая", phone="+79035556677")
    await staff.add_note(OLGA, customer_id, "аллергия, беременна — Зульфия просила не звонить")
    await staff.add_note(OLGA, other_id, "другая заметка")
    await staff.record_sale(OLGA, customer_id, 150000, "manicure", "anna")

    assert await customers.forget(TG)
    assert [n.text for n in await _all(db, StaffNote)] == ["другая заметка"]
    actions = {(a.customer_id, a.action): a.details for a in await _all(db, StaffAction)}
    assert actions[(customer_id, "note")] == {}
    assert actions[(customer_id, "sale")] == {
        "amount_minor": 150000,
        "service": "Маникюр с покрытием",
        "master": "Анна",
    }
    assert actions[(other_id, "note")] == {"text": "другая заметка"}
    purchases = await _all(db, Purchase)
    assert [(p.customer_id, p.amount_minor) for p in purchases] == [
        (customer_id, 150000)
    ]  # totals intact


async def test_survey_comments_go_scores_stay(
    db: Database, customers: CustomerService, staff: StaffService, clock: FixedClock
) -> None:
    customer_id = await _onboard(customers, TG)
    sale = await staff.record_sale(OLGA, customer_id, 150000)
    async with db.transaction() as repos:
        repos.session.add(
            Survey(
                purchase_id=sale.purchase_id,
                customer_id=customer_id,
                planned_at=clock.now(),
                closes_at=clock.now(),
                score=2,
                answered_at=clock.now(),
                comment="Зульфия: мастер порезала палец, позвоните +79161234567",
            )
        )
    assert await customers.forget(TG)
    [survey] = await _all(db, Survey)
    assert (survey.score, survey.comment) == (2, None)


async def test_care_chat_texts_go(
    db: Database, customers: CustomerService, clock: FixedClock, business: Business
) -> None:
    care = CareService(db, clock, business)
    await _onboard(customers, TG)
    await _onboard(customers, OTHER_TG, name="Другая", phone="+79035556677")
    await care.record_inbound(Inbound(TG, "text", "я беременна, можно ли гель-лак?", (101,)))
    await care.take_reply(
        StaffReply(
            recipient=TG,
            staff_id=1,
            staff_name="Ольга",
            chat_id=-100,
            message_id=102,
            thread_id=None,
            kind="text",
            text="Зульфия, можно",
            html=None,
            signature=None,
        )
    )
    await care.record_inbound(Inbound(OTHER_TG, "text", "другой вопрос", (103,)))
    assert await customers.forget(TG)
    assert [m.text for m in await _all(db, CareMessage)] == ["другой вопрос"]


async def test_a_visits_free_text_reason_goes_the_bots_own_stays(
    db: Database, customers: CustomerService, booking: BookingService, clock: FixedClock
) -> None:
    clock.set(moscow(MONDAY, "09:00"))
    await _onboard(customers, TG)
    declined = await booking.book(TG, "manicure", "anna", moscow(MONDAY, "15:00"), source="menu")
    assert declined.booking
    await booking.decide(
        declined.booking.id,
        Actor(ADMIN, "admin", staff=True),
        accept=False,
        reason="Зульфия Ктоева грубила, больше не записывать",
    )
    ahead = await booking.book(
        TG, "manicure", "anna", moscow(MONDAY + timedelta(days=1), "15:00"), source="menu"
    )
    assert ahead.booking
    assert await customers.forget(TG)
    reasons = {b.id: (b.state, b.reason) for b in await _all(db, Booking)}
    assert reasons == {
        declined.booking.id: ("declined", None),
        ahead.booking.id: ("cancelled", "erased"),
    }


async def test_outbox_rows_to_them_lose_text_buttons_and_data(
    db: Database, customers: CustomerService, clock: FixedClock
) -> None:
    customer_id = await _onboard(customers, TG)
    other_id = await _onboard(customers, OTHER_TG, name="Другая", phone="+79035556677")
    now = clock.now()
    async with db.transaction() as repos:
        for key, who, chat in (
            ("thanks:1", customer_id, None),
            ("thanks:2", customer_id, None),
            ("reply:1", None, TG),
            ("thanks:3", other_id, None),
        ):
            await repos.outbox.queue(
                key=key,
                kind="service",
                template="thanks_offer",
                customer_id=who,
                chat_id=chat,
                data={"coupon": {"percent": 10}, "words": "Зульфия"},
                markup={"inline_keyboard": []},
                not_before=now,
                not_after=now + timedelta(days=1),
                now=now,
            )
        rows = {r.key: r for r in await repos.session.scalars(select(OutboxMessage))}
        for row in rows.values():
            row.text = "Зульфия, спасибо за визит!"
        rows["thanks:1"].state, rows["thanks:1"].sent_at = "sent", now
        rows["reply:1"].state = "sending"
    assert await customers.forget(TG)
    rows = {r.key: r for r in await _all(db, OutboxMessage)}
    for key in ("thanks:1", "thanks:2", "reply:1"):
        row = rows[key]
        assert (row.text, row.markup, row.data, row.chat_id) == (None, None, {}, None), key
    assert [rows[k].state for k in ("thanks:1", "thanks:2", "reply:1")] == [
        "sent",
        "skipped",
        "skipped",
    ]
    assert rows["thanks:2"].last_error == "erased"
    untouched = rows["thanks:3"]
    assert (untouched.text, untouched.state) == (
        "Зульфия, спасибо за визит!",
        "pending",
    )  # another customer


async def test_staff_notices_about_their_visits_lose_the_stored_text(
    db: Database,
    customers: CustomerService,
    booking: BookingService,
    clock: FixedClock,
    business: Business,
) -> None:
    """A booking request sent to the master named the customer with their phone; the master
    and the admin chat must still hear that the slot is free, but without the name."""
    clock.set(moscow(MONDAY, "09:00"))
    customer_id = await _onboard(customers, TG)
    await booking.join(MASTER_TG, await booking.invite("anna", "owner"))
    made = await booking.book(
        TG, "manicure", "anna", moscow(MONDAY + timedelta(days=1), "15:00"), source="menu"
    )
    assert made.booking
    render = Renderer(MOSCOW)
    async with db.transaction() as repos:  # the sender's work: rendered, stored, sent
        for row in await repos.session.scalars(select(OutboxMessage)):
            customer = await repos.customers.get(row.customer_id) if row.customer_id else None
            row.text, row.markup = await compose(
                repos,
                row,
                customer,
                business,
                MOSCOW,
                render,
                clock.now(),
                {row.template: booking.compose},
            )
            row.state, row.sent_at = "sent", clock.now()
    sent = {r.key: r.text for r in await _all(db, OutboxMessage)}
    assert (
        NAME in sent[f"booking_request:{made.booking.id}"]
        and PHONE in sent[f"booking_new:{made.booking.id}"]
    )

    assert await customers.forget(TG)
    rows = {r.key: r for r in await _all(db, OutboxMessage)}
    for key in (f"booking_request:{made.booking.id}", f"booking_new:{made.booking.id}"):
        assert (rows[key].text, rows[key].data, rows[key].markup, rows[key].state) == (
            None,
            {},
            None,
            "sent",
        )
    notices = [r for r in rows.values() if r.template == "booking_cancelled_staff"]
    assert sorted(r.chat_id for r in notices) == [ADMIN, MASTER_TG]
    assert all(r.state == "pending" and r.data == {"booking_id": made.booking.id} for r in notices)
    async with db.transaction() as repos:  # sent later: from the customer as they are now
        notice = await repos.outbox.get(notices[0].id)
        assert notice is not None
        text, _ = await compose(
            repos,
            notice,
            None,
            business,
            MOSCOW,
            render,
            clock.now(),
            {notice.template: booking.compose},
        )
    assert "без имени" in text and NAME not in text and PHONE not in text and "удалил" in text
    async with db.transaction() as repos:
        assert (await repos.purchases.summary(customer_id))[0] == 0  # nothing else touched


async def test_staff_rows_naming_them_in_data_are_found(
    db: Database, customers: CustomerService, clock: FixedClock
) -> None:
    """Rows to the admin chat that name the customer in their data (a relay of their words, an
    alert about their survey) lose the copy; one still waiting is not sent at all."""
    customer_id = await _onboard(customers, TG)
    now = clock.now()
    async with db.transaction() as repos:
        for key, data in (
            ("relay:1", {"customer_id": customer_id}),
            (f"inbound:{TG}:5", {"from_chat_id": TG}),
            ("relay:3", {"from_chat_id": OTHER_TG}),
            ("report:1", {"broadcast_id": customer_id}),
        ):
            await repos.outbox.queue(
                key=key,
                kind="relay",
                template="relay",
                chat_id=ADMIN,
                data=data,
                not_before=now,
                not_after=now + timedelta(days=1),
                now=now,
            )
        for row in await repos.session.scalars(select(OutboxMessage)):
            row.text = "Зульфия: я беременна"
    assert await customers.forget(TG)
    rows = {r.key: r for r in await _all(db, OutboxMessage)}
    renamed = [
        k for k in rows if k.startswith("erased:")
    ]  # their account's id is not kept in the key
    assert len(renamed) == 1 and not any(k.startswith("inbound:") for k in rows)
    assert [(rows[k].text, rows[k].data, rows[k].state) for k in ("relay:1", *renamed)] == [
        (None, {}, "skipped")
    ] * 2
    assert rows["relay:1"].chat_id == ADMIN
    assert rows["relay:3"].text and rows["report:1"].text  # not about them


async def test_their_conversation_state_goes(db: Database, customers: CustomerService) -> None:
    await _onboard(customers, TG)
    async with db.transaction() as repos:
        for key in (
            f"fsm:999:{TG}:{TG}:default",
            f"fsm:999:{TG}:55:{TG}:default",
            f"fsm:999:{OTHER_TG}:{OTHER_TG}:default",
            f"fsm:999:{ADMIN}:1:default",
            f"fsm:999:{TG}0:{TG}0:default",
        ):
            repos.session.add(
                FsmRecord(key=key, state="Onboarding:name", data={"typed": "Зульфия"})
            )
    assert await customers.forget(TG)
    assert sorted(r.key for r in await _all(db, FsmRecord)) == sorted(
        [
            f"fsm:999:{OTHER_TG}:{OTHER_TG}:default",
            f"fsm:999:{ADMIN}:1:default",
            f"fsm:999:{TG}0:{TG}0:default",
        ]
    )


# ---- the destruction record ---------------------------------------------------------------------


async def test_the_destruction_record_counts_each_category_and_names_nobody(
    db: Database,
    customers: CustomerService,
    staff: StaffService,
    clock: FixedClock,
    business: Business,
) -> None:
    care = CareService(db, clock, business)
    customer_id = await _onboard(customers, TG)
    await customers.set_birthday(TG, Birthday(14, 3, 1990))
    await staff.add_note(OLGA, customer_id, "Зульфия просила звонить после 18")
    await staff.add_note(OLGA, customer_id, "аллергия на шеллак")
    sale = await staff.record_sale(OLGA, customer_id, 150000, "manicure", "anna")
    await care.record_inbound(Inbound(TG, "text", "я беременна, можно ли гель-лак?", (101,)))
    async with db.transaction() as repos:
        repos.session.add(
            Survey(
                purchase_id=sale.purchase_id,
                customer_id=customer_id,
                planned_at=clock.now(),
                closes_at=clock.now(),
                score=2,
                answered_at=clock.now(),
                comment="Зульфия: скол на второй день",
            )
        )
        repos.session.add(
            FsmRecord(key=f"fsm:999:{TG}:{TG}:default", state="x", data={"typed": NAME})
        )

    assert await customers.forget(TG)
    [record] = await _all(db, Erasure)
    assert (record.customer_id, record.reason, record.at) == (
        customer_id,
        ErasureReason.FORGET,
        clock.now(),
    )
    assert record.categories == {
        "profile_fields": 5,  # their account, username, name, phone, birthday
        "care_messages": 1,
        "staff_notes": 2,
        "audit_details": 2,  # the notes' texts in the staff history (the sale's amount stays)
        "survey_comments": 1,
        "coupons_voided": 1,  # the welcome coupon
        "conversation_state": 1,
    }
    stored = json.dumps(
        {c.name: getattr(record, c.name) for c in Erasure.__table__.columns},
        ensure_ascii=False,
        default=str,
    )
    for needle in (NAME, PHONE, PHONE[1:], "zulfiya_k", "беременна", "шеллак", "скол", str(TG)):
        assert needle not in stored, needle
    [consent] = [c for c in await _all(db, Consent) if c.kind == "personal_data" and not c.granted]
    assert consent.via == ConsentVia.FORGET

    assert not await customers.forget(TG)  # a second /forget finds nobody and records nothing
    assert len(await _all(db, Erasure)) == 1


async def test_a_customer_with_little_gets_a_short_record(
    db: Database, customers: CustomerService
) -> None:
    """Only the categories that had anything: a customer who only consented."""
    await customers.consent(TG, name=None, username=None, language="ru", source=None)
    assert await customers.forget(TG)
    [record] = await _all(db, Erasure)
    assert record.categories == {"profile_fields": 1}  # their Telegram account


# ---- keyed fingerprints ------------------------------------------------------------------------


def _plain(value: str) -> str:
    return hashlib.sha256(f"carebot-welcome|{value}".encode()).hexdigest()


def test_fingerprints_are_keyed() -> None:
    key = welcome_key(KEY)
    fingerprints = welcome_fingerprints(key, TG, PHONE)
    assert fingerprints == welcome_fingerprints(key, TG, PHONE)
    assert _plain(f"phone:{PHONE}") not in fingerprints and _plain(f"tg:{TG}") not in fingerprints
    assert all(f.startswith("k1:") and len(f) <= 64 for f in fingerprints)
    assert set(fingerprints).isdisjoint(
        welcome_fingerprints(welcome_key(b"another-secret-key"), TG, PHONE)
    )


async def test_unkeyed_fingerprints_are_rekeyed_once_and_still_stop_a_second_coupon(
    db: Database, customers: CustomerService, clock: FixedClock
) -> None:
    async with db.transaction() as repos:  # what an older carebot stored for an erased customer
        repos.session.add_all(
            WelcomeClaim(fingerprint=_plain(v), coupon_id=None, claimed_at=clock.now())
            for v in (f"phone:{PHONE}", "tg:4242")
        )
    assert await customers.rekey_welcome_claims() == 2
    stored = {c.fingerprint for c in await _all(db, WelcomeClaim)}
    assert stored == {
        keyed_fingerprint(welcome_key(KEY), _plain(v)) for v in (f"phone:{PHONE}", "tg:4242")
    }
    assert await customers.rekey_welcome_claims() == 0  # idempotent
    await customers.consent(TG, name=NAME, username=None, language="ru", source=None)
    await customers.set_phone(TG, PHONE)
    assert (await customers.finish_onboarding(TG)).outcome is WelcomeOutcome.CLAIMED_ELSEWHERE


async def test_erasure_keeps_the_claim_so_the_coupon_is_not_given_twice(
    db: Database, customers: CustomerService
) -> None:
    await _onboard(customers, TG)
    assert await customers.forget(TG)
    again = await _onboard(customers, TG, phone="+79035556677")  # same account, another phone
    assert again and (await customers.active_coupons(TG)) == []
    fingerprints = {c.fingerprint for c in await _all(db, WelcomeClaim)}
    assert _plain(f"phone:{PHONE}") not in fingerprints and all(
        f.startswith("k1:") for f in fingerprints
    )


# ---- the key -----------------------------------------------------------------------------------


def _settings(database_url: str, **values: Any) -> Settings:
    return Settings(
        _env_file=None,
        bot_token="123456:TEST-token-for-carebot-end-to-end",  # type: ignore[call-arg, arg-type]
        database_url=database_url,
        **values,
    )


def test_a_key_file_is_made_once_beside_the_sqlite_file(tmp_path: Path) -> None:
    settings = _settings(f"sqlite+aiosqlite:///{tmp_path}/db/carebot.sqlite3")
    first = load_secret_key(settings)
    path = tmp_path / "db" / KEY_FILE_NAME
    assert first.created and first.source == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(path.read_text().strip())) == 32
    second = load_secret_key(settings)
    assert second.value == first.value and not second.created
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE_NAME]  # no temporary file left


def test_secret_key_setting_wins_and_makes_no_file(tmp_path: Path) -> None:
    settings = _settings(
        f"sqlite+aiosqlite:///{tmp_path}/carebot.sqlite3", secret_key="  0123456789abcdef-xyz "
    )
    key = load_secret_key(settings)
    assert (key.value, key.source, key.created) == (b"0123456789abcdef-xyz", "SECRET_KEY", False)
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_the_key_file_for_postgresql_is_under_data() -> None:
    assert (
        key_file_path("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
        == Path("data") / KEY_FILE_NAME
    )
    assert key_file_path("sqlite+aiosqlite:///data/carebot.sqlite3") == Path("data") / KEY_FILE_NAME
    assert key_file_path("sqlite+aiosqlite://") == Path("data") / KEY_FILE_NAME


def test_a_damaged_key_file_or_a_short_setting_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("\n")
    with pytest.raises(ConfigError, match="key file .* is damaged"):
        load_secret_key(_settings(f"sqlite+aiosqlite:///{tmp_path}/carebot.sqlite3"))
    monkeypatch.setenv("BOT_TOKEN", "123456:TEST-token-for-carebot-end-to-end")
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="setting SECRET_KEY is malformed: must be at least 16"):
        load_settings(_env_file=None)


async def test_the_app_rekeys_at_start_up_with_the_key_file(
    tmp_path: Path, business: Business, clock: FixedClock
) -> None:
    """The start-up step: an old database's plain hashes are keyed with the new key file."""
    from bot.app import App
    from bot.db.engine import create_engine
    from bot.db.migrate import upgrade
    from tests.conftest import BUSINESS_FILE

    url = f"sqlite+aiosqlite:///{tmp_path}/carebot.sqlite3"
    engine = create_engine(url)
    await upgrade(engine)
    async with Database(engine).transaction() as repos:
        repos.session.add(
            WelcomeClaim(
                fingerprint=_plain(f"phone:{PHONE}"), coupon_id=None, claimed_at=clock.now()
            )
        )
    await engine.dispose()
    app = await App.create(_settings(url, business_file=BUSINESS_FILE), clock=clock)
    try:
        key = (tmp_path / KEY_FILE_NAME).read_text().strip().encode()
        async with app.db.transaction() as repos:
            [claim] = await repos.session.scalars(select(WelcomeClaim))
            assert claim.fingerprint == keyed_fingerprint(
                welcome_key(key), _plain(f"phone:{PHONE}")
            )
            assert await repos.session.scalar(select(func.count()).select_from(WelcomeClaim)) == 1
    finally:
        await app.close()
