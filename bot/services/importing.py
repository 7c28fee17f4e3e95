"""`carebot import customers|visits FILE`: the owner's existing base comes in from a CSV file.

What a file may look like (one module, no Telegram here):

- UTF-8 (with or without a byte-order mark) or Windows-1251, which Excel in Russian writes;
  told apart by whether the file's first 64 KiB decode as UTF-8.
- Commas, semicolons or tabs between cells: the header line's count decides (csv.Sniffer
  guesses from the whole sample and is misled by decimal commas in amounts, so not used).
- Columns in any order and any case, under the names of the generic template (what
  `carebot export` writes, so an export imports back as the same base), of YCLIENTS's and
  Altegio's exports, and common Russian and English words (`COLUMNS`). A title line or two
  above the header (a report's name and period) is skipped: the header is the first of the
  first ten lines that names a phone column.
- Russian dates (`14.03.1990`, `14.03.90`, `14 марта 1990`, `14.03` for a birthday without a
  year), ISO dates (`1990-03-14`), times (`14.03.2026 15:30`, `2026-03-14T15:30`, or a separate
  `Время` column). A two-digit year is 20yy for a visit; for a birthday 20yy when that year
  has passed, else 19yy. A visit without a time is put at 12:00 in the business's time zone,
  so its local date survives the conversion to UTC.
- Amounts with decimal commas, spaces, no-break spaces, currency signs (`1 500,00`, `1500 ₽`,
  `1,500.00`). An empty amount is the service's price from the business file (counted and
  said in the report); a negative or unreadable one refuses the row.
- Phones in any common form, through `normalize_phone` (libphonenumber); a cell with two
  numbers ("8 916 …, 8 903 …") gives the first real one.

Column names of the CRMs were looked up in their public help pages: YCLIENTS "Клиентская база"
(support.yclients.com, "Клиенты – Клиентская база": Имя, Телефон, Email, Продано, Визиты,
Скидка, Категории, Дата рождения, Комментарий) and the record report's Дата / Время / Клиент /
Телефон / Сотрудник / Услуги / Стоимость / Статус; Altegio "Client Database" and "Information in
client's card" (support.alteg.io: Name, Last name, Mobile phone, Additional phone number,
Email, Birthday/Date of birth, Comment; appointments: Date, Time, Client, Phone, Team member,
Services, Amount/Paid, Status). Names not known here can be added to `COLUMNS`.

The key: a customer is their phone (E.164); a visit is (customer, local date, service),
kept in `purchases.import_key` (unique), so importing the same file again adds nothing. A
customer already there (from Telegram or an earlier import) only gets the fields they lack;
what they gave in Telegram is never overwritten.

Imported customers have no Telegram account (`tg_user_id` NULL), `source="import"`,
`imported_at`, and **no consent of any kind**: the owner holds their base under their own
legal basis, and nothing here may look as if the customer agreed to something in the bot. So
no personal-data consent row and `data_consent_version` stays empty; `marketing_opt_out` is
True, and one consent row says so honestly: kind marketing, granted False, via import (what
the customer card shows as "offers: no, since the import"). They give their own consents when
they /start the bot. Their visits are `purchases` rows written directly, not through the
purchase event: no survey, thank-you offer or loyalty stamp for a visit from years ago.

Dry run by default: the same reading and the same look-ups, nothing written; `apply=True`
writes in chunks of `CHUNK` rows, one transaction each, so a million visits never sit in
memory and a running bot's writers get their turn between chunks.
"""

from __future__ import annotations

import codecs
import csv
import io
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import IO, Any, NamedTuple

import phonenumbers

from bot.business import Business
from bot.clock import Clock
from bot.db.importing import KnownCustomer
from bot.db.repositories import Database, Repos
from bot.services.phones import normalize_phone

CHUNK = 5000  # rows per transaction (and per look-up: under every driver's bound-parameter limit)
SAMPLE = 64 * 1024  # bytes read to tell the encoding and the delimiter
HEADER_SEARCH = 10  # lines looked at for the header
REJECTED_KEPT = 100_000  # rejected lines kept for the report; beyond, only counted
NAME_LIMIT = 64  # customers.name
NOTE_LIMIT = 2000  # staff_notes.text
IMPORT_STAFF = "import"  # staff_name of the notes and visits an import writes
VISIT_HOUR = time(12, 0)  # a visit with a date and no time


class Kind(StrEnum):
    CUSTOMERS = "customers"
    VISITS = "visits"


class Reason(StrEnum):
    """Why a row was refused, or what was dropped from a row that was kept (a warning)."""

    NO_PHONE = "no_phone"
    BAD_PHONE = "bad_phone"
    NO_DATE = "no_date"
    BAD_DATE = "bad_date"  # not a date at all, or an impossible one (31.02)
    FUTURE_DATE = "future_date"  # a visit after now: a booking, not a visit
    NO_SERVICE = "no_service"
    UNKNOWN_SERVICE = "unknown_service"
    BAD_AMOUNT = "bad_amount"
    NOT_ATTENDED = "not_attended"  # status: cancelled, did not come
    # warnings: the row is kept without the field
    BAD_BIRTHDAY = "bad_birthday"
    UNKNOWN_MASTER = "unknown_master"
    PRICE_FROM_LIST = "price_from_list"


