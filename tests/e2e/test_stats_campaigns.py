"""/stats campaigns in the admin chat, end to end: the staff see each arm of the reactivation
(variant b came back at 25 %, a at 10 %, the holdout at 10 %), the lift and the variants' difference
with their intervals, and "make B the default", which records the winner once; forged and stale
taps change nothing and are answered; plain /stats still answers with the summary, and anyone
else gets the refusal /stats gets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FixedClock
from tests.e2e.helpers import bot_on, business_plus, onboard
from tests.harness import InProcessBot
from tests.telegram_server import Person, TelegramServer
from tests.unit.test_campaigns import variants_base

pytestmark = pytest.mark.in_process

NOVEMBER = "01.11.2026 23.11.2026"
EXPERIMENT = """
[campaigns]
holdout = 0.1
window_days = 30

[campaigns.reactivation.b]
template = "reactivation_b"
percent = 20
"""


@pytest.fixture
async def experimenting(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> AsyncIterator[InProcessBot]:
    """The bot on the test business file with a holdout and the reactivation's variant b."""
    async with bot_on(
        telegram, database_url, clock, business_plus(tmp_path, EXPERIMENT)
    ) as running:
        yield running


async def _winners(bot: InProcessBot) -> dict[str, str]:
    async with bot.db.reading() as repos:
        return await repos.campaign_results.winners()


async def test_staff_see_the_arms_and_make_the_better_variant_the_default(
    experimenting: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    await variants_base(experimenting.db, held=1000)
    await olga.send(f"/stats campaigns {NOVEMBER}")
    report = await olga.reply()
    assert report.template == "stats_campaigns"
    text = report.text
    assert "Что дали сообщения</b> · 01.11.2026 — 23.11.2026" in text
    assert "в течение 30 дней" in text
    assert "в разные дни, считается в каждом из них, в один день — один раз" in text
    assert "<b>Возврат уснувших</b>" in text
    assert (
        "• вариант A: 1 000 клиентов · отправлено 1 000 · купон использовали 0 · вернулись 100"
        " (10\u00a0%) · 1\u00a0000\u00a0₽" in text
    )
    assert (
        "• вариант B: 1 000 клиентов · отправлено 1 000 · купон использовали 0 · вернулись 250 (25\u00a0%)"
        in text
    )
    assert "• контроль (не получили): 1 000 клиентов · вернулись 100 (10\u00a0%)" in text
    # campaign 350/2000 = 17.5 % against 10 %: +7.5 points
    assert "Эффект: +7,5 п.п. (95\u00a0%: от +" in text and "сообщение помогает" in text
    assert "B против A: +15 п.п. (95\u00a0%: от +" in text and "B лучше" in text
    assert report.button("Сделать B основным")["text"] == "🏆 Сделать B основным: возврат уснувших"

    # forged: the worse variant, a day that is none, a campaign that is none
    for data in (
        "cwin:reactivation:a:20261101:20261123",
        "cwin:reactivation:b:20261399:20261123",
        "cwin:reactivation:b:20261123:20261101",
    ):
        await olga.press_data(report, data)
        assert (await olga.next("answerCallbackQuery")).template == "campaign_not_changed"
    await olga.press_data(report, "cwin:broadcast:b:20261101:20261123")
    assert (await olga.next("answerCallbackQuery")).template == "stale_button"
    assert await _winners(experimenting) == {}

    await olga.press(report, "Сделать B основным")
    answer = await olga.next("answerCallbackQuery")
    assert answer.template == "campaign_default_made"
    assert "вариант B теперь основной для «возврат уснувших»" in answer.text
    edit = await olga.next("editMessageReplyMarkup")
    assert "reply_markup" not in edit.params or not edit.params["reply_markup"]
    assert await _winners(experimenting) == {"reactivation": "b"}
    await olga.press_data(report, "cwin:reactivation:b:20261101:20261123")  # a second tap
    assert (await olga.next("answerCallbackQuery")).template == "campaign_not_changed"
    assert await _winners(experimenting) == {"reactivation": "b"}

    await olga.send(f"/stats кампании {NOVEMBER}")
    again = await olga.reply()
    assert "основной вариант: B" in again.text
    assert not again.buttons
    await olga.send(f"/stats {NOVEMBER}")
    assert (await olga.reply()).template == "stats"
    album = await olga.next("sendMediaGroup")  # the charts, the campaigns' lift among them
    assert "campaigns.png" in str(album.params)
    await olga.quiet()


async def test_nothing_to_report_a_bad_period_and_staff_only(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await olga.send("/stats campaigns")
    empty = await olga.reply()
    assert empty.template == "stats_campaigns" and "кампаний не было" in empty.text
    await olga.send("/stats campaigns вчера")
    usage = await olga.reply()
    assert usage.template == "stats_campaigns" and "«вчера» — не период" in usage.text
    customer = telegram.user(5002, "Анна")
    await onboard(customer)
    await customer.send("/stats campaigns")
    assert (await customer.reply()).template == "staff_only"
    outsider = telegram.staff(9003, "Чужой", -1009999)  # a group that is not the admin chat
    await outsider.send("/stats campaigns")
    assert (await outsider.reply()).template == "staff_only"
