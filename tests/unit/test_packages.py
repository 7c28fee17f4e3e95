"""Prepaid packages: the business file's tables, `/sale … package:<name>` parsed, a sale buying
one, later visits of its service paid by it (amount 0, no cashback, the one expiring first),
expired and used-up ones charged, the reminder planned once, a cancelled sale undone, /forget,
and two staff using the last visit at once."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.business import Business, Package, load_business
from bot.clock import FixedClock
from bot.db.engine import create_engine
from bot.db.models import (
    CustomerPackage,
    LoyaltyEntry,
    OutboxMessage,
    PackageVisit,
    Purchase,
)
from bot.db.repositories import Database
from bot.events import Events, SaleCancelled
from bot.features import Features
from bot.outbox.compose import Obsolete
from bot.outbox.planners import Planners
from bot.services.customers import CustomerService
from bot.services.exporting import Exporter
from bot.services.loyalty import LoyaltyService
from bot.services.packages import PackageService, PackageState
from bot.services.staff import Staff, StaffService, UsageError, parse_sale
from bot.settings import ConfigError
from tests.conftest import BUSINESS_FILE

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA = Staff(1, "Ольга")
MANICURE5 = Package(name="manicure5", service="manicure", visits=5, price=8000, expire_months=6)


def _with(business: Business, *packages: Package, cashback: bool = True) -> Business:
    loyalty = business.loyalty.model_copy(
        update={
            "packages": list(packages),
            "cashback": business.loyalty.cashback.model_copy(
                update={"enabled": cashback, "percent": 5, "expire_months": 12}
            ),
        }
    )
    return business.model_copy(update={"loyalty": loyalty})


@pytest.fixture
def shop(business: Business) -> Business:
    return _with(business, MANICURE5)


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def packages(db: Database, clock: FixedClock, shop: Business, events: Events) -> PackageService:
    service = PackageService(db, clock, shop, MOSCOW)
    service.register(Features(events, Planners(db, clock, shop, MOSCOW)))
    return service


@pytest.fixture
def selling(
    db: Database, clock: FixedClock, shop: Business, events: Events, packages: PackageService
) -> StaffService:
    events.on_purchase(LoyaltyService(db, clock, shop, MOSCOW).accrue_for_purchase)
    return StaffService(db, clock, shop, MOSCOW, events)


async def _customer(db: Database, clock: FixedClock, business: Business, tg: int = 7) -> int:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    view = await customers.consent(tg, name="Анна", username="anna", language="ru", source=None)
    await customers.finish_onboarding(tg)
    return view.id


async def _purchases(db: Database, customer_id: int) -> list[tuple[int, str | None]]:
    async with db.reading() as repos:
        rows = await repos.session.execute(
            select(Purchase.amount_minor, Purchase.service_id)
            .where(Purchase.customer_id == customer_id)
            .order_by(Purchase.id)
        )
        return [(a, s) for a, s in rows]


async def _points(db: Database, customer_id: int) -> list[int]:
    async with db.reading() as repos:
        rows = await repos.session.scalars(
            select(LoyaltyEntry.points)
            .where(LoyaltyEntry.customer_id == customer_id)
            .order_by(LoyaltyEntry.id)
        )
        return list(rows)


async def _keys(db: Database, prefix: str) -> list[str]:
    async with db.reading() as repos:
        rows = await repos.session.scalars(
            select(OutboxMessage.key)
            .where(OutboxMessage.key.startswith(prefix))
            .order_by(OutboxMessage.id)
        )
        return list(rows)


# ---- the business file ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "says"),
    [
        (
            'name = "nails5"\nservice = "nails"\nvisits = 5\nprice = 8000',
            "field (top level): loyalty.packages: 'nails5' names unknown service 'nails'",
        ),
        (
            'name = "manicure5"\nservice = "manicure"\nvisits = 0\nprice = 8000',
            "field loyalty.packages.0.visits: Input should be greater than or equal to 1",
        ),
        (
            'name = "five manicures"\nservice = "manicure"\nvisits = 5\nprice = 8000',
            "field loyalty.packages.0.name: String should match pattern",
        ),
    ],
)
def test_the_business_file_refuses_a_wrong_package_politely(
    tmp_path: Path, table: str, says: str
) -> None:
    path = tmp_path / "business.toml"
    path.write_text(BUSINESS_FILE.read_text() + f"\n[[loyalty.packages]]\n{table}\n")
    with pytest.raises(ConfigError) as error:
        load_business(path)
    assert says in str(error.value)


def test_two_packages_of_one_name_are_refused(tmp_path: Path) -> None:
    table = '\n[[loyalty.packages]]\nname = "{}"\nservice = "manicure"\nvisits = 5\nprice = 8000\n'
    path = tmp_path / "business.toml"
    path.write_text(BUSINESS_FILE.read_text() + table.format("Nails") + table.format("nails"))
    with pytest.raises(ConfigError, match="two packages named 'nails'"):
        load_business(path)
    path.write_text(BUSINESS_FILE.read_text() + table.format("nails"))
    [package] = load_business(path).loyalty.packages
    assert (package.visits, package.price, package.expire_months) == (5, 8000, 6)


# ---- /sale's words -------------------------------------------------------------------------------


def test_sale_words_of_a_package(shop: Business) -> None:
    sold = parse_sale("#12 package:manicure5", shop)
    assert (sold.customer_query, sold.amount_minor, sold.package) == ("#12", 800000, "manicure5")
    assert sold.service_id is None and sold.master_id is None
    typed = parse_sale("+7 916 123 45 67 7000 anna абонемент:MANICURE5 points:100", shop)
    assert (typed.customer_query, typed.amount_minor) == ("+7 916 123 45 67", 700000)
    assert (typed.master_id, typed.package, typed.points) == ("anna", "manicure5", 100)
    assert parse_sale("#12 2000 маникюр", shop).package is None  # a visit, as ever
    for words, reason in (
        ("#12 package:nails", "package_unknown"),
        ("#12 package:manicure5 package:manicure5", "package_unknown"),
        ("#12 8000 маникюр package:manicure5", "package_words"),
        ("#12 0 package:manicure5", "amount"),
        ("package:manicure5", "sale_usage"),
    ):
        with pytest.raises(UsageError) as error:
            parse_sale(words, shop)
        assert error.value.reason == reason, words
    with pytest.raises(UsageError) as error:
        parse_sale("#12 package:x", shop)
    assert error.value.details["known"] == ["manicure5"]


# ---- selling and using -----------------------------------------------------------------------------


async def test_a_package_is_sold_then_each_visit_of_its_service_uses_one(
    selling: StaffService,
    packages: PackageService,
    db: Database,
    clock: FixedClock,
    shop: Business,
) -> None:
    customer_id = await _customer(db, clock, shop)
    sale = await selling.record_sale(OLGA, customer_id, 800000, package="manicure5")
    assert sale.amount_minor == 800000 and sale.package is not None
    assert (sale.package.sold, sale.package.left, sale.package.visits) == (True, 5, 5)
    assert sale.package.expires_at == clock.now().replace(month=5, year=2027)
    assert sale.points == 400  # cashback on the package's price, as on any sale

    lefts = []
    for _ in range(3):
        clock.advance(timedelta(days=7))
        visit = await selling.record_sale(OLGA, customer_id, 200000, "manicure", "anna")
        assert visit.amount_minor == 0 and visit.package is not None
        assert not visit.package.sold and visit.points == 400  # no cashback on it
        lefts.append(visit.package.left)
    assert lefts == [4, 3, 2]
    pedicure = await selling.record_sale(OLGA, customer_id, 280000, "pedicure")
    assert pedicure.package is None and pedicure.amount_minor == 280000

    assert await _purchases(db, customer_id) == [
        (800000, None),
        (0, "manicure"),
        (0, "manicure"),
        (0, "manicure"),
        (280000, "pedicure"),
    ]
    assert await _points(db, customer_id) == [400, 140]
    [left] = await packages.left(customer_id)
    assert (left.name, left.service, left.left, left.visits) == (
        "manicure5",
        "Маникюр с покрытием",
        2,
        5,
    )
    assert await _keys(db, "package_sold:") == [f"package_sold:{left.id}"]
    assert await _keys(db, "package_used:") == [
        f"package_used:{sale.purchase_id + n}" for n in (1, 2, 3)
    ]
    async with db.transaction() as repos:  # what the "used" message says: left after that visit
        row = (
            await repos.session.scalars(
                select(OutboxMessage).where(OutboxMessage.key.startswith("package_used:"))
            )
        ).first()
        assert row is not None
        customer = await repos.customers.get(customer_id)
        context, _ = await packages.compose(repos, row, customer, clock.now())
    shown: PackageState = context["package"]
    assert (shown.left, shown.visits, shown.name) == (4, 5, "manicure5")


async def test_the_package_expiring_first_is_used_and_an_expired_or_used_up_one_is_not(
    selling: StaffService,
    packages: PackageService,
    db: Database,
    clock: FixedClock,
    business: Business,
    events: Events,
) -> None:
    two = _with(
        business,
        Package(name="long", service="manicure", visits=1, price=1000, expire_months=12),
        Package(name="short", service="manicure", visits=1, price=1000, expire_months=1),
    )
    staff = StaffService(db, clock, two, MOSCOW, events)
    customer_id = await _customer(db, clock, two)
    await staff.record_sale(OLGA, customer_id, 100000, package="long")
    await staff.record_sale(OLGA, customer_id, 100000, package="short")
    first = await staff.record_sale(OLGA, customer_id, 200000, "manicure")
    assert first.package is not None and first.package.name == "short"
    second = await staff.record_sale(OLGA, customer_id, 200000, "manicure")
    assert second.package is not None and second.package.name == "long"
    third = await staff.record_sale(OLGA, customer_id, 200000, "manicure")
    assert third.package is None and third.amount_minor == 200000  # all used up: charged

    await staff.record_sale(OLGA, customer_id, 100000, package="short")
    clock.advance(timedelta(days=32))  # past its month
    late = await staff.record_sale(OLGA, customer_id, 200000, "manicure")
    assert late.package is None and late.amount_minor == 200000
    assert await packages.left(customer_id) == []


async def test_the_reminder_is_planned_once_and_dropped_when_no_visit_is_left(
    selling: StaffService,
    packages: PackageService,
    db: Database,
    clock: FixedClock,
    shop: Business,
) -> None:
    customer_id = await _customer(db, clock, shop)
    other = await _customer(db, clock, shop, tg=8)
    await selling.record_sale(OLGA, customer_id, 800000, package="manicure5")
    await selling.record_sale(OLGA, other, 800000, package="manicure5")
    assert await packages.remind() == 0  # six months ahead
    clock.advance(timedelta(days=181 - 8))  # 8 days before the expiry: not yet (7 days)
    assert await packages.remind() == 0
    clock.advance(timedelta(days=2))
    assert await packages.remind() == 2
    assert await packages.remind() == 0  # keyed by the package: once
    for _ in range(5):
        await selling.record_sale(OLGA, other, 200000, "manicure")
    async with db.transaction() as repos:
        rows = list(
            await repos.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.template == "package_expiring")
                .order_by(OutboxMessage.customer_id)
            )
        )
        assert [r.customer_id for r in rows] == [customer_id, other]
        context, _ = await packages.compose(
            repos, rows[0], await repos.customers.get(customer_id), clock.now()
        )
        assert context["package"].left == 5
        with pytest.raises(Obsolete):  # the other one used every visit meanwhile
            await packages.compose(repos, rows[1], await repos.customers.get(other), clock.now())
    clock.advance(timedelta(days=10))
    async with db.transaction() as repos:
        with pytest.raises(Obsolete):  # expired before it went
            await packages.compose(
                repos, rows[0], await repos.customers.get(customer_id), clock.now()
            )


# ---- a cancelled sale, /forget -----------------------------------------------------------------------


async def _cancel(
    db: Database, clock: FixedClock, events: Events, sale_id: int, customer_id: int
) -> None:
    """What staff's cancel of a sale emits (bot/services/sale_cancel.py), in its transaction."""
    async with db.transaction() as repos:
        await events.sale_cancelled(
            repos,
            SaleCancelled(
                purchase_id=sale_id,
                customer_id=customer_id,
                service_id=None,
                master_id=None,
                amount_minor=0,
                at=clock.now(),
                by=OLGA.id,
            ),
        )