WARNINGS = frozenset({Reason.BAD_BIRTHDAY, Reason.UNKNOWN_MASTER, Reason.PRICE_FROM_LIST})


class ImportFileError(Exception):
    """The file as a whole cannot be read (not a CSV, no phone column, …): one line in English
    (`str`, the command line's), and a `code` with `details` the admin chat's templates word."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


# ---- columns ---------------------------------------------------------------------------------

_PHONE = (
    "phone",
    "телефон",
    "мобильный телефон",
    "номер телефона",
    "тел",
    "tel",
    "mobile phone",
    "mobile",
    "phone number",
    "телефон клиента",
    "client phone",
    "client's phone",
    "номер",
)
_NAME = (
    "name",
    "имя",
    "фио",
    "имя клиента",
    "клиент",
    "client",
    "customer",
    "client name",
    "customer name",
    "full name",
    "client's full name",
    "полное имя",
    "имя и фамилия",
)

# canonical field → the header names it goes by (compared folded: `fold_header`)
COLUMNS: dict[Kind, dict[str, tuple[str, ...]]] = {
    Kind.CUSTOMERS: {
        "name": _NAME,
        "surname": ("фамилия", "last name", "surname", "client's last name"),
        "phone": _PHONE,
        "birthday": (
            "birthday",
            "дата рождения",
            "день рождения",
            "др",
            "birth date",
            "date of birth",
            "birthdate",
        ),
        "notes": (
            "notes",
            "note",
            "комментарий",
            "комментарии",
            "примечание",
            "примечания",
            "заметка",
            "заметки",
            "comment",
            "comments",
        ),
        "email": ("email", "e-mail", "e mail", "эл. почта", "электронная почта", "почта", "mail"),
    },
    Kind.VISITS: {
        "date": (
            "date",
            "дата",
            "дата визита",
            "дата записи",
            "дата и время",
            "visit date",
            "appointment date",
            "date and time",
            "datetime",
            "дата оказания услуги",
        ),
        "time": ("time", "время", "время визита", "время записи", "visit time"),
        "phone": _PHONE,
        "customer": (
            "customer",
            "клиент",
            "client",
            "имя",
            "name",
            "имя клиента",
            "фио",
            "client name",
            "customer name",
        ),
        "service": (
            "service",
            "услуга",
            "услуги",
            "services",
            "наименование услуги",
            "название услуги",
            "service name",
        ),
        "master": (
            "master",
            "мастер",
            "сотрудник",
            "специалист",
            "staff",
            "employee",
            "team member",
            "исполнитель",
        ),
        "amount": (
            "amount",
            "сумма",
            "стоимость",
            "оплачено",
            "итого",
            "сумма оплаты",
            "price",
            "cost",
            "total",
            "paid",
            "цена",
            "к оплате",
        ),
        "status": (
            "status",
            "статус",
            "статус визита",
            "статус записи",
            "visit status",
            "appointment status",
        ),
    },
}
REQUIRED = {Kind.CUSTOMERS: ("phone",), Kind.VISITS: ("phone", "date", "service")}
# The generic template: exactly what `carebot export` writes.
TEMPLATE = {
    Kind.CUSTOMERS: ("name", "phone", "birthday", "notes", "email"),
    Kind.VISITS: ("date", "phone", "customer", "service", "master", "amount"),
}
# A visit's status that says it did not happen (YCLIENTS "Клиент не пришел", Altegio "No-show").
_NOT_ATTENDED = re.compile(r"не\s*пришел|не\s*пришла|отмен|cancel|no[\s-]*show|did\s*not\s*come")


_UNIT = re.compile(r"\s*(?:,|\()\s*(?:руб\.?|р\.|₽|rub|rur)\)?\s*$|\s*₽$")


def fold_header(text: str) -> str:
    """A header cell as compared: any case, ё = е, spaces collapsed, no "*", ":" or a money unit
    ("Стоимость, руб.", "Сумма (₽)")."""
    text = text.replace("\ufeff", "").strip().strip("*:").strip().casefold().replace("ё", "е")
    return " ".join(_UNIT.sub("", text).split())


def fold_name(text: str) -> str:
    """A service's or master's name as compared: any case, ё = е, spaces and dots ignored."""
    return re.sub(r"[\s.\"«»'`]+", "", text.casefold().replace("ё", "е"))


def match_columns(header: list[str], kind: Kind) -> dict[str, int]:
    """canonical field → its column index, for the header's recognised names (first one wins)."""
    wanted = {
        alias: name for name, aliases in COLUMNS[kind].items() for alias in aliases
    }  # an alias names one field per kind
    found: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = wanted.get(fold_header(cell))
        if name is not None and name not in found:
            found[name] = index
    return found


