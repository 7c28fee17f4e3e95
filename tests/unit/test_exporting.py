"""`carebot export`'s files, exactly, for a small base: the import template's columns, Cyrillic
that Excel opens, names with commas, quotes and line breaks, an erased customer anonymous; and
the base read page by page."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import bot.db.exporting
from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import (
    Booking,
    CareMessage,
    Certificate,
    CertificateUse,
    Consent,
    Coupon,
    Customer,
    LoyaltyEntry,
    LoyaltyTier,
    PointsRequest,
    Purchase,
    Referral,
    ReferralLink,
    StaffNote,
    Survey,
)
from bot.db.repositories import Database
from bot.services.exporting import Exporter, birthday_cell, money, text_cell
from tests.unit.test_query_counts import counting

MOSCOW = ZoneInfo("Europe/Moscow")
BOM = "\ufeff"
MY_DATA_BOUND = 24  # a BEGIN, the customer, then a statement per kind of row (twenty-two)


def utc(text: str) -> datetime:
    """A Moscow wall-clock moment, `2026-11-20 15:30`, as the aware UTC the database keeps."""
    return datetime.fromisoformat(text).replace(tzinfo=MOSCOW).astimezone(UTC)


@pytest.fixture
def exporter(db: Database, clock: FixedClock, business: Business) -> Exporter:
    return Exporter(db, clock, business, MOSCOW)


async def seed(db: Database) -> None:
    """Three customers: Анна (notes, a visit, a coupon, a booking, a survey, consents), a name
    full of CSV's special characters, and an erased one who kept a visit and a consent."""
    created = utc("2026-11-01 10:00")
    async with db.transaction() as repos:
        s = repos.session
        s.add_all(
            [
                Customer(
                    id=1,
                    tg_user_id=7001,
                    username="anna",
                    name="Анна Петрова",
                    name_folded="анна петрова",
                    language="ru",
                    phone="+79161234567",
                    birth_day=14,
                    birth_month=3,
                    birth_year=1990,
                    source="qr",
                    marketing_opt_out=False,
                    data_consent_version="2026-11-01",
                    created_at=created,
                    onboarded_at=created,
                ),
                Customer(
                    id=2,
                    tg_user_id=7002,
                    name='Ли, "Мэй"\nвторая строка',
                    language="en",
                    phone="+79031112233",
                    birth_day=29,
                    birth_month=2,
                    marketing_opt_out=True,
                    created_at=created,
                ),
                Customer(
                    id=3,
                    tg_user_id=None,
                    language="ru",
                    marketing_opt_out=True,
                    created_at=created,
                    erased_at=utc("2026-11-10 12:00"),
                ),
            ]
        )
        await s.flush()
        s.add_all(
            [
                StaffNote(
                    customer_id=1,
                    text="любит холодный чай",
                    staff_id=1,
                    staff_name="Ольга",
                    at=created,
                ),
                StaffNote(
                    customer_id=1, text="=1+1 шутка", staff_id=1, staff_name="Ольга", at=created
                ),
                Purchase(
                    id=1,
                    customer_id=1,
                    amount_minor=150000,
                    service_id="manicure",
                    master_id="anna",
                    at=utc("2026-11-20 15:30"),
                    staff_name="Ольга",
                ),
                Purchase(
                    id=2,
                    customer_id=3,
                    amount_minor=280050,
                    service_id="pedicure",
                    master_id=None,
                    at=utc("2026-11-05 11:00"),
                    staff_name="Ольга",
                ),
                Coupon(
                    id=1,
                    code="ABCD1234",
                    customer_id=1,
                    kind="welcome",
                    percent=10,
                    issued_at=created,
                    expires_at=utc("2026-12-01 23:59"),
                    redeemed_at=utc("2026-11-20 15:31"),
                    redeemed_by_name="Ольга",
                ),
                Coupon(
                    id=2,
                    code="ERASED01",
                    customer_id=3,
                    kind="thanks",
                    amount=500,
                    issued_at=created,
                    expires_at=utc("2026-12-01 23:59"),
                    voided_at=utc("2026-11-10 12:00"),
                ),
                Consent(
                    customer_id=1,
                    kind="personal_data",
                    granted=True,
                    version="2026-11-01",
                    at=utc("2026-11-01 10:00:05"),
                    via="button",
                ),
                Consent(
                    customer_id=3,
                    kind="personal_data",
                    granted=False,
                    version="2026-11-01",
                    at=utc("2026-11-10 12:00"),
                    via="forget",
                ),
            ]
        )
        await s.flush()
        s.add_all(
            [
                Booking(
                    id=1,
                    customer_id=1,
                    service_id="manicure",
                    master_id="anna",
                    starts_at=utc("2026-11-20 15:00"),
                    ends_at=utc("2026-11-20 16:30"),
                    state="done",
                    source="menu",
                    created_at=created,
                    answer_due_at=created,
                    decided_at=utc("2026-11-01 10:05"),
                    decided_by="Анна",
                    purchase_id=1,
                ),
                Survey(
                    id=1,
                    purchase_id=1,
                    customer_id=1,
                    service_id="manicure",
                    master_id="anna",
                    planned_at=utc("2026-11-20 18:30"),
                    closes_at=utc("2026-11-23 18:30"),
                    score=5,
                    answered_at=utc("2026-11-20 19:00"),
                    comment="Всё отлично, спасибо!",
                ),
                Survey(
                    id=2,
                    purchase_id=2,
                    customer_id=3,
                    service_id="pedicure",
                    planned_at=utc("2026-11-05 14:00"),
                    closes_at=utc("2026-11-08 14:00"),
                    score=2,
                    answered_at=utc("2026-11-05 15:00"),
                    comment="a comment erasure missed",  # the export blanks it all the same
                ),
            ]
        )