async def test_a_cancelled_visit_gives_it_back_and_a_cancelled_unused_package_is_withdrawn(
    selling: StaffService,
    packages: PackageService,
    db: Database,
    clock: FixedClock,
    shop: Business,
    events: Events,
) -> None:
    customer_id = await _customer(db, clock, shop)
    sold = await selling.record_sale(OLGA, customer_id, 800000, package="manicure5")
    visit = await selling.record_sale(OLGA, customer_id, 200000, "manicure")
    with pytest.raises(UsageError) as error:  # a visit used it: those first
        await _cancel(db, clock, events, sold.purchase_id, customer_id)
    assert error.value.reason == "package_in_use" and error.value.details["used"] == 1
    await _cancel(db, clock, events, visit.purchase_id, customer_id)
    [left] = await packages.left(customer_id)
    assert left.left == 5
    async with db.reading() as repos:
        assert await repos.packages.visit_of(visit.purchase_id) is None
    await _cancel(db, clock, events, sold.purchase_id, customer_id)
    assert await packages.left(customer_id) == []
    again = await selling.record_sale(OLGA, customer_id, 200000, "manicure")
    assert again.package is None and again.amount_minor == 200000
    async with db.reading() as repos:
        [withdrawn] = await repos.packages.of_customer(customer_id)
        assert withdrawn.withdrawn_at is not None and withdrawn.used == 0
        states = dict(
            (
                await repos.session.execute(
                    select(OutboxMessage.key, OutboxMessage.state).where(
                        OutboxMessage.key == f"package_sold:{withdrawn.id}"
                    )
                )
            ).all()
        )
        assert states == {f"package_sold:{withdrawn.id}": "skipped"}


