"""The import's SQL (`bot.services.importing`): set-wise look-ups and writes of one chunk.

Every statement takes a chunk's rows at once: a look-up is one `IN (…)` of up to a chunk's
keys, a write one executemany (sqlite3's C loop, asyncpg's prepared executemany), so a million
visits are two hundred round trips, not a million.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Consent,
    ConsentKind,
    ConsentVia,
    Customer,
    Purchase,
    StaffNote,
    UTCDateTime,
)

IMPORT_STAFF = "import"
CUSTOMERS = cast(Table, Customer.__table__)  # Core statements: executemany, no ORM objects
CONSENTS = cast(Table, Consent.__table__)
NOTES = cast(Table, StaffNote.__table__)
PURCHASES = cast(Table, Purchase.__table__)
PAGE = 5000  # keys per IN (…), under every driver's limit on bound parameters


@dataclass(frozen=True)
class KnownCustomer:
    id: int
    name: str | None
    birth_month: int | None


def _pages(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), PAGE):
        yield items[start : start + PAGE]


class ImportRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _insert(
        self, table: Table, rows: list[dict[str, Any]], *, unique: str | None = None
    ) -> int:
        """Rows into `table` in one executemany; with `unique`, a row whose value there is taken
        is skipped. Returns how many went in on SQLite, -1 on PostgreSQL (asyncpg's executemany
        does not say).

        On SQLite straight to sqlite3's executemany, with the moments in the text form
        SQLAlchemy's SQLite DATETIME stores (`_sqlite_stamp`): through SQLAlchemy's
        executemany, a million visits spent most of their time in its per-row parameter
        processing (UTCDateTime, then the dialect's datetime-to-text)."""
        if not rows:
            return 0
        if self.session.get_bind().dialect.name != "sqlite":
            statement: Any = pg_insert(table)
            if unique:
                statement = statement.on_conflict_do_nothing(index_elements=[unique])
            await self.session.execute(statement, rows)
            return -1
        columns = list(rows[0])
        moments = {name for name in columns if isinstance(table.c[name].type, UTCDateTime)}
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
            + (f" ON CONFLICT ({unique}) DO NOTHING" if unique else "")
        )
        values = [
            tuple(
                _sqlite_stamp(row[name]) if name in moments and row[name] is not None else row[name]
                for name in columns
            )
            for row in rows
        ]
        connection = await self.session.connection()
        result: Any = await connection.exec_driver_sql(sql, values)
        return int(result.rowcount)

    async def customers_by_phone(self, phones: Sequence[str]) -> dict[str, KnownCustomer]:
        """The customer each phone belongs to (not erased; the first one if several share it)."""
        found: dict[str, KnownCustomer] = {}
        for page in _pages(phones):
            rows = await self.session.execute(_BY_PHONE, {"phones": list(page)})
            for phone, customer_id, name, month in rows:
                found[str(phone)] = KnownCustomer(customer_id, name, month)  # the lowest id stays
        return found

    async def phone_count(self) -> int:
        query = select(func.count()).where(
            Customer.phone.is_not(None), Customer.erased_at.is_(None)
        )
        return int(await self.session.scalar(query) or 0)

    async def all_phones(self) -> dict[str, KnownCustomer]:
        """Every customer with a phone, by phone (an import reads them once instead of a
        look-up per chunk)."""
        query = (
            select(Customer.phone, Customer.id, Customer.name, Customer.birth_month)
            .where(Customer.phone.is_not(None), Customer.erased_at.is_(None))
            .order_by(Customer.id.desc())
        )
        return {
            str(phone): KnownCustomer(customer_id, name, month)
            for phone, customer_id, name, month in await self.session.execute(query)
        }

    async def add_customers(self, rows: list[dict[str, Any]], version: str, at: datetime) -> None:
        """New customers (no Telegram account), each with one consent row that says they have
        not agreed to offers (kind marketing, granted False, via import): the truth, on record."""
        if not rows:
            return
        await self._insert(CUSTOMERS, rows)
        ids = await self.customers_by_phone([row["phone"] for row in rows])
        await self._insert(
            CONSENTS,
            [
                {
                    "customer_id": ids[row["phone"]].id,
                    "kind": ConsentKind.MARKETING.value,
                    "granted": False,
                    "version": version,
                    "at": at,
                    "via": ConsentVia.IMPORT.value,
                }
                for row in rows
            ],
        )

    async def fill_customers(self, fills: list[dict[str, Any]]) -> None:
        """Known customers get the fields they lack, and only those: whatever a customer gave
        in Telegram (or an earlier import) is kept, even if it changed since this was planned."""
        if not fills:
            return
        table = CUSTOMERS
        c = table.c
        empty_birthday = c.birth_month.is_(None)
        statement = (
            update(table)
            .where(c.id == bindparam("b_id"))
            .values(
                name=func.coalesce(c.name, bindparam("b_name")),
                name_folded=func.coalesce(c.name_folded, bindparam("b_folded")),
                birth_year=case((empty_birthday, bindparam("b_year")), else_=c.birth_year),
                birth_month=case((empty_birthday, bindparam("b_month")), else_=c.birth_month),
                birth_day=case((empty_birthday, bindparam("b_day")), else_=c.birth_day),
            )
        )
        await self.session.execute(
            statement,
            [
                {
                    "b_id": fill["customer_id"],
                    "b_name": fill.get("name"),
                    "b_folded": fill.get("name_folded"),
                    "b_year": fill.get("birth_year"),
                    "b_month": fill.get("birth_month"),
                    "b_day": fill.get("birth_day"),
                }
                for fill in fills
            ],
        )

    async def notes_missing(self, notes: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """The (customer, text) pairs no earlier import wrote as a note yet (once each)."""
        if not notes:
            return []
        there: set[tuple[int, str]] = set()
        ids = sorted({customer_id for customer_id, _ in notes})
        for page in _pages(ids):
            rows = await self.session.execute(_NOTES_THERE, {"ids": list(page)})
            there.update((row[0], row[1]) for row in rows)
        missing: list[tuple[int, str]] = []
        for note in notes:
            if note not in there:
                there.add(note)
                missing.append(note)
        return missing

    async def add_notes(self, notes: list[tuple[int, str]], at: datetime) -> None:
        if not notes:
            return
        await self._insert(
            NOTES,
            [
                {
                    "customer_id": customer_id,
                    "text": text,
                    "staff_id": 0,
                    "staff_name": IMPORT_STAFF,
                    "at": at,
                }
                for customer_id, text in notes
            ],
        )

    async def existing_visits(self, keys: Sequence[str]) -> set[str]:
        """The import keys already in `purchases` (an earlier import of the same visits)."""
        there: set[str] = set()
        for page in _pages(keys):
            rows = await self.session.scalars(_VISITS_THERE, {"keys": list(page)})
            there.update(key for key in rows if key is not None)
        return there

    async def add_visits(self, rows: list[tuple[Any, ...]]) -> int:
        """Visits as purchases (tuples in `VISIT_COLUMNS` order), written straight (no purchase
        event: nothing is sent for a visit from the past); one that is already there (the same
        import key) is left as it is. Returns how many went in.

        On PostgreSQL one statement per chunk: the chunk's columns as arrays, unnested into
        the table (`_POSTGRES_VISITS`). By hand because neither SQLAlchemy's executemany (a
        statement per row, and no count) nor its insertmanyvalues (a statement of 8 × rows
        parameters) gives the count without a look-up of every key first; with 1,000,000 visits
        that look-up was most of the import's time."""
        if not rows:
            return 0
        at = VISIT_COLUMNS.index("at")
        connection = await self.session.connection()
        if connection.dialect.name == "postgresql":
            columns = [list(column) for column in zip(*rows, strict=True)]
            columns[at] = [moment.astimezone(UTC).replace(tzinfo=None) for moment in columns[at]]
            result: Any = await connection.exec_driver_sql(_POSTGRES_VISITS, tuple(columns))
            return int(result.rowcount)
        result = await connection.exec_driver_sql(
            _SQLITE_VISITS,
            [(*row[:at], _sqlite_stamp(row[at]), *row[at + 1 :]) for row in rows],
        )
        return int(result.rowcount)


VISIT_COLUMNS = (
    "customer_id",
    "amount_minor",
    "service_id",
    "master_id",
    "at",
    "staff_id",
    "staff_name",
    "import_key",
)
_POSTGRES_VISITS = (
    f"INSERT INTO purchases ({', '.join(VISIT_COLUMNS)}) "
    "SELECT * FROM unnest($1::integer[], $2::bigint[], $3::varchar[], $4::varchar[], "
    "$5::timestamp[], $6::bigint[], $7::varchar[], $8::varchar[]) "
    "ON CONFLICT (import_key) DO NOTHING"
)
_SQLITE_VISITS = (
    f"INSERT INTO purchases ({', '.join(VISIT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in VISIT_COLUMNS)}) ON CONFLICT (import_key) DO NOTHING"
)


@functools.lru_cache(maxsize=65536)
def _sqlite_stamp(moment: datetime) -> str:
    """An aware moment as UTCDateTime stores it on SQLite: naive UTC, SQLAlchemy's text form."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# Built once: an IN of a chunk's keys as one expanding parameter, compiled once and cached
# (a literal list of 5,000 parameters was compiled again for every chunk).
_BY_PHONE = (
    select(Customer.phone, Customer.id, Customer.name, Customer.birth_month)
    .where(Customer.phone.in_(bindparam("phones", expanding=True)), Customer.erased_at.is_(None))
    .order_by(Customer.id.desc())
)
_NOTES_THERE = select(StaffNote.customer_id, StaffNote.text).where(
    StaffNote.customer_id.in_(bindparam("ids", expanding=True)),
    StaffNote.staff_name == IMPORT_STAFF,
)
_VISITS_THERE = select(Purchase.import_key).where(
    Purchase.import_key.in_(bindparam("keys", expanding=True))
)
