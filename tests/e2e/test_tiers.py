"""Club tiers end to end: a customer's sales take them to Silver at the planners' tick, the
congratulation arrives in their chat, /card and staff's next /sale show the tier, and the next
sale earns Silver's percent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import FixedClock
from tests.conftest import ADMIN_CHAT
from tests.e2e.helpers import bot_on, business_plus, customer_of, onboard, reply_of
from tests.harness import InProcessBot
from tests.telegram_server import TelegramServer

pytestmark = pytest.mark.in_process

CLUB = """
[loyalty.cashback]
enabled = true
percent = 3
expire_months = 12

[[loyalty.tiers]]
name = "Silver <b>"
min_spend = 5000
min_visits = 5
percent = 5

[[loyalty.tiers]]
name = "Gold"
min_spend = 15000
min_visits = 12
percent = 10
"""


@pytest.fixture
async def club_bot(
    tmp_path: Path, telegram: TelegramServer, database_url: str, clock: FixedClock
) -> AsyncIterator[InProcessBot]:
    async with bot_on(telegram, database_url, clock, business_plus(tmp_path, CLUB)) as running:
        yield running


async def test_sales_take_a_customer_to_silver_congratulated_once(
    club_bot: InProcessBot, telegram: TelegramServer, clock: FixedClock
) -> None:
    olga = telegram.staff(9001, "Ольга", ADMIN_CHAT, username="olga_admin")
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna)  # agrees to offers
    customer = await customer_of(club_bot.db, 5001)
    assert customer and club_bot.app is not None
    await olga.send(f"/sale #{customer.id} 3000")
    assert "Баллов у клиента: 90." in (await olga.reply()).text  # 3 % before any tier
    await olga.send(f"/sale #{customer.id} 2000")
    sold = (await olga.reply()).text
    assert "Баллов у клиента: 150." in sold and "Уровень" not in sold  # not evaluated yet

    # a week on: the congratulation is an offer, and the thank-you offers took this week's cap
    clock.advance(timedelta(days=8))
    assert (await club_bot.app.tick())["loyalty_tiers"] == 1
    assert (await club_bot.app.tick())["loyalty_tiers"] == 0
    message = await reply_of(anna, "tier_up", tries=5)
    assert "Анна, поздравляем! Теперь вы в клубе «Silver &lt;b&gt;»" in message.text
    assert "5\u00a0%" in message.text

    await anna.send("/card")
    card = (await anna.reply()).text
    assert "Уровень: <b>Silver &lt;b&gt;</b> — 5\u00a0% баллами с каждой покупки" in card
    await olga.send(f"/sale #{customer.id} 1000")
    sold = (await olga.reply()).text
    assert "Баллов у клиента: 200." in sold  # +50: Silver's 5 %
    assert "Уровень клиента: Silver &lt;b&gt;." in sold
    clock.advance(timedelta(days=1))
    assert (await club_bot.app.tick())["loyalty_tiers"] == 0
    assert sum(1 for call in telegram.sent_to(5001) if call.template == "tier_up") == 1
