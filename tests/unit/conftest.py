"""Services over a real database, without Telegram: the pieces several unit tests share."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from bot.business import Business
from bot.clock import FixedClock
from bot.db.repositories import Database
from bot.events import Events
from bot.services.staff import StaffService

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def staff(db: Database, clock: FixedClock, business: Business, events: Events) -> StaffService:
    return StaffService(db, clock, business, MOSCOW, events)
