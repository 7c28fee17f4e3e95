"""Services over a real database, without Telegram: the pieces several unit tests share."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import LoyaltyEntry
from bot.db.repositories import Database
from bot.events import Events
from bot.services.staff import StaffService
from tests.telegram_server import TelegramServer

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def staff(db: Database, clock: FixedClock, business: Business, events: Events) -> StaffService:
    return StaffService(db, clock, business, MOSCOW, events)


@pytest.fixture
def friendly(business: Business) -> Business:
    """The test business with bring-a-friend on: 300 points for the friend, 500 for the one who
    brought them."""
    loyalty = business.loyalty.model_copy(
        update={
            "referral": business.loyalty.referral.model_copy(
                update={"enabled": True, "friend_bonus": 300, "referrer_reward": 500}
            )
        }
    )
    return business.model_copy(update={"loyalty": loyalty})


async def points_ledger(db: Database, customer_id: int) -> list[tuple[int, str | None]]:
    """(points, reason) of each line of the customer's points ledger, oldest first."""
    async with db.reading() as repos:
        rows = await repos.session.execute(
            select(LoyaltyEntry.points, LoyaltyEntry.reason)
            .where(LoyaltyEntry.customer_id == customer_id)
            .order_by(LoyaltyEntry.id)
        )
        return [(p, r) for p, r in rows]


class FakeClock:
    """The stand-in's clock (seconds), moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server_clock(telegram: TelegramServer) -> FakeClock:
    """The Bot API stand-in's clock, set to a FakeClock (its limits, its 24 hours)."""
    fake = FakeClock()
    telegram.clock = fake
    return fake