def detect_kind(header: list[str]) -> Kind | None:
    """Visits if the header names a date and a service; customers if it names a phone."""
    visits = match_columns(header, Kind.VISITS)
    if all(field in visits for field in REQUIRED[Kind.VISITS]):
        return Kind.VISITS
    if "phone" in match_columns(header, Kind.CUSTOMERS):
        return Kind.CUSTOMERS
    return None


# ---- values ---------------------------------------------------------------------------------

# month names, Russian (genitive and nominative) and English; a word matches as a prefix of at
# least three letters ("мар", "марта", "март", "Mar", "March"), nothing else ("мартобря")
_MONTH_NAMES = (
    ("января", "январь", "january"), ("февраля", "февраль", "february"),
    ("марта", "март", "march"), ("апреля", "апрель", "april"), ("мая", "май", "may"),
    ("июня", "июнь", "june"), ("июля", "июль", "july"), ("августа", "август", "august"),
    ("сентября", "сентябрь", "september"), ("октября", "октябрь", "october"),
    ("ноября", "ноябрь", "november"), ("декабря", "декабрь", "december"),
)  # fmt: skip


def _month(word: str) -> int | None:
    word = word.rstrip(".")
    if len(word) < 3:
        return None
    for number, names in enumerate(_MONTH_NAMES, start=1):
        if any(name.startswith(word) for name in names):
            return number
    return None


_DMY = re.compile(r"^(\d{1,2})[./-](\d{1,2})(?:[./-](\d{2}|\d{4}))?$")
_YMD = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_WORDS = re.compile(r"^(\d{1,2})\s+([^\W\d_]+)\.?(?:\s+(\d{4}))?(?:\s*г\.?)?$")
_TIME = re.compile(r"^(\d{1,2})[:.](\d{2})(?::(\d{2}))?$")


class BadValue(ValueError):
    pass


def split_date_time(text: str) -> tuple[str, str]:
    """`14.03.2026 15:30`, `2026-03-14T15:30:00`, `14.03.2026, 15:30` → date part, time part."""
    text = text.strip()
    if "T" in text and _YMD.match(text.split("T", 1)[0]):
        day, clock = text.split("T", 1)
        return day, clock.removesuffix("Z")[:8]
    parts = text.replace(",", " ").split()
    if len(parts) >= 2 and _TIME.match(parts[-1]):
        return " ".join(parts[:-1]), parts[-1]
    return text, ""


def parse_day(text: str, today: date, *, birthday: bool = False) -> tuple[int | None, int, int]:
    """(year or None, month, day) of a date as people write it; BadValue if it is none or an
    impossible one. Without a year only for a birthday."""
    text = text.strip().lower()
    year: int | None
    if match := _YMD.match(text):
        year, month, day = int(match[1]), int(match[2]), int(match[3])
    elif match := _DMY.match(text):
        day, month = int(match[1]), int(match[2])
        year = None if match[3] is None else int(match[3])
        if year is not None and year < 100:
            year += 2000
            if birthday and year > today.year:
                year -= 100
    elif match := _WORDS.match(text):
        month_number = _month(match[2])
        if month_number is None:
            raise BadValue(text)
        day, month = int(match[1]), month_number
        year = int(match[3]) if match[3] else None
    else:
        raise BadValue(text)
    if year is None and not birthday:
        raise BadValue(text)
    try:
        date(year or 2000, month, day)  # 2000 is a leap year: 29.02 without a year is a date
    except ValueError:
        raise BadValue(text) from None
    if year is not None and not 1900 <= year <= today.year:
        raise BadValue(text)
    return year, month, day


def parse_clock(text: str) -> time:
    match = _TIME.match(text.strip())
    if not match:
        raise BadValue(text)
    try:
        return time(int(match[1]), int(match[2]), int(match[3] or 0))
    except ValueError:
        raise BadValue(text) from None


_CURRENCY = re.compile(r"(?i)руб\.?|р\.|₽|rub|\$|€|usd|eur")


def parse_amount(text: str) -> int:
    """Kopecks of `1 500,00`, `1500 ₽`, `1,500.00`, `1500`; BadValue for anything else or < 0."""
    cleaned = _CURRENCY.sub("", text)
    for space in (" ", "\u00a0", "\u202f", "\u2009", "'"):
        cleaned = cleaned.replace(space, "")
    if "," in cleaned and "." in cleaned:  # the last of them is the decimal mark
        thousands = "," if cleaned.rfind(",") < cleaned.rfind(".") else "."
        cleaned = cleaned.replace(thousands, "")
    cleaned = cleaned.replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise BadValue(text) from None
    if not value.is_finite() or value < 0 or value >= 10**12:
        raise BadValue(text)
    return int((value * 100).quantize(Decimal(1)))


