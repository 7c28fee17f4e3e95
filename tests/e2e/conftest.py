"""Fixtures the end-to-end tests share: the admin chat's Ольга, and the bot with cashback on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FixedClock
from tests.conftest import ADMIN_CHAT
from tests.e2e.helpers import CASHBACK, bot_on, business_plus
from tests.harness import InProcessBot
from tests.telegram_server import Person, TelegramServer


@pytest.fixture
def olga(telegram: TelegramServer) -> Person:
    """A member of the admin chat, the staff member most tests act as."""
    return telegram.staff(9001, "Ольга", ADMIN_CHAT, username="olga_admin")


@pytest.fixture
async def cashback_bot(
    tmp_path: Path, telegram: TelegramServer, database_url: str, clock: FixedClock
) -> AsyncIterator[InProcessBot]:
    """The bot on the test business file with cashback on (CASHBACK)."""
    async with bot_on(telegram, database_url, clock, business_plus(tmp_path, CASHBACK)) as running:
        yield running
