"""`carebot import`: reading owners' CSV files (encodings, delimiters, column names, dates,
amounts, phones, line numbers) and importing them on each database, twice."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Consent, Customer, Purchase, StaffNote
from bot.db.repositories import Database
from bot.events import Events
from bot.services.customers import CustomerService
from bot.services.importing import (
    BadValue,
    ImportFileError,
    ImportReport,
    ImportService,
    Kind,
    Reason,
    fast_phone,
    open_table,
    parse_amount,
    parse_day,
)
from bot.services.phones import normalize_phone

MOSCOW = ZoneInfo("Europe/Moscow")
TODAY = date(2026, 11, 23)


@pytest.fixture
def importer(db: Database, clock: FixedClock, business: Business) -> ImportService:
    return ImportService(db, clock, business, MOSCOW, chunk=3)  # small chunks: seams are tested


async def run(
    importer: ImportService, text: str | bytes, kind: Kind | None = None, *, apply: bool = True
) -> ImportReport:
    data = text.encode() if isinstance(text, str) else text
    return await importer.run(io.BytesIO(data), kind, apply=apply)


async def scalar(db: Database, query):  # type: ignore[no-untyped-def]
    async with db.reading() as repos:
        return await repos.session.scalar(query)


# ---- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14.03.1990", (1990, 3, 14)),
        ("1990-03-14", (1990, 3, 14)),
        ("14/03/1990", (1990, 3, 14)),
        ("14.03.90", (1990, 3, 14)),  # two digits: 20yy if that year has passed, else 19yy
        ("14.03.05", (2005, 3, 14)),
        ("14 марта 1990", (1990, 3, 14)),
        ("1 мая 1985 г.", (1985, 5, 1)),
        ("14.03", (None, 3, 14)),  # a birthday without a year
        ("29.02", (None, 2, 29)),
    ],
)
def test_birthdays_as_people_write_them(text: str, expected: tuple[int | None, int, int]) -> None:
    assert parse_day(text, TODAY, birthday=True) == expected


@pytest.mark.parametrize(
    "text", ["31.02.1990", "00.00.0000", "32.13.1990", "весной", "14 мартобря 1990", "1850-01-01"]
)
def test_impossible_birthdays(text: str) -> None:
    with pytest.raises(BadValue):
        parse_day(text, TODAY, birthday=True)


def test_a_visit_needs_a_year_and_two_digits_mean_this_century() -> None:
    assert parse_day("14.03.26", TODAY) == (2026, 3, 14)
    with pytest.raises(BadValue):
        parse_day("14.03", TODAY)


@pytest.mark.parametrize(
    ("text", "kopecks"),
    [
        ("1500", 150000),
        ("1 500,00", 150000),
        ("1\u00a0500,50", 150050),
        ("1500 ₽", 150000),
        ("1500 руб.", 150000),
        ("1,500.00", 150000),
        ("1.500,00", 150000),
        ("2000.5", 200050),
        ("0", 0),
    ],
)
def test_amounts(text: str, kopecks: int) -> None:
    assert parse_amount(text) == kopecks


@pytest.mark.parametrize("text", ["-100", "бесплатно", "1,2,3", "NaN", "1e30"])
def test_not_amounts(text: str) -> None:
    with pytest.raises(BadValue):
        parse_amount(text)


@pytest.mark.parametrize(
    "text",
    [
        "+7 916 123-45-67",
        "89161234567",
        "79161234567",
        "9161234567",
        "8 (916) 123 45 67",
        "+7 495 123 45 67",
        "84951234567",  # what normalize_phone makes of it, whatever that is
        "+77011234567",
        "8 800 555 35 35",
        "12345",
        "+7 000 000 00 00",
        "+86 138 0013 8000",
        "тел. 89161234567",
        "",
    ],
)
def test_the_short_way_for_phones_agrees_with_normalize_phone(text: str) -> None:
    assert fast_phone(text) == normalize_phone(text)


# ---- files ------------------------------------------------------------------------------------


def test_encodings_and_delimiters() -> None:
    text = "Имя;Телефон\nАнна;89161234567\n"
    for data, encoding in (
        (text.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + text.encode("utf-8"), "utf-8-sig"),
        (text.encode("cp1251"), "cp1251"),
    ):
        kind, table = open_table(io.BytesIO(data), None)
        assert (kind, table.encoding, table.delimiter) == (Kind.CUSTOMERS, encoding, ";")
        assert [line.cells for line in table.rows] == [{"name": "Анна", "phone": "89161234567"}]
    _, table = open_table(io.BytesIO(b"phone\tname\n89161234567\tAnna\n"), None)
    assert table.delimiter == "\t"
    # a decimal comma in a semicolon file does not make it a comma file
    _, table = open_table(
        io.BytesIO("Дата;Телефон;Услуга;Сумма\n14.03.2026;89161234567;Педикюр;1 500,00\n".encode()),
        None,
    )
    assert table.delimiter == ";"


@pytest.mark.parametrize(
    "header",
    [
        "name,phone,birthday,notes,email",
        "Имя,Телефон,Дата рождения,Комментарий,E-mail",
        "ИМЯ,ТЕЛЕФОН,ДАТА РОЖДЕНИЯ,КОММЕНТАРИЙ,EMAIL",
        "Name,Mobile phone,Birthday,Comment,Email",
        "Клиент,Номер телефона,День рождения,Примечание,Эл. почта",
    ],
)
def test_customer_columns_in_any_language_and_case(header: str) -> None:
    kind, table = open_table(io.BytesIO(f"{header}\nA,+79161234567,14.03,n,e@x\n".encode()), None)
    assert kind == Kind.CUSTOMERS
    assert set(table.columns) == {"name", "phone", "birthday", "notes", "email"}


@pytest.mark.parametrize(
    "header",
    [
        "date,phone,customer,service,master,amount",
        "Дата;Время;Клиент;Телефон;Услуги;Сотрудник;Стоимость, руб.;Статус",  # YCLIENTS records
        "Date,Time,Client,Phone,Services,Team member,Amount,Status",  # Altegio appointments
        "Мастер,Сумма,Услуга,Телефон,Дата",  # any order
    ],
)
def test_visit_columns(header: str) -> None:
    delimiter = ";" if ";" in header else ","
    cells = delimiter.join("x" for _ in header.split(delimiter))
    kind, table = open_table(io.BytesIO(f"{header}\n{cells}\n".encode()), None)
    assert kind == Kind.VISITS
    assert {"date", "phone", "service"} <= set(table.columns)


def test_a_title_above_the_header_is_skipped_and_lines_keep_their_numbers() -> None:
    data = "Отчёт по записям;;\nза март 2026;;\nДата;Телефон;Услуга\n\n14.03.2026;x;y\n".encode()
    _, table = open_table(io.BytesIO(data), Kind.VISITS)
    assert [line.line for line in table.rows] == [5]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"PK\x03\x04rest of an xlsx", "not a CSV"),
        ("Имя,Город\nАнна,Москва\n".encode(), "no header"),
    ],
)
def test_files_that_are_no_import(data: bytes, words: str) -> None:
    with pytest.raises(ImportFileError, match=words):
        open_table(io.BytesIO(data), Kind.CUSTOMERS)


# ---- importing ----------------------------------------------------------------------------------

CUSTOMERS = """Имя;Телефон;Дата рождения;Комментарий;E-mail
Анна;8 916 123-45-67;14.03.1990;любит красный;anna@example.ru
Ольга;+7 903 111 22 33;31.02.1985;;
Борис;12345;;;
;;;;
"Мария ""Маша"" Смирнова";;01.01.1990;;
Анна Иванова;+79161234567;;только к Ольге;
"""


async def test_rejects_and_warnings_name_their_lines(importer: ImportService, db: Database) -> None:
    report = await run(importer, CUSTOMERS.encode("cp1251"), Kind.CUSTOMERS, apply=False)
    assert (report.encoding, report.delimiter) == ("cp1251", ";")
    assert (report.rows, report.accepted, report.duplicates) == (5, 3, 1)
    assert [(i.line, i.reason, i.value) for i in report.rejected] == [
        (4, Reason.BAD_PHONE, "12345"),
        (6, Reason.NO_PHONE, ""),
    ]
    assert [(i.line, i.reason) for i in report.warnings] == [(3, Reason.BAD_BIRTHDAY)]
    assert (report.customers_new, report.notes_new) == (2, 3)
    assert await scalar(db, select(func.count()).select_from(Customer)) == 0  # a dry run


async def test_customers_come_in_once_without_consent_and_keep_what_they_gave(
    importer: ImportService, db: Database, clock: FixedClock, business: Business
) -> None:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"k")
    await customers.consent(5001, name="Оля", username=None, language="ru", source=None)
    await customers.set_phone(5001, "+79031112233")  # Ольга is in Telegram already

    first = await run(importer, CUSTOMERS.encode("cp1251"), Kind.CUSTOMERS)
    assert (first.customers_new, first.customers_updated, first.customers_known) == (1, 0, 1)
    again = await run(importer, CUSTOMERS.encode("cp1251"), Kind.CUSTOMERS)
    assert (again.customers_new, again.customers_known, again.notes_new) == (0, 2, 0)

    async with db.transaction() as repos:
        rows = (await repos.session.scalars(select(Customer).order_by(Customer.id))).all()
        consents = (await repos.session.scalars(select(Consent).order_by(Consent.id))).all()
        notes = (await repos.session.scalars(select(StaffNote).order_by(StaffNote.id))).all()
    olga, anna = rows
    assert (olga.name, olga.source, olga.imported_at) == ("Оля", None, None)  # untouched
    assert (anna.name, anna.phone, anna.tg_user_id) == ("Анна", "+79161234567", None)
    assert (anna.birth_year, anna.birth_month, anna.birth_day) == (1990, 3, 14)
    assert (anna.source, anna.marketing_opt_out, anna.data_consent_version) == (
        "import",
        True,
        None,
    )
    assert anna.imported_at == clock.now()
    imported = [(c.kind, c.granted, c.via) for c in consents if c.customer_id == anna.id]
    assert imported == [("marketing", False, "import")]  # no offers, said so; no data consent
    assert [(n.text, n.staff_name) for n in notes] == [
        ("любит красный", "import"),
        ("E-mail: anna@example.ru", "import"),
        ("только к Ольге", "import"),
    ]


async def test_an_import_fills_only_what_is_empty(
    importer: ImportService, db: Database, clock: FixedClock, business: Business
) -> None:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"k")
    await customers.consent(5001, name="Оля", username=None, language="ru", source=None)
    await customers.set_phone(5001, "+79031112233")
    report = await run(importer, "phone,name,birthday\n89031112233,Ольга Петрова,02.11.1985\n")
    assert (report.customers_updated, report.customers_known) == (1, 0)
    async with db.transaction() as repos:
        olga = (await repos.session.scalars(select(Customer))).one()
    assert (olga.name, olga.birth_day, olga.birth_month, olga.birth_year) == ("Оля", 2, 11, 1985)


VISITS = """date,phone,customer,service,master,amount
2026-03-14 15:30,89161234567,Анна,manicure,anna,1500.00
14.03.2026 16:00,+79161234567,Анна,Маникюр с покрытием,Анна,"1 500,00"
2026-04-01,89031112233,Ольга,педикюр,ольга,
2026-05-01,79051234567,Новая Клиентка,Стрижка,,100
31.02.2026,79031112233,Ольга,manicure,,100
2026-12-01,79031112233,Ольга,manicure,,100
2026-05-02,79031112233,Ольга,Manicure,Мария,2000 ₽
2026-05-03,79991234567,Новая Клиентка,manicure,,-5
2026-05-04,79991234567,Новая Клиентка,manicure,Анна К.,2000
"""


async def test_visits_once_at_local_times_without_events(
    importer: ImportService, db: Database
) -> None:
    events = Events()
    fired: list[object] = []
    events.on_purchase(lambda repos, event: fired.append(event))  # type: ignore[arg-type, return-value]
    dry = await run(importer, VISITS, apply=False)
    assert dry.kind == Kind.VISITS
    assert [(i.line, i.reason) for i in dry.rejected] == [
        (5, Reason.UNKNOWN_SERVICE),
        (6, Reason.BAD_DATE),
        (7, Reason.FUTURE_DATE),
        (9, Reason.BAD_AMOUNT),
    ]
    assert [(i.line, i.reason) for i in dry.warnings] == [
        (4, Reason.PRICE_FROM_LIST),
        (8, Reason.UNKNOWN_MASTER),
    ]
    assert (dry.rows, dry.accepted, dry.duplicates) == (9, 5, 1)  # line 3 repeats line 2's visit
    assert (dry.customers_new, dry.visits_new, dry.visits_known) == (3, 4, 0)

    first = await run(importer, VISITS)
    assert (first.customers_new, first.visits_new, first.visits_known) == (3, 4, 0)
    again = await run(importer, VISITS)
    assert (again.customers_new, again.visits_new, again.visits_known) == (0, 0, 4)
    assert fired == []

    async with db.transaction() as repos:
        visits = (await repos.session.scalars(select(Purchase).order_by(Purchase.id))).all()
        people = {c.id: c for c in await repos.session.scalars(select(Customer))}
    assert [
        (people[v.customer_id].phone, v.at, v.service_id, v.master_id, v.amount_minor)
        for v in visits
    ] == [
        ("+79161234567", datetime(2026, 3, 14, 12, 30, tzinfo=UTC), "manicure", "anna", 150000),
        ("+79031112233", datetime(2026, 4, 1, 9, 0, tzinfo=UTC), "pedicure", "olga", 280000),
        ("+79031112233", datetime(2026, 5, 2, 9, 0, tzinfo=UTC), "manicure", None, 200000),
        ("+79991234567", datetime(2026, 5, 4, 9, 0, tzinfo=UTC), "manicure", "anna", 200000),
    ]
    assert all(v.staff_name == "import" and v.import_key for v in visits)
    assert visits[0].import_key == f"{visits[0].customer_id}:2026-03-14:manicure"
    created = {c.phone: c.name for c in people.values()}
    assert created["+79991234567"] == "Новая Клиентка"
    assert all(c.source == "import" and c.marketing_opt_out for c in people.values())


async def test_a_visit_of_an_unknown_phone_in_the_dry_run_counts_its_customer_once(
    importer: ImportService,
) -> None:
    text = "date,phone,service\n" + "".join(
        f"2026-0{m}-01,79991234567,manicure\n" for m in (1, 2, 3, 4, 5)
    )
    report = await run(importer, text, apply=False)  # five visits over two chunks of three
    assert (report.customers_new, report.visits_new) == (1, 5)


async def test_not_attended_visits_are_refused(importer: ImportService) -> None:
    text = (
        "Дата;Телефон;Услуга;Статус\n"
        "01.03.2026;79991234567;Педикюр;Клиент пришел\n"
        "02.03.2026;79991234567;Педикюр;Клиент не пришёл\n"
        "03.03.2026;79991234567;Педикюр;Отменена\n"
        "04.03.2026;79991234567;Педикюр;No-show\n"
    )
    report = await run(importer, text, apply=False)
    assert [(i.line, i.reason) for i in report.rejected] == [
        (3, Reason.NOT_ATTENDED),
        (4, Reason.NOT_ATTENDED),
        (5, Reason.NOT_ATTENDED),
    ]


def test_the_rejected_lines_as_a_csv() -> None:
    report = ImportReport(Kind.CUSTOMERS, applied=False)
    from bot.services.importing import Issue

    report.reject(Issue(7, Reason.BAD_PHONE, "12;34"))
    report.warn(Issue(3, Reason.BAD_BIRTHDAY, "31.02"))
    text = report.rejected_csv().decode("utf-8-sig")
    assert text.splitlines() == ["line;reason;value", "3;bad_birthday;31.02", '7;bad_phone;"12;34"']


def test_today_is_the_clock_s(clock: FixedClock) -> None:
    assert clock.now().astimezone(MOSCOW).date() == TODAY
