"""The shipped import examples (data/examples, bench/import_sample.py): what the generator
writes is what is committed, and importing them gives exactly the report its mistakes predict."""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Customer, Purchase
from bot.db.repositories import Database
from bot.services.importing import ImportReport, ImportService, Kind, Reason
from tests import PROJECT_ROOT

MOSCOW = ZoneInfo("Europe/Moscow")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "import_sample", PROJECT_ROOT / "bench" / "import_sample.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAMPLE = _generator()


def _example(name: str) -> Path:
    return Path(str(resources.files("bot.data") / "examples" / name))


def test_the_committed_examples_are_what_the_generator_writes() -> None:
    for name, data in SAMPLE.files().items():
        assert _example(name).read_bytes() == data, f"run python bench/import_sample.py ({name})"


@pytest.fixture
def importer(db: Database, clock: FixedClock, business: Business) -> ImportService:
    return ImportService(db, clock, business, MOSCOW)


async def _import(importer: ImportService, name: str, kind: Kind, apply: bool) -> ImportReport:
    with _example(name).open("rb") as stream:
        return await importer.run(stream, kind, apply=apply)


def _counts(report: ImportReport) -> dict[str, int]:
    return {
        "rows": report.rows,
        "accepted": report.accepted,
        "rejected": report.rejected_count,
        "duplicates": report.duplicates,
        "customers_new": report.customers_new,
        "customers_known": report.customers_known,
        "visits_new": report.visits_new,
        "visits_known": report.visits_known,
    }


async def test_the_yclients_sample_imports_with_the_report_its_mistakes_predict(
    importer: ImportService, db: Database
) -> None:
    mistakes = SAMPLE.MISTAKES
    people = mistakes["customers"]
    customers = SAMPLE.CUSTOMERS - people["bad_phone"] - people["no_phone"]
    for apply in (False, True):
        report = await _import(importer, "yclients_customers.csv", Kind.CUSTOMERS, apply)
        assert (report.encoding, report.delimiter) == ("cp1251", ";")
        assert _counts(report) == {
            "rows": 1020,
            "accepted": 1003,
            "rejected": 17,
            "duplicates": 20,
            "customers_new": 983,
            "customers_known": 0,
            "visits_new": 0,
            "visits_known": 0,
        }
        assert customers + people["duplicate"] == report.accepted
        assert report.reasons() == [(Reason.BAD_PHONE, 12), (Reason.NO_PHONE, 5)]
        assert report.warning_reasons() == [(Reason.BAD_BIRTHDAY, 9)]

    visits = mistakes["visits"]
    refused = sum(
        visits[k]
        for k in ("bad_phone", "bad_date", "future_date", "not_attended", "unknown_service")
    )
    for apply in (False, True):
        report = await _import(importer, "yclients_visits.csv", Kind.VISITS, apply)
        assert _counts(report) == {
            "rows": 5000,
            "accepted": 4912,
            "rejected": 88,
            "duplicates": 12,
            "customers_new": 7,
            "customers_known": 0,
            "visits_new": 4900,
            "visits_known": 0,
        }
        assert report.rejected_count == refused
        assert report.reasons() == [
            (Reason.UNKNOWN_SERVICE, 30),
            (Reason.NOT_ATTENDED, 25),
            (Reason.FUTURE_DATE, 15),
            (Reason.BAD_PHONE, 10),
            (Reason.BAD_DATE, 8),
        ]
        assert report.warning_reasons() == [
            (Reason.PRICE_FROM_LIST, visits["no_amount"]),
            (Reason.UNKNOWN_MASTER, visits["unknown_master"]),
        ]

    again = await _import(importer, "yclients_visits.csv", Kind.VISITS, True)
    assert (again.customers_new, again.visits_new, again.visits_known) == (0, 0, 4900)
    again = await _import(importer, "yclients_customers.csv", Kind.CUSTOMERS, True)
    assert (again.customers_new, again.customers_known, again.notes_new) == (0, 983, 0)
    async with db.reading() as repos:
        assert await repos.session.scalar(select(func.count()).select_from(Customer)) == 990
        assert await repos.session.scalar(select(func.count()).select_from(Purchase)) == 4900


async def test_the_templates_import(importer: ImportService) -> None:
    customers = await _import(importer, "customers_template.csv", Kind.CUSTOMERS, True)
    assert (customers.accepted, customers.rejected_count, customers.customers_new) == (3, 0, 3)
    visits = await _import(importer, "visits_template.csv", Kind.VISITS, True)
    assert (visits.accepted, visits.rejected_count, visits.visits_new) == (4, 0, 4)
    assert visits.customers_new == 0