_VALID_RU: dict[str, bool] = {}  # +7 national number's first 7 digits → valid (see fast_phone)


def fast_phone(text: str) -> str | None:
    """`normalize_phone(text)`, with a short way for the Russian numbers a base is made of.

    Written by hand because libphonenumber's parse costs about 0.2-0.5 ms (its regexes), so a
    base's 100,000 numbers in two spellings cost a minute. `+7…`/`7…` with 10 digits after the 7,
    `89…` with 10 after the 8 and `9…` with 10 digits are the cases where normalize_phone tries
    exactly "+7" and the 10 digits first (no country code begins "+89") and returns it when valid;
    here validity comes from `is_valid_number` on the number built directly, cached by its first
    7 digits (libphonenumber's patterns for +7, Russia and Kazakhstan, decide on at most the first
    6 digits and the length). Anything else, or a number found invalid, goes to normalize_phone.
    """
    stripped = text.strip()
    if not stripped or len(stripped) > 32 or any(c.isalpha() for c in stripped):
        return None
    digits = "".join(c for c in stripped if c.isdigit())
    national = ""
    if len(digits) == 11 and digits[0] == "7":
        national = digits[1:]
    elif len(digits) == 11 and digits[:2] == "89" and not stripped.startswith("+"):
        national = digits[1:]
    elif len(digits) == 10 and digits[0] == "9" and not stripped.startswith("+"):
        national = digits
    if national:
        valid = _VALID_RU.get(national[:7])
        if valid is None:
            number = phonenumbers.PhoneNumber(country_code=7, national_number=int(national))
            valid = _VALID_RU[national[:7]] = phonenumbers.is_valid_number(number)
        if valid:
            return "+7" + national
    return normalize_phone(text)


def first_phone(text: str) -> str | None:
    """E.164 of the cell's number, or of the first real one of several."""
    phone = fast_phone(text)
    if phone is not None or not re.search(r"[,;/]", text):
        return phone
    for part in re.split(r"[,;/]", text):
        phone = fast_phone(part)
        if phone is not None:
            return phone
    return None


def clean_name(text: str) -> str | None:
    name = " ".join(text.split())[:NAME_LIMIT].strip()
    return name or None


class Cache:
    """A value parsed once per distinct cell text (a file repeats its phones, dates, amounts and
    services a million times); bounded, so a file of all-different cells cannot fill memory."""

    def __init__(self, parse: Callable[[str], Any], limit: int = 200_000) -> None:
        self.parse = parse
        self.limit = limit
        self.values: dict[str, Any] = {}

    def __call__(self, text: str) -> Any:
        try:
            value = self.values[text]
        except KeyError:
            try:
                value = self.parse(text)
            except BadValue as error:
                value = error
            if len(self.values) >= self.limit:
                self.values.clear()
            self.values[text] = value
        if isinstance(value, BadValue):
            raise value
        return value


# ---- reading the file -----------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    line: int  # the file's line number where the row begins (the header is line 1 or later)
    cells: dict[str, str]  # canonical field → the cell's text, stripped


@dataclass
class Table:
    encoding: str
    delimiter: str
    header: list[str]
    columns: dict[str, int]
    header_line: int
    rows: Iterator[Line]


def _encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    cut = sample.rfind(b"\n") + 1 if len(sample) >= SAMPLE else len(sample)
    try:
        sample[: cut or len(sample)].decode("utf-8")
    except UnicodeDecodeError:
        return "cp1251"
    return "utf-8"


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def open_table(stream: IO[bytes], kind: Kind | None) -> tuple[Kind, Table]:
    """The file's table, streamed: encoding and delimiter told from its start, the header found
    and matched. `kind` None: told from the header. ImportFileError for a file that is not one."""
    sample = stream.read(SAMPLE)
    if not sample.strip():
        raise ImportFileError("empty", "the file is empty")
    if b"\x00" in sample or sample.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise ImportFileError(
            "not_csv", "this is not a CSV file (an Excel workbook? save it as CSV)"
        )
    encoding = _encoding(sample)
    text = io.TextIOWrapper(
        io.BufferedReader(_Prepend(sample, stream)), encoding=encoding, newline=""
    )
    first = sample.decode(encoding, errors="replace").lstrip("\ufeff").splitlines()
    lines = [line for line in first[:HEADER_SEARCH] if line.strip()]
    header_at = next(
        (
            line
            for line in lines
            if detect_kind(next(csv.reader([line], delimiter=_delimiter(line))))
        ),
        None,
    )
    delimiter = _delimiter(header_at or (lines[0] if lines else ","))
    reader = csv.reader(text, delimiter=delimiter)
    header: list[str] | None = None
    try:
        for _ in range(HEADER_SEARCH):
            row = next(reader, None)
            if row is None:
                break
            found = detect_kind(row)
            if found is not None and (kind is None or kind == found or _has(row, kind)):
                header = row
                kind = kind or found
                break
    except (UnicodeDecodeError, csv.Error) as error:
        raise ImportFileError("unreadable", f"cannot read the file as CSV: {error}") from None
    if header is None or kind is None:
        wanted = "phone, date and service" if kind == Kind.VISITS else "phone"
        raise ImportFileError(
            "no_header",
            f"no header with the {wanted} columns in the first {HEADER_SEARCH} lines "
            f"(see the template: {', '.join(TEMPLATE[kind or Kind.CUSTOMERS])})",
            kind=kind or Kind.CUSTOMERS,
            template=", ".join(TEMPLATE[kind or Kind.CUSTOMERS]),
        )
    columns = match_columns(header, kind)
    missing = [f for f in REQUIRED[kind] if f not in columns]
    if missing:
        raise ImportFileError(
            "no_column",
            f"the file has no {', '.join(missing)} column for {kind}",
            columns=missing,
        )
    table = Table(encoding, delimiter, header, columns, reader.line_num, iter(()))
    table.rows = _rows(reader, columns)
    return kind, table


