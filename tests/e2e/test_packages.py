"""Prepaid packages end to end: staff sell one with `/sale … package:<name>`, the customer is
told, three manicures use it (staff and customer see what is left, nothing charged), /card
shows the rest, and the planners' tick a week before it expires reminds the customer once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.models import Purchase
from tests.e2e.helpers import bot_on, business_plus, customer_of, onboard, reply_of
from tests.harness import InProcessBot
from tests.telegram_server import Call, Person, TelegramServer

pytestmark = pytest.mark.in_process

PACKAGES = """
[loyalty.cashback]
enabled = true
percent = 5
expire_months = 12

[[loyalty.packages]]
name = "mani<b>5"
service = "manicure"
visits = 5
price = 8000
expire_months = 6
remind_days_before = 7
"""


@pytest.fixture
async def package_bot(
    tmp_path: Path, telegram: TelegramServer, database_url: str, clock: FixedClock
) -> AsyncIterator[InProcessBot]:
    async with bot_on(telegram, database_url, clock, business_plus(tmp_path, PACKAGES)) as running:
        yield running


async def test_a_package_is_sold_used_three_times_shown_in_card_and_reminded(
    package_bot: InProcessBot, telegram: TelegramServer, olga: Person, clock: FixedClock
) -> None:
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna)
    customer = await customer_of(package_bot.db, 5001)
    assert customer and package_bot.app is not None

    await olga.send(f"/sale #{customer.id} package:nails")
    refused = (await olga.reply()).text
    assert "Абонемента «nails» нет. Есть: mani&lt;b&gt;5." in refused
    await olga.send(f"/sale #{customer.id} package:mani<b>5 маникюр")
    assert "Непонятно: «маникюр»" in (await olga.reply()).text

    await olga.send(f"/sale #{customer.id} package:MANI<b>5")
    sold = (await olga.reply()).text
    assert "8\u00a0000\u00a0₽" in sold and "Баллов у клиента: 400." in sold
    assert (
        "Продан абонемент «mani&lt;b&gt;5»: 5 × Маникюр с покрытием, действует до 23.05.2027"
        in sold
    )
    told = await reply_of(anna, "package_sold")
    assert "Анна, ваш абонемент «mani&lt;b&gt;5» оформлен: 5 визитов" in told.text

    for left in (4, 3, 2):
        clock.advance(timedelta(days=7))
        await olga.send(f"/sale #{customer.id} 2000 маникюр Анна")
        visit = (await olga.reply()).text
        assert "— 0\u00a0₽, Маникюр с покрытием, мастер Анна" in visit
        assert f"Оплачено абонементом «mani&lt;b&gt;5», осталось {left} из 5" in visit
        assert "Баллов у клиента: 400." in visit  # no cashback on a visit the package paid
        used = await reply_of(anna, "package_used")
        assert f"оплачен абонементом «mani&lt;b&gt;5»: осталось {left} из 5" in used.text
    await olga.send(f"/sale #{customer.id} 2800 педикюр")
    assert "Оплачено абонементом" not in (await olga.reply()).text  # another service: charged

    await anna.send("/card")
    card = (await anna.reply()).text
    assert "Баллов: <b>540</b>" in card
    assert (
        "🎟 Абонемент «mani&lt;b&gt;5» (Маникюр с покрытием): осталось 2 из 5 визитов,"
        " действует до 23.05.2027" in card
    )
    async with package_bot.db.reading() as repos:
        amounts = list(
            await repos.session.scalars(
                select(Purchase.amount_minor)
                .where(Purchase.customer_id == customer.id)
                .order_by(Purchase.id)
            )
        )
    assert amounts == [800000, 0, 0, 0, 280000]
    await olga.send(f"/find #{customer.id}")
    await olga.press(await olga.reply(), "История")
    history = (await olga.reply()).text
    assert "продажа 8\u00a0000\u00a0₽, продан абонемент «mani&lt;b&gt;5»" in history
    assert "продажа 0\u00a0₽, Маникюр с покрытием, Анна, по абонементу «mani&lt;b&gt;5»" in history

    clock.advance(timedelta(days=181 - 21 - 8))  # 8 days before it expires: not yet
    assert (await package_bot.app.tick())["package_reminders"] == 0
    clock.advance(timedelta(days=2))
    assert (await package_bot.app.tick())["package_reminders"] == 1
    assert (await package_bot.app.tick())["package_reminders"] == 0  # once per package
    reminder = await reply_of(anna, "package_expiring", tries=8)
    assert (
        "Анна, у вас по абонементу «mani&lt;b&gt;5» (Маникюр с покрытием) осталось 2"
        " оплаченных визита, а действует он до 23.05.2027" in reminder.text
    )
    assert sum(1 for call in telegram.sent_to(5001) if call.template == "package_expiring") == 1


async def test_a_customer_without_a_program_sees_their_package_alone_in_card(
    tmp_path: Path, telegram: TelegramServer, database_url: str, clock: FixedClock, olga: Person
) -> None:
    only = PACKAGES.replace("enabled = true", "enabled = false")
    async with bot_on(telegram, database_url, clock, business_plus(tmp_path, only)) as running:
        anna = telegram.user(5001, "Анна", username="anna")
        await onboard(anna)
        customer = await customer_of(running.db, 5001)
        assert customer
        await anna.send("/card")
        assert "Бонусной программы сейчас нет" in (await anna.reply()).text
        await olga.send(f"/sale #{customer.id} 7000 анна package:mani<b>5")
        sold = (await olga.reply()).text
        assert "7\u00a0000\u00a0₽" in sold and "мастер Анна" in sold and "Продан абонемент" in sold
        await reply_of(anna, "package_sold")  # the receipt comes through the outbox: not the card
        await anna.send("/card")
        card = (await anna.reply()).text
        assert "Бонусной программы" not in card and "осталось 5 из 5 визитов" in card


async def _unsale(olga: Person, sale: Call) -> Call:
    """ "Cancel sale" under the sale's answer, confirmed: the confirmation's new text."""
    await olga.press(sale, "Отменить продажу")
    asked = await reply_of(olga, "staff_unsale")
    await olga.press(asked, "Да, отменить")
    while (call := await olga.next()).method != "editMessageText":
        pass
    return call


async def test_a_cancelled_visit_is_given_back_and_an_unused_package_withdrawn(
    package_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna)
    customer = await customer_of(package_bot.db, 5001)
    assert customer
    await olga.send(f"/sale #{customer.id} package:mani<b>5")
    sold = await reply_of(olga, "staff_sale_done")
    await olga.send(f"/sale #{customer.id} 2000 маникюр")
    visit = await reply_of(olga, "staff_sale_done")
    assert "осталось 4 из 5" in visit.text

    refused = await _unsale(olga, sold)  # a visit used it: that one first
    assert not telegram.unanswered_presses()  # the refused press answered too: no spinning
    assert "По абонементу «mani&lt;b&gt;5» уже прошло 1 из 5 визитов" in refused.text
    assert "отменена" not in refused.text
    assert "отменена" in (await _unsale(olga, visit)).text
    await anna.send("/card")
    assert "осталось 5 из 5 визитов" in (await reply_of(anna, "loyalty_card")).text

    assert "отменена" in (await _unsale(olga, sold)).text
    await anna.send("/card")
    assert "Абонемент" not in (await reply_of(anna, "loyalty_card")).text
    await olga.send(f"/sale #{customer.id} 2000 маникюр")
    charged = (await reply_of(olga, "staff_sale_done")).text
    assert "— 2\u00a0000\u00a0₽" in charged and "абонемент" not in charged