async def test_forget_deletes_their_packages_and_the_visits_they_paid(
    selling: StaffService,
    db: Database,
    clock: FixedClock,
    shop: Business,
    events: Events,
) -> None:
    customer_id = await _customer(db, clock, shop, tg=7)
    other = await _customer(db, clock, shop, tg=8)
    for who in (customer_id, other):
        await selling.record_sale(OLGA, who, 800000, package="manicure5")
        await selling.record_sale(OLGA, who, 200000, "manicure")
    customers = CustomerService(db, clock, shop, MOSCOW, events, secret_key=b"test-secret-key")
    assert await customers.forget(7)
    async with db.reading() as repos:
        owners = list(await repos.session.scalars(select(CustomerPackage.customer_id)))
        visits = await repos.session.scalar(select(func.count()).select_from(PackageVisit))
    assert owners == [other] and visits == 1
    assert len(await _purchases(db, customer_id)) == 2  # the sales stay, naming nobody


# ---- two staff at once ---------------------------------------------------------------------------


async def test_two_staff_using_the_last_visit_at_once_use_it_once(
    database_url: str, db: Database, clock: FixedClock, business: Business
) -> None:
    """Two connections (two processes' worth), each holding its transaction open after its sale:
    without the customer's lock and the conditional update both would take the last visit."""
    one = _with(
        business,
        Package(name="once", service="manicure", visits=1, price=1000),
        cashback=False,
    )
    customer_id = await _customer(db, clock, one)
    await StaffService(db, clock, one, MOSCOW, Events()).record_sale(
        OLGA, customer_id, 100000, package="once"
    )
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        services = [StaffService(Database(e), clock, one, MOSCOW, Events()) for e in engines]

        async def visit(service: StaffService, staff: Staff) -> int:
            async with service.db.transaction() as repos:
                sale = await service.record_sale_in(repos, staff, customer_id, 200000, "manicure")
                await asyncio.sleep(0.3)  # the other one's sale comes meanwhile
                return sale.amount_minor

        amounts = await asyncio.gather(
            visit(services[0], OLGA), visit(services[1], Staff(2, "Миша"))
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(amounts) == [0, 200000]  # one paid by the package, the other charged
    async with db.reading() as repos:
        [package] = await repos.packages.of_customer(customer_id)
        visits = await repos.session.scalar(select(func.count()).select_from(PackageVisit))
        assert (package.used, visits) == (1, 1)


async def test_my_data_has_their_packages_and_the_visits_they_paid(
    selling: StaffService, db: Database, clock: FixedClock, shop: Business
) -> None:
    customer_id = await _customer(db, clock, shop, tg=7)
    other = await _customer(db, clock, shop, tg=8)
    sold = await selling.record_sale(OLGA, customer_id, 700000, package="manicure5")
    visit = await selling.record_sale(OLGA, customer_id, 200000, "manicure")
    await selling.record_sale(OLGA, other, 800000, package="manicure5")
    mine = await Exporter(db, clock, shop, MOSCOW).my_data(7)
    assert mine is not None
    [package] = json.loads(mine.document)["prepaid_packages"]
    assert (package["package"], package["visits"], package["left"], package["price"]) == (
        "manicure5",
        5,
        4,
        "7000.00",
    )
    assert package["service"] == {"id": "manicure", "name": "Маникюр с покрытием"}
    assert package["bought_with_visit_id"] == sold.purchase_id
    assert [v["visit_id"] for v in package["visits_paid"]] == [visit.purchase_id]
    assert package["withdrawn_at"] is None and package["expires_at"] is not None
