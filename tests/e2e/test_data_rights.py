"""The data leaves the bot on request: `/mydata` for a customer (a JSON file and a summary),
`/export` for the staff (the base as CSV files in a ZIP), `carebot export --to DIR`; and an
export imports back into an empty database as the same base."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import handlers.data_rights
from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Consent, Coupon, Customer, Purchase, StaffNote
from bot.db.repositories import Database
from bot.services.exporting import CUSTOMER_COLUMNS, VISIT_COLUMNS
from tests.conftest import (
    ADMIN_CHAT,
    NOW,
    PostgresDatabases,
    SqliteDatabases,
    _migrate,
)
from tests.e2e.helpers import carebot_cli, carebot_env, customer_id_of, forget
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process

MOSCOW = ZoneInfo("Europe/Moscow")
PRIVACY = "2026-11-01"  # tests/data/business.toml's privacy_version


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=MOSCOW).astimezone(UTC)


@pytest.fixture
def olga(telegram: TelegramServer) -> Person:
    return telegram.staff(9001, "Ольга", ADMIN_CHAT)


async def _sale_and_note(olga: Person, phone: str = "+79161234567") -> None:
    await olga.send(f"/sale {phone} 2000 маникюр Анна")
    await olga.reply()
    await olga.send(f"/note {phone} любит холодный чай, без сахара")
    await olga.reply()


async def _registered(
    db: Database,
    tg_user_id: int,
    name: str,
    phone: str = "+79161234567",
    *,
    birthday: tuple[int, int, int] | None = (14, 3, 1990),
    language: str = "ru",
    username: str | None = None,
) -> int:
    """A customer who finished onboarding (written directly: these tests are about their data,
    not about how onboarding asks for it), with their consent and welcome coupon."""
    day, month, year = birthday or (None, None, None)
    async with db.transaction() as repos:
        customer = Customer(
            tg_user_id=tg_user_id,
            username=username,
            name=name,
            name_folded=name.casefold(),
            language=language,
            phone=phone,
            birth_day=day,
            birth_month=month,
            birth_year=year,
            marketing_opt_out=False,
            data_consent_version=PRIVACY,
            created_at=NOW,
            onboarded_at=NOW,
        )
        repos.session.add(customer)
        await repos.session.flush()
        for kind in ("personal_data", "marketing"):
            repos.session.add(
                Consent(
                    customer_id=customer.id,
                    kind=kind,
                    granted=True,
                    version=PRIVACY,
                    at=NOW,
                    via="button",
                )
            )
        repos.session.add(
            Coupon(
                code=f"W{tg_user_id}",
                customer_id=customer.id,
                kind="welcome",
                percent=10,
                issued_at=NOW,
                expires_at=NOW + timedelta(days=30),
            )
        )
        return customer.id


def _csv(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    text = archive.read(name).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


# ---- /mydata ------------------------------------------------------------------------------------


async def test_my_data_is_a_json_file_and_a_summary(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(7101, "Анна", username="anna_k")
    await _registered(carebot.db, 7101, "Анна", username="anna_k")
    await _sale_and_note(olga)
    await anna.send("Здравствуйте, можно на завтра?")  # the care chat keeps it
    await olga.reply()
    await anna.reply()

    await anna.send("/mydata")
    summary = await anna.reply()
    assert summary.template == "mydata"
    assert "Имя: Анна" in summary.text and "Телефон: +79161234567" in summary.text
    assert "День рождения: 14.03.1990" in summary.text
    assert "Визитов: 1 (на 2000.00 ₽)" in summary.text
    assert "Заметок сотрудников о вас: 1" in summary.text
    assert "Сообщений в чате с нами: 1" in summary.text
    sent = await anna.next("sendDocument")
    upload = sent.upload()
    assert upload.filename == "mydata-2026-11-23.json"
    document = json.loads(upload.data)
    profile = document["profile"]
    assert (profile["name"], profile["phone"], profile["username"], profile["birthday"]) == (
        "Анна",
        "+79161234567",
        "anna_k",
        "1990-03-14",
    )
    assert profile["telegram_id"] == 7101
    data_consents = [c for c in document["consents"] if c["kind"] == "personal_data"]
    assert data_consents and data_consents[0]["granted"] is True
    assert data_consents[0]["version"] == "2026-11-01" and data_consents[0]["via"] == "button"
    assert [(v["service"]["id"], v["master"]["id"], v["amount"]) for v in document["visits"]] == [
        ("manicure", "anna", "2000.00")
    ]
    assert [c["kind"] for c in document["coupons"]] == ["welcome"]
    assert [n["text"] for n in document["staff_notes"]] == ["любит холодный чай, без сахара"]
    assert [m["text"] for m in document["care_chat"]] == ["Здравствуйте, можно на завтра?"]
    assert document["messages_from_us"] == [] or all(
        m["text"] for m in document["messages_from_us"]
    )
    await anna.quiet()


async def test_my_data_in_english_and_a_name_that_is_html(
    carebot, telegram: TelegramServer
) -> None:
    kim = telegram.user(7102, "<b>Kim</b> & co", language_code="en")
    await _registered(
        carebot.db, 7102, "<b>Kim</b> & co", "+79031112233", birthday=None, language="en"
    )
    await kim.send("/mydata")
    summary = await kim.reply()
    assert summary.template == "mydata"
    assert "Name: &lt;b&gt;Kim&lt;/b&gt; &amp; co" in summary.text  # shown as written
    assert "Birthday: not given" in summary.text and "Visits: 0" in summary.text
    document = json.loads((await kim.next("sendDocument")).upload().data)
    assert document["profile"]["name"] == "<b>Kim</b> & co"
    assert document["visits"] == [] and document["profile"]["birthday"] is None


async def test_my_data_before_meeting(carebot, telegram: TelegramServer) -> None:
    stranger = telegram.user(7103, language_code="en")
    await stranger.send("/mydata")
    assert (await stranger.reply()).template == "not_registered"
    await stranger.quiet()


# ---- /export -------------------------------------------------------------------------------------


async def test_export_in_the_admin_chat(carebot, telegram: TelegramServer, olga: Person) -> None:
    await _registered(carebot.db, 7201, "Анна")
    await _sale_and_note(olga)
    await olga.send("/export")
    sent = await olga.next("sendDocument")
    assert sent.chat_id == ADMIN_CHAT and sent.template == "export_done"
    assert "customers.csv — 1 строка" in sent.text and "visits.csv — 1 строка" in sent.text
    upload = sent.upload()
    assert upload.filename == "carebot-export-2026-11-23.zip"
    with zipfile.ZipFile(io.BytesIO(upload.data)) as archive:
        assert archive.namelist() == [
            "customers.csv",
            "visits.csv",
            "coupons.csv",
            "bookings.csv",
            "surveys.csv",
            "consents.csv",
            "certificates.csv",
        ]
        [customer] = _csv(archive, "customers.csv")
        [visit] = _csv(archive, "visits.csv")
        [coupon] = _csv(archive, "coupons.csv")
        consents = _csv(archive, "consents.csv")
    assert (customer["name"], customer["phone"], customer["birthday"]) == (
        "Анна",
        "+79161234567",
        "1990-03-14",
    )
    assert customer["notes"] == "любит холодный чай, без сахара"
    assert customer["telegram_id"] == "7201"
    assert tuple(visit[c] for c in VISIT_COLUMNS) == (
        "2026-11-23 12:00",
        "+79161234567",
        "Анна",
        "manicure",
        "anna",
        "2000.00",
    )
    assert coupon["kind"] == "welcome" and coupon["phone"] == "+79161234567"
    assert {(c["kind"], c["granted"]) for c in consents} >= {("personal_data", "yes")}
    await olga.quiet()


async def test_a_customer_who_forgot_is_exported_anonymous(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(7261, "Анна", username="anna_k")
    customer_id = await _registered(carebot.db, 7261, "Анна", username="anna_k")
    await _sale_and_note(olga)
    assert (await forget(anna)).template == "forget_done"
    await anna.send("/mydata")
    assert (await anna.reply()).template == "not_registered"

    await olga.send("/export")
    upload = (await olga.next("sendDocument")).upload()
    with zipfile.ZipFile(io.BytesIO(upload.data)) as archive:
        [customer] = _csv(archive, "customers.csv")
        [visit] = _csv(archive, "visits.csv")
        consents = _csv(archive, "consents.csv")
        everything = b"".join(archive.read(name) for name in archive.namelist()).decode()
    assert customer["id"] == str(customer_id) and customer["erased_at"]
    assert (customer["name"], customer["phone"], customer["telegram_id"]) == ("", "", "")
    assert (visit["amount"], visit["service"], visit["phone"], visit["customer"]) == (
        "2000.00",
        "manicure",
        "",
        "",
    )
    assert {c["phone"] for c in consents} == {""}
    for personal in ("Анна", "anna_k", "79161234567", "холодный чай"):
        assert personal not in everything, personal


async def test_an_archive_too_big_for_telegram_is_not_sent(
    carebot, telegram: TelegramServer, olga: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers.data_rights, "DOCUMENT_LIMIT", 100)  # bytes: any archive is more
    await _registered(carebot.db, 7251, "Анна")
    await olga.send("/export")
    assert (await olga.reply()).template == "export_too_big"
    assert not [c for c in telegram.calls if c.method == "sendDocument"]


def test_my_data_is_in_the_commands_menu() -> None:
    from bot.app import COMMANDS
    from bot.rendering import LANGUAGES, Renderer

    assert "mydata" in COMMANDS
    render = Renderer(MOSCOW)
    for lang in LANGUAGES:
        assert render.label(lang, "cmd_mydata")


async def test_export_is_for_staff_only(carebot, telegram: TelegramServer) -> None:
    anna = telegram.user(7301)
    await anna.send("/export")
    assert (await anna.reply()).template == "staff_only"
    stranger = Person(telegram, 7302, "Гость", chat_id=ADMIN_CHAT)  # not a member of the group
    await stranger.send("/export")
    assert (await stranger.reply()).template == "staff_only"
    assert not [c for c in telegram.calls if c.method == "sendDocument"]


# ---- carebot export --to DIR ---------------------------------------------------------------------


async def test_carebot_export_to_a_folder(
    db: Database, database_url: str, telegram: TelegramServer, tmp_path: Path
) -> None:
    await _seed_base(db)
    env = carebot_env(telegram, database_url)
    if database_url.startswith("postgresql"):
        env["SECRET_KEY"] = "carebot-tests-secret-key"
    out = tmp_path / "out"
    done = await asyncio.to_thread(carebot_cli, ["export", "--to", str(out)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{out / name}.csv rows={rows}"
        for name, rows in (
            ("customers", 5),
            ("visits", 6),
            ("coupons", 0),
            ("bookings", 0),
            ("surveys", 0),
            ("consents", 0),
            ("certificates", 0),
        )
    ]
    text = (out / "customers.csv").read_text(encoding="utf-8-sig")
    assert text.startswith(",".join(CUSTOMER_COLUMNS) + ",id,")
    assert '"Анна-Мария Петрова, мл.",+79160000001,1990-03-14,"VIP\n' in text

    (tmp_path / "taken").write_text("a file, not a folder")
    failed = await asyncio.to_thread(
        carebot_cli, ["export", "--to", str(tmp_path / "taken")], env, tmp_path
    )
    assert failed.returncode == 1 and "cannot write" in failed.stderr
    assert "Traceback" not in failed.stderr


# ---- the round trip: an export imports back as the same base -----------------------------------


@pytest.fixture
async def restored_url(
    database_template: SqliteDatabases | PostgresDatabases, tmp_path: Path
) -> AsyncIterator[str]:
    """A second database, empty, at the current head: where the export is imported."""
    if isinstance(database_template, SqliteDatabases):
        (tmp_path / "restored").mkdir()
        yield database_template.copy(tmp_path / "restored")
        return
    url = await database_template.create("restored")
    await _migrate(url)
    yield url
    await database_template.drop(url)


async def _seed_base(db: Database) -> None:
    """Customers whose names and notes are hard for CSV, birthdays with and without a year, an
    erased customer, and their visits."""
    created = utc("2026-10-01 10:00")
    people = [
        ("Анна-Мария Петрова, мл.", "+79160000001", (14, 3, 1990), ["VIP", 'просит "тихий" зал']),
        ('Ольга "Оля" Сидорова', "+79160000002", (29, 2, None), []),
        ("Zoë O'Neil", "+79160000003", None, ["аллергия на латекс\nвторая строка"]),
        ("Пётр", "+79160000004", (1, 1, 2000), []),
    ]
    async with db.transaction() as repos:
        s = repos.session
        ids = []
        for i, (name, phone, birthday, _) in enumerate(people, start=1):
            day, month, year = birthday or (None, None, None)
            customer = Customer(
                tg_user_id=8000 + i,
                name=name,
                name_folded=name.casefold(),
                phone=phone,
                birth_day=day,
                birth_month=month,
                birth_year=year,
                language="ru",
                created_at=created,
            )
            s.add(customer)
            await s.flush()
            ids.append(customer.id)
        erased = Customer(language="ru", created_at=created, erased_at=utc("2026-11-01 10:00"))
        s.add(erased)
        await s.flush()
        ids.append(erased.id)
        for i, (_, _, _, notes) in enumerate(people):
            for text in notes:
                s.add(
                    StaffNote(customer_id=ids[i], text=text, staff_id=1, staff_name="О", at=created)
                )
        visits = [
            (1, "2026-10-05 11:00", "manicure", "anna", 200000),
            (1, "2026-11-02 11:30", "manicure", "olga", 215050),
            (1, "2026-11-02 16:00", "pedicure", "olga", 280000),
            (2, "2026-10-20 09:15", "pedicure", None, 280000),
            (4, "2026-11-22 19:45", "manicure", "anna", 99),
            (5, "2026-10-10 12:00", "manicure", "anna", 200000),  # erased: stays out
        ]
        for customer_id, at, service, master, amount in visits:
            s.add(
                Purchase(
                    customer_id=ids[customer_id - 1],
                    at=utc(at),
                    service_id=service,
                    master_id=master,
                    amount_minor=amount,
                    staff_name="Ольга",
                )
            )


async def _base(db: Database) -> tuple[dict[str, Any], set[Any]]:
    """Customers by phone (name, birthday, notes), visits as (phone, moment, service, master,
    amount); erased customers and their visits left out (they have no phone to be known by)."""
    async with db.reading() as repos:
        s = repos.session
        customers = {c.phone: c for c in await s.scalars(select(Customer)) if c.erased_at is None}
        notes: dict[int, list[str]] = {}
        for note in await s.scalars(select(StaffNote).order_by(StaffNote.id)):
            notes.setdefault(note.customer_id, []).append(note.text)
        by_id = {c.id: c.phone for c in customers.values()}
        visits = {
            (by_id[p.customer_id], p.at, p.service_id, p.master_id, p.amount_minor)
            for p in await s.scalars(select(Purchase))
            if p.customer_id in by_id
        }
        people = {
            phone: (
                c.name,
                (c.birth_day, c.birth_month, c.birth_year),
                "\n".join(notes.get(c.id, [])),
            )
            for phone, c in customers.items()
            if phone
        }
    return people, visits


async def test_an_export_imports_back_as_the_same_base(
    carebot,
    telegram: TelegramServer,
    olga: Person,
    restored_url: str,
    clock: FixedClock,
    business: Business,
) -> None:
    importing = pytest.importorskip("bot.services.importing")
    await _seed_base(carebot.db)
    await _registered(carebot.db, 7501, "Вера", "+79165550000")  # one who came by Telegram
    await olga.send("/sale +79165550000 1500 педикюр")
    await olga.reply()

    await olga.send("/export")
    upload = (await olga.next("sendDocument")).upload()
    with zipfile.ZipFile(io.BytesIO(upload.data)) as archive:
        customers_csv = archive.read("customers.csv")
        visits_csv = archive.read("visits.csv")

    from bot.db.engine import create_engine

    engine = create_engine(restored_url)
    try:
        restored = Database(engine)
        service = importing.ImportService(restored, clock, business, MOSCOW)
        customers = await service.run(
            io.BytesIO(customers_csv), importing.Kind.CUSTOMERS, apply=True
        )
        visits = await service.run(io.BytesIO(visits_csv), importing.Kind.VISITS, apply=True)
        # the erased customer's rows have nothing to know them by: their customer row is blank
        # in the template's columns (skipped), their visit has no phone (refused); nothing else is
        assert customers.rejected_count == 0 and visits.rejected_count == 1
        assert (customers.customers_new, visits.visits_new) == (5, 6)
        assert await _base(restored) == await _base(carebot.db)
        # and importing the same export again changes nothing
        again = await service.run(io.BytesIO(visits_csv), importing.Kind.VISITS, apply=True)
        assert again.visits_new == 0
        assert await _base(restored) == await _base(carebot.db)
    finally:
        await engine.dispose()
    assert await customer_id_of(carebot.db, 7501)