def _has(row: list[str], kind: Kind) -> bool:
    columns = match_columns(row, kind)
    return all(f in columns for f in REQUIRED[kind])


def _rows(reader: Any, columns: dict[str, int]) -> Iterator[Line]:
    names = tuple(columns)
    picked = operator.itemgetter(*columns.values())
    width = max(columns.values()) + 1
    start = reader.line_num + 1
    try:
        for row in reader:
            if len(row) >= width:
                values = picked(row)
                if len(names) == 1:
                    values = (values,)
            elif any(cell.strip() for cell in row):  # a short row: the missing cells are empty
                values = tuple(row[i] if i < len(row) else "" for i in columns.values())
            else:
                values = ()
            if any(values):
                yield Line(start, dict(zip(names, map(str.strip, values), strict=True)))
            start = reader.line_num + 1
    except UnicodeDecodeError:
        raise ImportFileError(
            "encoding",
            f"line {start}: the file changes its encoding (neither UTF-8 nor Windows-1251 "
            "throughout); the lines before it were read",
            line=start,
        ) from None
    except csv.Error as error:
        raise ImportFileError("unreadable", f"line {start}: {error}", line=start) from None


class _Prepend(io.RawIOBase):
    """The sample already read, then the rest of the stream: one file again, still streamed."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            size = min(len(buffer), len(self.head))
            buffer[:size] = self.head[:size]
            self.head = self.head[size:]
            return size
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# ---- the rows, validated ----------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    line: int
    reason: Reason
    value: str = ""  # the cell in question, as written


@dataclass
class CustomerRow:
    line: int
    phone: str
    name: str | None = None
    birthday: tuple[int | None, int, int] | None = None  # year, month, day
    notes: list[str] = field(default_factory=list)  # the comment, the e-mail


class VisitRow(NamedTuple):  # a tuple: a million of them are made (a frozen dataclass: 3x slower)
    line: int
    phone: str
    customer: str  # the name as written (cleaned when the customer is created)
    day: str  # local, ISO
    at: datetime  # UTC
    service_id: str
    master_id: str | None
    amount_minor: int


class Parser:
    """Cells → rows, or the reason a row is refused. Each distinct cell text is parsed once."""

    def __init__(self, business: Business, tz: tzinfo, now: datetime) -> None:
        self.business = business
        self.tz = tz
        self.now = now
        self.today = now.astimezone(tz).date()
        self.phone = Cache(self._phone)
        self.birthday = Cache(lambda text: parse_day(text, self.today, birthday=True))
        self.moment = Cache(self._moment)
        self.amount = Cache(parse_amount)
        self.services: dict[str, str] = {}
        self.masters: dict[str, str] = {}
        for service in business.services:
            for name in (service.id, service.name, *service.aliases):
                self.services.setdefault(fold_name(name), service.id)
        for master in business.masters:
            for name in (master.id, master.name, *master.aliases):
                self.masters.setdefault(fold_name(name), master.id)
        self.prices = {s.id: s.price * 100 for s in business.services}
        self._services_seen: dict[str, str | None] = {}
        self._masters_seen: dict[str, str | None] = {}

    def _service(self, text: str) -> str | None:
        try:
            return self._services_seen[text]
        except KeyError:
            found = self._services_seen[text] = self.services.get(fold_name(text))
            return found

    def _master(self, text: str) -> str | None:
        try:
            return self._masters_seen[text]
        except KeyError:
            found = self._masters_seen[text] = self.masters.get(fold_name(text))
            return found

    @staticmethod
    def _phone(text: str) -> str:
        phone = first_phone(text)
        if phone is None:
            raise BadValue(text)
        return phone

    def _moment(self, text: str) -> tuple[str, datetime]:
        """The visit's local day (ISO) and its moment in UTC."""
        day_text, clock_text = split_date_time(text)
        year, month, day = parse_day(day_text, self.today)
        local_day = date(year or self.today.year, month, day)
        clock = parse_clock(clock_text) if clock_text else VISIT_HOUR
        at = datetime.combine(local_day, clock, self.tz).astimezone(UTC)
        return local_day.isoformat(), at

    def customer(self, line: Line, issues: list[Issue]) -> CustomerRow | Issue:
        cells = line.cells
        raw_phone = cells.get("phone", "")
        if not raw_phone:
            return Issue(line.line, Reason.NO_PHONE)
        try:
            phone = self.phone(raw_phone)
        except BadValue:
            return Issue(line.line, Reason.BAD_PHONE, raw_phone)
        name = clean_name(" ".join(filter(None, (cells.get("name"), cells.get("surname")))))
        row = CustomerRow(line.line, phone, name)
        if raw := cells.get("birthday"):
            try:
                row.birthday = self.birthday(raw.split()[0] if _has_clock(raw) else raw)
            except BadValue:
                issues.append(Issue(line.line, Reason.BAD_BIRTHDAY, raw))
        if notes := cells.get("notes"):
            row.notes.append(notes[:NOTE_LIMIT])
        if email := cells.get("email"):
            row.notes.append(f"E-mail: {email}"[:NOTE_LIMIT])
        return row

    def visit(self, line: Line, issues: list[Issue]) -> VisitRow | Issue:
        cells = line.cells
        number = line.line
        raw_phone = cells.get("phone", "")
        if not raw_phone:
            return Issue(number, Reason.NO_PHONE)
        try:
            phone = self.phone(raw_phone)
        except BadValue:
            return Issue(number, Reason.BAD_PHONE, raw_phone)
        raw_date = cells.get("date", "")
        if not raw_date:
            return Issue(number, Reason.NO_DATE)
        when = f"{raw_date} {cells['time']}" if cells.get("time") else raw_date
        try:
            day, at = self.moment(when)
        except BadValue:
            return Issue(number, Reason.BAD_DATE, when)
        if at > self.now:
            return Issue(number, Reason.FUTURE_DATE, when)
        status = cells.get("status", "")
        if status and _NOT_ATTENDED.search(status.casefold().replace("ё", "е")):
            return Issue(number, Reason.NOT_ATTENDED, status)
        raw_service = cells.get("service", "")
        if not raw_service:
            return Issue(number, Reason.NO_SERVICE)
        service_id = self._service(raw_service)
        if service_id is None:
            return Issue(number, Reason.UNKNOWN_SERVICE, raw_service)
        master_id = None
        if raw_master := cells.get("master"):
            master_id = self._master(raw_master)
            if master_id is None:
                issues.append(Issue(number, Reason.UNKNOWN_MASTER, raw_master))
        raw_amount = cells.get("amount", "")
        if raw_amount:
            try:
                amount = self.amount(raw_amount)
            except BadValue:
                return Issue(number, Reason.BAD_AMOUNT, raw_amount)
        else:
            amount = self.prices[service_id]
            issues.append(Issue(number, Reason.PRICE_FROM_LIST))
        return VisitRow(
            number, phone, cells.get("customer", ""), day, at, service_id, master_id,
            amount,
        )  # fmt: skip


