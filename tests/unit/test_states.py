"""States and kinds: one set of values for the code, the database's CHECK constraints (migration
0009, and the later ones that change them) and the templates."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from bot.db.models import (
    Booking,
    BookingSource,
    BookingState,
    Broadcast,
    BroadcastState,
    CareDirection,
    CareMessage,
    OutboxError,
    OutboxKind,
    OutboxMessage,
    OutboxState,
)
from bot.rendering import Renderer


def _migrations() -> list[object]:
    """The migrations from 0009 on, the newest first."""
    versions = resources.files("bot.db") / "migrations" / "versions"
    paths = sorted((p for p in versions.iterdir() if p.name[:4] >= "0009"), key=lambda p: p.name)
    modules: list[object] = []
    for path in reversed(paths):
        if not path.name.endswith(".py"):
            continue
        spec = importlib.util.spec_from_file_location(f"migration_{path.name[:4]}", str(path))
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def _checked(name: str) -> object:
    """The values the newest migration that names them checks (0009 first; 0014 added holdout)."""
    return next(getattr(m, name) for m in _migrations() if hasattr(m, name))


COLUMNS: list[tuple[type[StrEnum], object, str]] = [
    (OutboxState, OutboxMessage.state, "OUTBOX_STATES"),
    (OutboxKind, OutboxMessage.kind, "OUTBOX_KINDS"),
    (OutboxError, OutboxMessage.error_code, "OUTBOX_ERRORS"),
    (BookingState, Booking.state, "BOOKING_STATES"),
    (BookingSource, Booking.source, "BOOKING_SOURCES"),
    (BroadcastState, Broadcast.state, "BROADCAST_STATES"),
    (CareDirection, CareMessage.direction, "CARE_DIRECTIONS"),
]


@pytest.mark.parametrize(("values", "column", "in_migration"), COLUMNS)
def test_the_values_fit_their_column_and_the_migration_checks_the_same(
    values: type[StrEnum], column: object, in_migration: str
) -> None:
    length = column.type.length  # type: ignore[attr-defined]
    assert all(len(v) <= length for v in values)
    assert _checked(in_migration) == tuple(v.value for v in values)  # a new value needs a migration


@pytest.mark.parametrize("state", [BookingState.CONFIRMED, "confirmed"])
def test_templates_compare_states_by_name_and_a_string_still_matches(state: str) -> None:
    """Templates say `BookingState.CONFIRMED`; an owner's override that compares with the
    string (as the templates did before) reads the same value."""
    render = Renderer(ZoneInfo("Europe/Moscow"))
    booking = SimpleNamespace(
        state=state,
        decided_by="Анна",
        starts_at=datetime(2026, 11, 30, 9, tzinfo=UTC),
        service="Маникюр",
        master="Анна",
        customer_name="Ира",
        customer_phone=None,
        reason=None,
    )
    assert render.text("en", "booking_decided", booking=booking).startswith("✅ Accepted (Анна)")
    assert render.text("ru", "booking_decided", booking=booking).startswith("✅ Принято (Анна)")
