"""A customer imported from the owner's base, recognised by phone when they join in Telegram:
the two rows made one, on each database, and under two taps at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.engine import create_engine
from bot.db.models import (
    Consent,
    ConsentKind,
    ConsentVia,
    Customer,
    Cycle,
    Purchase,
    StaffNote,
)
from bot.db.repositories import Database
from bot.services.birthdays import Birthday
from bot.services.customers import CustomerService
from tests.unit.conftest import MOSCOW

PHONE = "+79161234567"
KEY = b"test-secret-key"


@pytest.fixture
def service(db: Database, clock: FixedClock, business: Business) -> CustomerService:
    return CustomerService(db, clock, business, MOSCOW, secret_key=KEY)


async def imported(
    db: Database,
    now: datetime,
    phone: str = PHONE,
    name: str | None = "Анна Петрова",
    birthday: tuple[int, int] | None = (14, 3),
    visits_days_ago: tuple[int, ...] = (67, 46, 25),
) -> int:
    """An imported customer (no Telegram account, no offers consent) and their imported visits,
    as the importer writes them."""
    async with db.transaction() as repos:
        customer = Customer(
            tg_user_id=None,
            name=name,
            name_folded=name.casefold() if name else None,
            phone=phone,
            birth_day=birthday[0] if birthday else None,
            birth_month=birthday[1] if birthday else None,
            source="import",
            marketing_opt_out=True,
            imported_at=now - timedelta(days=1),
            created_at=now - timedelta(days=1),
        )
        repos.customers.add(customer)
        await repos.customers.flush()
        for days in visits_days_ago:
            at = now - timedelta(days=days)
            await repos.purchases.add(
                Purchase(
                    customer_id=customer.id,
                    amount_minor=200000,
                    service_id="manicure",
                    master_id="anna",
                    at=at,
                    staff_name="import",
                    import_key=f"{customer.id}:{at.date()}:manicure",
                )
            )
        repos.notes.add(
            StaffNote(
                customer_id=customer.id, text="любит нюд", staff_id=1, staff_name="Ольга", at=now
            )
        )
        return customer.id


async def rows(db: Database, model: type[Any], *where: Any) -> list[Any]:
    async with db.reading() as repos:
        found: list[Any] = list(await repos.session.scalars(select(model).where(*where)))
        repos.session.expunge_all()  # kept as read (the reading's rollback expires what it holds)
        return found


async def test_the_imported_row_becomes_theirs_with_its_history(
    service: CustomerService, db: Database, clock: FixedClock
) -> None:
    old = await imported(db, clock.now())
    joined = await service.consent(7, name="Anna P", username="anna", language="en", source="ig")
    saved = await service.set_phone(7, PHONE)
    assert saved.recognised and saved.name == "Анна Петрова" and saved.visits == 3
    assert saved.birthday == Birthday(14, 3, None)
    (customer,) = await rows(db, Customer, Customer.phone == PHONE)
    assert customer.id == old and customer.tg_user_id == 7
    assert (customer.username, customer.language, customer.source) == ("anna", "en", "ig")
    assert customer.name == "Анна Петрова" and customer.imported_at is not None
    assert customer.data_consent_version == "2026-11-01"
    assert await rows(db, Customer, Customer.id == joined.id) == []  # the new row is gone
    # the consent they gave in Telegram is kept, now on the imported row
    consents = await rows(db, Consent, Consent.customer_id == old)
    assert [(c.kind, c.granted, c.via) for c in consents] == [
        (ConsentKind.PERSONAL_DATA, True, ConsentVia.BUTTON)
    ]
    assert len(await rows(db, Purchase, Purchase.customer_id == old)) == 3
    assert len(await rows(db, StaffNote, StaffNote.customer_id == old)) == 1
    found = await service.find(7)
    assert found and found.id == old and found.name == "Анна Петрова"
    # a second tap of the same contact changes nothing
    again = await service.set_phone(7, PHONE)
    assert again == saved
    assert len(await rows(db, Customer)) == 1


async def test_a_telegram_name_fills_a_gap_and_a_new_phone_is_no_one_known(
    service: CustomerService, db: Database, clock: FixedClock
) -> None:
    old = await imported(db, clock.now(), name=None, birthday=None)
    await service.consent(7, name="Anna", username=None, language="ru", source=None)
    saved = await service.set_phone(7, PHONE)
    assert saved.recognised and saved.name == "Anna" and saved.birthday is None
    (customer,) = await rows(db, Customer, Customer.id == old)
    assert customer.source == "import" and customer.name_folded == "anna"
    await service.consent(8, name="Boris", username=None, language="ru", source=None)
    other = await service.set_phone(8, "+79161112233")
    assert not other.recognised


async def test_a_phone_of_a_linked_customer_is_not_merged(
    service: CustomerService, db: Database, clock: FixedClock
) -> None:
    """Someone already in Telegram with this phone: a second account sharing it stays itself,
    and the phone is saved on it (as before: the welcome coupon's fingerprint then says no)."""
    old = await imported(db, clock.now())
    await service.consent(7, name="Anna", username=None, language="ru", source=None)
    await service.set_phone(7, PHONE)
    second = await service.consent(8, name="Other", username=None, language="ru", source=None)
    saved = await service.set_phone(8, PHONE)
    assert not saved.recognised
    (mine,) = await rows(db, Customer, Customer.tg_user_id == 8)
    assert mine.id == second.id and mine.phone == PHONE and mine.imported_at is None
    assert len(await rows(db, Purchase, Purchase.customer_id == old)) == 3
    assert await rows(db, Purchase, Purchase.customer_id == second.id) == []


async def test_an_erased_imported_customer_is_not_taken_over(
    service: CustomerService, db: Database, clock: FixedClock
) -> None:
    old = await imported(db, clock.now())
    async with db.transaction() as repos:
        customer = await repos.customers.get(old)
        assert customer is not None
        customer.erased_at = clock.now()
    await service.consent(7, name="Anna", username=None, language="ru", source=None)
    assert not (await service.set_phone(7, PHONE)).recognised
    assert (await rows(db, Customer, Customer.id == old))[0].tg_user_id is None


async def test_two_imported_rows_with_one_phone_the_oldest_is_taken(
    service: CustomerService, db: Database, clock: FixedClock
) -> None:
    """The importer keeps one row per phone; should there be two, nothing breaks."""
    first = await imported(db, clock.now())
    second = await imported(db, clock.now(), name="Анна П.", visits_days_ago=(100,))
    await service.consent(7, name="Anna", username=None, language="ru", source=None)
    saved = await service.set_phone(7, PHONE)
    assert saved.recognised and saved.visits == 3
    assert (await service.find(7)).id == first  # type: ignore[union-attr]
    assert (await rows(db, Customer, Customer.id == second))[0].tg_user_id is None


async def test_the_recognised_customers_cycles_are_learned_again(
    service: CustomerService, db: Database, clock: FixedClock
) -> None:
    """Cycles kept while they had no Telegram are dropped at the merge: the next planner run
    learns them from the visits as of that moment."""
    old = await imported(db, clock.now())
    async with db.transaction() as repos:
        repos.cycles.add(
            Cycle(
                customer_id=old,
                service_id="manicure",
                last_purchase_id=1,
                last_visit_at=clock.now(),
                interval_days=21,
            )
        )
    await service.consent(7, name="Anna", username=None, language="ru", source=None)
    await service.set_phone(7, PHONE)
    assert await rows(db, Cycle) == []


@pytest.fixture
async def second_db(database_url: str) -> AsyncIterator[Database]:
    """The same database through another engine: what a second bot process would see."""
    engine = create_engine(database_url)
    yield Database(engine)
    await engine.dispose()


async def test_two_taps_at_once_make_one_customer(
    service: CustomerService,
    db: Database,
    second_db: Database,
    clock: FixedClock,
    business: Business,
) -> None:
    """The same contact sent twice, handled by two processes at the same instant: one merge,
    both answered "recognised", no error (on PostgreSQL the second waits for the first's lock
    and finds the account on the imported row)."""
    twin = CustomerService(second_db, clock, business, MOSCOW, secret_key=KEY)
    old = await imported(db, clock.now())
    await service.consent(7, name="Anna", username=None, language="ru", source=None)
    results = await asyncio.gather(service.set_phone(7, PHONE), twin.set_phone(7, PHONE))
    assert all(r.recognised for r in results)
    (customer,) = await rows(db, Customer)
    assert customer.id == old and customer.tg_user_id == 7


async def test_two_accounts_with_one_phone_at_once_only_one_takes_it(
    service: CustomerService,
    db: Database,
    second_db: Database,
    clock: FixedClock,
    business: Business,
) -> None:
    twin = CustomerService(second_db, clock, business, MOSCOW, secret_key=KEY)
    old = await imported(db, clock.now())
    for tg in (7, 8):
        await service.consent(tg, name="Anna", username=None, language="ru", source=None)
    results = await asyncio.gather(service.set_phone(7, PHONE), twin.set_phone(8, PHONE))
    assert sorted(r.recognised for r in results) == [False, True]
    async with db.reading() as repos:
        linked = await repos.session.scalar(
            select(func.count()).where(Customer.id == old, Customer.tg_user_id.in_([7, 8]))
        )
    assert linked == 1
    assert len(await rows(db, Customer)) == 2