def _has_clock(text: str) -> bool:
    parts = text.split()
    return len(parts) == 2 and _TIME.match(parts[1]) is not None


# ---- the report --------------------------------------------------------------------------------


@dataclass
class ImportReport:
    kind: Kind
    applied: bool
    encoding: str = ""
    delimiter: str = ""
    rows: int = 0  # data rows read (empty lines not counted)
    accepted: int = 0  # rows taken (merged duplicates included)
    duplicates: int = 0  # rows whose key came earlier in the file: merged into that one
    rejected: list[Issue] = field(default_factory=list)
    rejected_count: int = 0  # all of them, also beyond REJECTED_KEPT
    warnings: list[Issue] = field(default_factory=list)
    warning_count: int = 0
    customers_new: int = 0
    customers_updated: int = 0  # known ones that got fields they lacked
    customers_known: int = 0  # known ones left as they were
    visits_new: int = 0
    visits_known: int = 0  # imported before
    notes_new: int = 0

    def reject(self, issue: Issue) -> None:
        self.rejected_count += 1
        if len(self.rejected) < REJECTED_KEPT:
            self.rejected.append(issue)

    def warn(self, issue: Issue) -> None:
        self.warning_count += 1
        if len(self.warnings) < REJECTED_KEPT:
            self.warnings.append(issue)

    def reasons(self) -> list[tuple[str, int]]:
        """Refusals by reason, most first (all of them counted, also beyond the kept list)."""
        counts: dict[str, int] = {}
        for issue in self.rejected:
            counts[issue.reason] = counts.get(issue.reason, 0) + 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def warning_reasons(self) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for issue in self.warnings:
            counts[issue.reason] = counts.get(issue.reason, 0) + 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def rejected_csv(self) -> bytes:
        """The refused lines (and warnings) as a CSV the owner opens in Excel: line, reason, value."""
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["line", "reason", "value"])
        for issue in sorted((*self.rejected, *self.warnings), key=lambda i: i.line):
            writer.writerow([issue.line, issue.reason.value, issue.value])
        return out.getvalue().encode("utf-8-sig")