def read(folder: Path, name: str) -> str:
    raw = (folder / name).read_bytes()
    assert raw.startswith(BOM.encode()), "UTF-8 with a BOM, so Excel opens Cyrillic right"
    return raw.decode("utf-8")


async def test_the_files_exactly(db: Database, exporter: Exporter, tmp_path: Path) -> None:
    await seed(db)
    files = await exporter.to_folder(tmp_path / "out")
    assert [(f.name, f.rows) for f in files] == [
        ("customers.csv", 3),
        ("visits.csv", 2),
        ("coupons.csv", 2),
        ("bookings.csv", 1),
        ("surveys.csv", 2),
        ("consents.csv", 2),
        ("certificates.csv", 0),
    ]
    out = tmp_path / "out"
    assert read(out, "customers.csv") == BOM + (
        "name,phone,birthday,notes,email,id,telegram_id,username,language,source,offers,"
        "data_consent_version,created_at,onboarded_at,imported_at,blocked_at,erased_at\r\n"
        'Анна Петрова,+79161234567,1990-03-14,"любит холодный чай\n=1+1 шутка",,1,7001,anna,ru,'
        "qr,yes,2026-11-01,2026-11-01 10:00,2026-11-01 10:00,,,\r\n"
        '"Ли, ""Мэй""\nвторая строка",+79031112233,29.02,,,2,7002,,en,,no,,'
        "2026-11-01 10:00,,,,\r\n"
        ",,,,,3,,,ru,,no,,2026-11-01 10:00,,,,2026-11-10 12:00\r\n"
    )
    assert read(out, "visits.csv") == BOM + (
        "date,phone,customer,service,master,amount,id,customer_id,staff\r\n"
        "2026-11-20 15:30,+79161234567,Анна Петрова,manicure,anna,1500.00,1,1,Ольга\r\n"
        "2026-11-05 11:00,,,pedicure,,2800.50,2,3,Ольга\r\n"
    )
    assert read(out, "coupons.csv") == BOM + (
        "code,customer_id,phone,kind,percent,amount,issued_at,expires_at,redeemed_at,"
        "redeemed_by,voided_at\r\n"
        "ABCD1234,1,+79161234567,welcome,10,,2026-11-01 10:00,2026-12-01 23:59,"
        "2026-11-20 15:31,Ольга,\r\n"
        "ERASED01,3,,thanks,,500.00,2026-11-01 10:00,2026-12-01 23:59,,,2026-11-10 12:00\r\n"
    )
    assert read(out, "bookings.csv") == BOM + (
        "id,customer_id,phone,service,master,starts_at,ends_at,state,source,created_at,"
        "decided_at,decided_by,reason,visit_id\r\n"
        "1,1,+79161234567,manicure,anna,2026-11-20 15:00,2026-11-20 16:30,done,menu,"
        "2026-11-01 10:00,2026-11-01 10:05,Анна,,1\r\n"
    )
    assert read(out, "surveys.csv") == BOM + (
        "id,visit_id,customer_id,phone,service,master,planned_at,answered_at,score,comment,"
        "resolved_at,resolved_by\r\n"
        "1,1,1,+79161234567,manicure,anna,2026-11-20 18:30,2026-11-20 19:00,5,"
        '"Всё отлично, спасибо!",,\r\n'
        "2,2,3,,pedicure,,2026-11-05 14:00,2026-11-05 15:00,2,,,\r\n"
    )
    assert read(out, "consents.csv") == BOM + (
        "customer_id,phone,kind,granted,version,via,at\r\n"
        "1,+79161234567,personal_data,yes,2026-11-01,button,2026-11-01 10:00:05\r\n"
        "3,,personal_data,no,2026-11-01,forget,2026-11-10 12:00:00\r\n"
    )
    # and csv (as Excel) reads the awkward name back whole, in its own cell
    with (out / "customers.csv").open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows[1]["name"] == 'Ли, "Мэй"\nвторая строка' and rows[1]["phone"] == "+79031112233"
    assert rows[0]["notes"] == "любит холодный чай\n=1+1 шутка"


