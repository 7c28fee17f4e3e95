"""/stats in the admin chat, end to end: the staff see the share of repeat sales of the articles'
example (60 sales, 42 first, 18 repeat: 30 %); anyone else is told it is for staff; a period
that is not one gets the usage line and nothing else."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import onboard
from tests.telegram_server import Person, TelegramServer
from tests.unit.test_stats import articles_example
from tests.unit.test_stats_customers import fixture as customers_fixture

pytestmark = pytest.mark.in_process


async def test_staff_see_the_repeat_share(carebot, telegram: TelegramServer, olga: Person) -> None:
    await articles_example(carebot.db)
    await olga.send("/stats")
    answer = await olga.reply()
    assert answer.template == "stats"
    assert "24.08.2026 — 23.11.2026" in answer.text
    assert "60 продаж на 67\u00a0200\u00a0₽" in answer.text
    assert "первые: 42 (70\u00a0%)" in answer.text and "повторные: 18 (30\u00a0%)" in answer.text
    assert "Доля повторных: 30\u00a0%</b> по числу, 37,5\u00a0% по деньгам" in answer.text
    assert "Прошлый период (24.05.2026 — 23.08.2026): 10 продаж" in answer.text
    assert "+20 п.п. по числу, +27,5 п.п. по деньгам" in answer.text
    assert "Купили: 51 · новых: 42 · вернувшихся: 9" in answer.text
    # nobody has a rhythm yet (no cycles): nobody sleeps; no cohort has a whole year
    assert "Спят сейчас: 0 · из них потеряны (спят дольше 180 дн.): 0" in answer.text
    assert "Проснулись: 0 из 0, спавших к началу периода" in answer.text
    assert "47,1 дн. (прошлый период: 10 дн., +37,1 дн.)" in answer.text
    assert "LTV, первые 12 месяцев: — (нет клиентов с полным годом)" in answer.text
    await olga.next("sendMediaGroup")  # the charts follow the text (tests/e2e/test_stats_charts.py)

    # September: 17 first sales (14 new customers every other day, 3 on 10.09), 12 repeat
    # (6 + 3 back on 01.09, 3 on 20.09)
    await olga.send("/stats 01.09.2026 30.09.2026")
    september = await olga.reply()
    assert september.template == "stats" and "01.09.2026 — 30.09.2026" in september.text
    assert "29 продаж" in september.text and "повторные: 12 (41,4\u00a0%)" in september.text


async def test_stats_is_for_staff_only(carebot, telegram: TelegramServer, olga: Person) -> None:
    customer = telegram.user(5002, "Анна")
    await onboard(customer)
    await customer.send("/stats")
    assert (await customer.reply()).template == "staff_only"
    insider = telegram.user(9001, "Ольга")  # a staff member, but in a private chat with the bot
    await insider.send("/stats")
    assert (await insider.reply()).template == "staff_only"
    outsider = telegram.staff(9003, "Чужой", -1009999)  # a group that is not the admin chat
    await outsider.send("/stats")
    assert (await outsider.reply()).template == "staff_only"


@pytest.mark.parametrize("period", ["вчера", "31.02.2026 01.03.2026", "0", "01.12.2026 01.11.2026"])
async def test_a_bad_period_gets_the_usage(
    carebot, telegram: TelegramServer, olga: Person, period: str
) -> None:
    await olga.send(f"/stats {period}")
    usage = await olga.reply()
    assert usage.template == "stats" and "не период" in usage.text and period in usage.text
    assert "/stats 01.09.2026 30.11.2026" in usage.text
    assert all(f"/stats {word}" in usage.text for word in ("masters", "funnel", "campaigns"))


async def test_staff_see_the_customers(carebot, telegram: TelegramServer, olga: Person) -> None:
    """The hand-computed fixture of tests/unit/test_stats_customers.py, for October 2026."""
    await customers_fixture(carebot.db)
    await olga.send("/stats 01.10.2026 31.10.2026")
    answer = await olga.reply()
    assert answer.template == "stats"
    assert "5 продаж на 6\u00a0500\u00a0₽" in answer.text
    assert "Купили: 4 · новых: 2 · вернувшихся: 2" in answer.text
    assert "Спят сейчас: 3 · из них потеряны (спят дольше 180 дн.): 1" in answer.text
    assert "Проснулись: 1 из 2, спавших к началу периода" in answer.text
    assert "Средний чек: 1\u00a0300\u00a0₽" in answer.text
    assert "146,5 дн. (прошлый период: 284 дн., -137,5 дн.)" in answer.text
    assert "Сон клиентов стоит 383\u00a0₽ в месяц" in answer.text
    assert "LTV, первые 12 месяцев: 5\u00a0000\u00a0₽ на клиента (2 клиента)" in answer.text