# ---- the import -----------------------------------------------------------------------------


def _chunks(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class ImportService:
    def __init__(
        self, db: Database, clock: Clock, business: Business, tz: tzinfo, chunk: int = CHUNK
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz
        self.chunk = chunk

    def sniff(self, stream: IO[bytes]) -> Kind:
        """customers or visits, told from the header (the admin chat without a caption)."""
        return open_table(stream, None)[0]

    async def run(self, stream: IO[bytes], kind: Kind | None, *, apply: bool) -> ImportReport:
        """Read the whole file and say what it holds; with `apply`, write it. ImportFileError
        for a file that cannot be read at all (nothing written then)."""
        started = self.clock.now()
        kind, table = open_table(stream, kind)
        report = ImportReport(kind, apply, table.encoding, table.delimiter)
        parser = Parser(self.business, self.tz, started)
        if kind == Kind.CUSTOMERS:
            await self._customers(table, parser, report, apply)
        else:
            await self._visits(table, parser, report, apply)
        return report

    def _validated(
        self, table: Table, report: ImportReport, check: Callable[[Line, list[Issue]], Any]
    ) -> Iterator[Any]:
        for line in table.rows:
            report.rows += 1
            issues: list[Issue] = []
            row = check(line, issues)
            if isinstance(row, Issue):
                report.reject(row)
                continue
            for issue in issues:
                report.warn(issue)
            yield row

    async def _customers(
        self, table: Table, parser: Parser, report: ImportReport, apply: bool
    ) -> None:
        seen: set[int] = set()  # hashes of phones met in earlier chunks
        now = self.clock.now()
        index = await PhoneIndex.load(self.db)
        for chunk in _chunks(self._validated(table, report, parser.customer), self.chunk):
            merged: dict[str, CustomerRow] = {}
            for row in chunk:
                report.accepted += 1
                first = merged.get(row.phone)
                if first is None:
                    if hash(row.phone) in seen:
                        report.duplicates += 1  # merged below: its fields fill what is empty
                    merged[row.phone] = row
                    continue
                report.duplicates += 1
                first.name = first.name or row.name
                first.birthday = first.birthday or row.birthday
                first.notes.extend(n for n in row.notes if n not in first.notes)
            async with self._unit(apply) as repos:
                known = await index.find(repos, list(merged))
                new = [
                    _new_customer(row, now)
                    for phone, row in merged.items()
                    if phone not in known and hash(phone) not in seen
                ]
                fills = []
                for phone, row in merged.items():
                    facts = known.get(phone)
                    if facts is None:
                        continue
                    fill = _fill(facts, row)
                    if fill:
                        fills.append(fill)
                    if hash(phone) not in seen:
                        if fill:
                            report.customers_updated += 1
                        else:
                            report.customers_known += 1
                report.customers_new += len(new)
                seen.update(hash(phone) for phone in merged)
                if apply:
                    await repos.importing.add_customers(new, self._offers_version(), now)
                    await repos.importing.fill_customers(fills)
                    known.update(await index.refresh(repos, [row["phone"] for row in new]))
                else:  # the notes of customers a real run would create are all new
                    report.notes_new += sum(
                        len(row.notes) for phone, row in merged.items() if phone not in known
                    )
                notes = await repos.importing.notes_missing(
                    [
                        (known[phone].id, text)
                        for phone, row in merged.items()
                        for text in row.notes
                        if phone in known
                    ]
                )
                report.notes_new += len(notes)
                if apply:
                    await repos.importing.add_notes(notes, now)

    async def _visits(
        self, table: Table, parser: Parser, report: ImportReport, apply: bool
    ) -> None:
        seen_keys: set[int] = set()  # hashes of (phone, day, service) met earlier in the file
        created: set[int] = set()  # dry run: hashes of phones a real run would have created
        now = self.clock.now()
        index = await PhoneIndex.load(self.db)
        earliest: datetime | None = None  # the earliest visit written: campaign days it reopens
        for chunk in _chunks(self._validated(table, report, parser.visit), self.chunk):
            rows: list[VisitRow] = []
            for row in chunk:
                report.accepted += 1
                key = hash((row.phone, row.day, row.service_id))
                if key in seen_keys:
                    report.duplicates += 1
                    continue
                seen_keys.add(key)
                rows.append(row)
            async with self._unit(apply) as repos:
                known = await index.find(repos, list({row.phone: None for row in rows}))
                missing: dict[str, CustomerRow] = {}
                for row in rows:
                    if row.phone not in known and row.phone not in missing:
                        if apply or hash(row.phone) not in created:
                            missing[row.phone] = CustomerRow(
                                row.line, row.phone, clean_name(row.customer)
                            )
                report.customers_new += len(missing)
                if apply:
                    await repos.importing.add_customers(
                        [_new_customer(r, now) for r in missing.values()],
                        self._offers_version(),
                        now,
                    )
                    known.update(await index.refresh(repos, list(missing)))
                else:
                    created.update(hash(phone) for phone in missing)
                keyed = [
                    (f"{known[row.phone].id}:{row.day}:{row.service_id}", row)
                    for row in rows
                    if row.phone in known
                ]
                report.visits_new += len(rows) - len(keyed)  # dry run: of customers to create
                # applied, the insert itself skips (and counts) the visits already there
                there = (
                    set() if apply else await repos.importing.existing_visits([k for k, _ in keyed])
                )
                fresh = [(key, row) for key, row in keyed if key not in there]
                inserted = len(fresh)
                if apply:
                    inserted = await repos.importing.add_visits(
                        [
                            (
                                known[row.phone].id,
                                row.amount_minor,
                                row.service_id,
                                row.master_id,
                                row.at,
                                None,
                                IMPORT_STAFF,
                                key,
                            )
                            for key, row in fresh
                        ]
                    )
                    if inserted and fresh:
                        first = min(row.at for _, row in fresh)
                        earliest = first if earliest is None else min(earliest, first)
                report.visits_new += inserted
                report.visits_known += len(keyed) - inserted
        if earliest is not None:
            await self._reopen_campaign_days(earliest)
            await self._reopen_sales_days(earliest)

    async def _reopen_campaign_days(self, earliest: datetime) -> None:
        """Old visits may make customers assigned up to `window_days` before them "came back":
        the campaign report's closed days from then on are counted again by the planner."""
        day = earliest.astimezone(self.tz).date() - timedelta(
            days=self.business.campaigns.window_days
        )
        async with self.db.transaction() as repos:
            await repos.campaign_days.reopen_from(day)

    async def _reopen_sales_days(self, earliest: datetime) -> None:
        """Visits in the past change `/stats`'s closed days from theirs (later sales become
        repeat ones, gaps change) and the cohorts from their month: the planner counts them
        again."""
        async with self.db.transaction() as repos:
            await repos.stats.reopen_from(earliest.astimezone(self.tz).date())

    def _offers_version(self) -> str:
        """The version the "no offers" consent row of a new customer is recorded under."""
        return str(getattr(self.business, "offers_version", self.business.privacy_version))

    def _unit(self, apply: bool) -> Any:
        return self.db.transaction() if apply else self.db.reading()


PRELOAD_LIMIT = 300_000  # customers with a phone read at once (about 20 MB); more: per chunk


class PhoneIndex:
    """Phone → known customer: the whole base read once when it is small enough (a million
    visits then need no look-up at all), else looked up chunk by chunk. Customers who join the
    bot while an import runs are not seen by it (their phone would be imported as a new
    customer; the /start recognition merges such a pair)."""

    def __init__(self, known: dict[str, KnownCustomer] | None) -> None:
        self.known = known

    @classmethod
    async def load(cls, db: Database) -> PhoneIndex:
        async with db.reading() as repos:
            if await repos.importing.phone_count() > PRELOAD_LIMIT:
                return cls(None)
            return cls(await repos.importing.all_phones())

    async def find(self, repos: Repos, phones: list[str]) -> dict[str, KnownCustomer]:
        if self.known is None:
            return await repos.importing.customers_by_phone(phones)
        return {phone: self.known[phone] for phone in phones if phone in self.known}

    async def refresh(self, repos: Repos, phones: list[str]) -> dict[str, KnownCustomer]:
        """The customers just written, with their ids."""
        fresh = await repos.importing.customers_by_phone(phones) if phones else {}
        if self.known is not None:
            self.known.update(fresh)
        return fresh


def _new_customer(row: CustomerRow, now: datetime) -> dict[str, Any]:
    year, month, day = row.birthday or (None, None, None)
    return {
        "tg_user_id": None,
        "name": row.name,
        "name_folded": row.name.casefold() if row.name else None,
        "language": "ru",
        "phone": row.phone,
        "birth_day": day,
        "birth_month": month,
        "birth_year": year,
        "source": "import",
        "marketing_opt_out": True,  # no consent to offers: they give it in the bot, or not
        "data_consent_version": None,
        "imported_at": now,
        "created_at": now,
    }


def _fill(facts: Any, row: CustomerRow) -> dict[str, Any] | None:
    """The fields a known customer lacks and the file has; None when there is nothing to add."""
    fill: dict[str, Any] = {}
    if not facts.name and row.name:
        fill["name"] = row.name
        fill["name_folded"] = row.name.casefold()
    if facts.birth_month is None and row.birthday is not None:
        fill["birth_year"], fill["birth_month"], fill["birth_day"] = row.birthday
    if not fill:
        return None
    return {"customer_id": facts.id, **fill}