async def test_an_empty_base_is_headers_only_and_a_zip_holds_the_same_files(
    db: Database, exporter: Exporter, tmp_path: Path
) -> None:
    archive = tmp_path / "base.zip"
    files = await exporter.to_zip(archive)
    assert {f.rows for f in files} == {0}
    with zipfile.ZipFile(archive) as opened:
        assert opened.namelist() == [f.name for f in files]
        visits = opened.read("visits.csv").decode("utf-8")
    assert visits == BOM + "date,phone,customer,service,master,amount,id,customer_id,staff\r\n"

    await seed(db)
    await exporter.to_folder(tmp_path / "folder")
    buffer = io.BytesIO()
    await exporter.to_zip(buffer)
    with zipfile.ZipFile(buffer) as opened:
        for name in opened.namelist():
            assert opened.read(name) == (tmp_path / "folder" / name).read_bytes()


async def test_pages_of_the_base(
    db: Database, exporter: Exporter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in pages of PAGE rows by id: every row once, in order, across page boundaries."""
    monkeypatch.setattr(bot.db.exporting, "PAGE", 2)
    created = utc("2026-11-01 10:00")
    async with db.transaction() as repos:
        repos.session.add_all(
            Customer(name=f"К{i}", phone=f"+7916000{i:04d}", language="ru", created_at=created)
            for i in range(7)
        )
        await repos.session.flush()
        repos.session.add_all(
            StaffNote(customer_id=i + 1, text=f"n{i}", staff_id=1, staff_name="О", at=created)
            for i in range(7)
        )
    [customers, *_] = await exporter.to_folder(tmp_path)
    assert customers.rows == 7
    with (tmp_path / "customers.csv").open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["name"], r["notes"], r["id"]) for r in rows] == [
        (f"К{i}", f"n{i}", str(i + 1)) for i in range(7)
    ]


def test_names_of_the_folder_and_the_archive(exporter: Exporter) -> None:
    assert exporter.folder_name() == "export-2026-11-23"  # the business's today
    assert exporter.archive_name() == "carebot-export-2026-11-23.zip"


def test_cells() -> None:
    assert money(150000) == "1500.00" and money(5) == "0.05" and money(0) == "0.00"
    assert money(-1050) == "-10.50"
    assert birthday_cell(1, 2, 2000) == "2000-02-01" and birthday_cell(29, 2, None) == "29.02"
    assert birthday_cell(None, None, None) == ""
    assert text_cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert text_cell("@user") == "'@user" and text_cell("Анна") == "Анна" and text_cell(None) == ""


async def test_my_data_is_everything_about_them(
    db: Database, exporter: Exporter, clock: FixedClock
) -> None:
    await seed(db)
    async with db.transaction() as repos:
        repos.session.add(
            CareMessage(
                tg_user_id=7001,
                customer_id=None,  # written before they consented: theirs all the same
                direction="in",
                kind="text",
                text="Здравствуйте! <b>",
                at=utc("2026-10-31 09:00"),
            )
        )
    assert await exporter.my_data(9999) is None
    mine = await exporter.my_data(7001)
    assert mine is not None
    assert mine.filename == "mydata-2026-11-23.json"
    document = json.loads(mine.document)
    assert document["profile"]["name"] == "Анна Петрова"
    assert document["profile"]["phone"] == "+79161234567"
    assert document["profile"]["birthday"] == "1990-03-14"
    assert document["consents"] == [
        {
            "kind": "personal_data",
            "granted": True,
            "version": "2026-11-01",
            "via": "button",
            "at": "2026-11-01T10:00:05+03:00",
        }
    ]
    assert document["visits"][0]["amount"] == "1500.00"
    assert document["visits"][0]["service"] == {"id": "manicure", "name": "Маникюр с покрытием"}
    assert [c["code"] for c in document["coupons"]] == ["ABCD1234"]
    assert [b["state"] for b in document["bookings"]] == ["done"]
    assert [(s["score"], s["comment"]) for s in document["surveys"]] == [
        (5, "Всё отлично, спасибо!")
    ]
    assert document["care_chat"] == [
        {
            "at": "2026-10-31T09:00:00+03:00",
            "from": "you",
            "kind": "text",
            "text": "Здравствуйте! <b>",
        }
    ]
    assert [n["text"] for n in document["staff_notes"]] == ["любит холодный чай", "=1+1 шутка"]
    summary = mine.summary
    assert (summary.visits, summary.coupons, summary.bookings, summary.answers) == (1, 1, 1, 1)
    assert (summary.care_messages, summary.notes, summary.spent) == (1, 2, "1500.00")
    assert summary.data_consent and summary.data_consent_version == "2026-11-01"
    # nobody else's rows: the erased customer's visit, survey and consent are not in it
    assert "ERASED01" not in mine.document.decode() and "2800.50" not in mine.document.decode()


async def test_my_data_costs_the_same_statements_whatever_the_history(
    db: Database, exporter: Exporter
) -> None:
    """A fixed number of statements (one per kind of row), not one per visit or message."""
    await seed(db)
    with counting(db) as few:
        await exporter.my_data(7001)
    async with db.transaction() as repos:
        for i in range(30):
            at = utc("2026-10-01 10:00")
            repos.session.add(
                Purchase(  # ids given: seed() gave its own, which PostgreSQL's sequence never saw
                    id=100 + i, customer_id=1, amount_minor=100 * i, service_id="manicure", at=at
                )
            )
            repos.session.add(
                CareMessage(
                    id=100 + i, tg_user_id=7001, customer_id=1, direction="in", kind="text", at=at
                )
            )
            repos.session.add(
                StaffNote(
                    id=100 + i, customer_id=1, text=f"n{i}", staff_id=1, staff_name="О", at=at
                )
            )
    with counting(db) as many:
        mine = await exporter.my_data(7001)
    assert mine is not None and mine.summary.visits == 31
    assert many.count == few.count <= MY_DATA_BOUND


async def test_the_export_costs_statements_per_page_not_per_row(
    db: Database, exporter: Exporter, tmp_path: Path
) -> None:
    await seed(db)
    with counting(db) as statements:
        await exporter.to_folder(tmp_path)
    # six files, each a page and the empty page that ends it, the customers' notes, a BEGIN
    assert statements.count <= 2 * 6 + 1 + 1


async def test_my_data_has_their_loyalty_points_tier_friends_and_certificates(
    db: Database, exporter: Exporter
) -> None:
    """The points ledger, the tier, payments with points, the bring-a-friend link and friends
    (without the other person's identity), and the certificates they claimed (with what was
    spent of them) are theirs too; someone else's certificate and link are not in it."""
    await seed(db)
    at = utc("2026-11-10 12:00")
    async with db.transaction() as repos:
        s = repos.session
        s.add(LoyaltyEntry(id=1, customer_id=1, kind="accrual", points=75, created_at=at))
        s.add(
            LoyaltyEntry(
                id=2, customer_id=1, kind="correction", points=-5, staff_id=1, staff_name="Ольга",
                reason="ошибка в чеке", created_at=at,
            )
        )  # fmt: skip
        for certificate_id, owner, code in ((1, 1, "GIFTANNA"), (2, 2, "GIFTMEI")):
            s.add(
                Certificate(
                    id=certificate_id, code=code, amount_minor=300_000, for_name="для Анны",
                    issued_by_id=1, issued_by_name="Ольга", customer_id=owner, claimed_at=at,
                    expires_at=utc("2027-11-10 23:59"), created_at=at,
                )
            )  # fmt: skip
        await s.flush()
        s.add(
            CertificateUse(
                id=1, certificate_id=1, amount_minor=100_000, at=at, staff_id=1, staff_name="Ольга"
            )
        )
        s.add(LoyaltyTier(customer_id=1, tier="Silver", since=at))
        s.add(ReferralLink(customer_id=1, token="tok-anna", created_at=at))
        s.add(ReferralLink(customer_id=2, token="tok-mei", created_at=at))
        s.add(Referral(referrer_id=1, friend_id=2, state="rewarded", joined_at=at, bought_at=at))
        s.add(
            Purchase(
                id=900, customer_id=1, amount_minor=200_000, at=at, staff_id=1, staff_name="Ольга"
            )
        )
        await s.flush()
        s.add(
            PointsRequest(
                customer_id=1, purchase_id=900, points=50, amount_minor=200_000, state="confirmed",
                staff_id=1, staff_name="Ольга", created_at=at, expires_at=at, decided_at=at,
            )
        )  # fmt: skip
    mine = await exporter.my_data(7001)
    assert mine is not None
    document = json.loads(mine.document)
    assert [t["tier"] for t in document["loyalty_tier"]] == ["Silver"]
    assert [(r["points"], r["state"]) for r in document["points_payments"]] == [(50, "confirmed")]
    friend = document["bring_a_friend"]
    assert friend["your_link"] == ["tok-anna"] and friend["you_came_through_a_friend"] == []
    assert [f["state"] for f in friend["friends_you_brought"]] == ["rewarded"]
    assert "tok-mei" not in mine.document.decode()  # the friend's own link is theirs
    mei = await exporter.my_data(7002)
    assert mei is not None
    assert [
        f["state"] for f in json.loads(mei.document)["bring_a_friend"]["you_came_through_a_friend"]
    ] == ["rewarded"]
    assert [(p["kind"], p["points"], p["reason"]) for p in document["points"]] == [
        ("accrual", 75, None),
        ("correction", -5, "ошибка в чеке"),
    ]
    [gift] = document["gift_certificates"]
    assert (gift["code"], gift["amount"], gift["for"]) == ("GIFTANNA", "3000.00", "для Анны")
    assert gift["used"] == [{"at": gift["claimed_at"], "amount": "1000.00", "by": "Ольга"}]
    assert "GIFTMEI" not in mine.document.decode()
