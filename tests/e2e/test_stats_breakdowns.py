"""/stats masters|sources|funnel in the admin chat, end to end: the staff see each breakdown of a
base built by hand (`tests/unit/test_stats_breakdowns.py`), plain /stats still answers with the
summary, a period that is not one gets the usage, and anyone else gets the refusal /stats gets."""

from __future__ import annotations

from datetime import date

import pytest

from tests.e2e.helpers import onboard, tap
from tests.telegram_server import Person, TelegramServer
from tests.unit.test_stats_breakdowns import masters_base, sources_base

pytestmark = pytest.mark.in_process

OCTOBER = "01.10.2026 31.10.2026"


async def test_staff_see_the_breakdowns(carebot, telegram: TelegramServer, olga: Person) -> None:
    await masters_base(carebot.db)
    await olga.send(f"/stats masters {OCTOBER}")
    masters = await olga.reply()
    assert masters.template == "stats_breakdowns"
    assert "По мастерам</b> · 01.10.2026 — 31.10.2026" in masters.text
    assert (
        "<b>Анна</b>: 4 визита, повторных 2 (50\u00a0%) · оценка 4,5 (2 ответа) · неявки 25\u00a0% (1 из 4)"
        in masters.text
    )
    assert "<b>Ольга</b>: 3 визита, повторных 2 (66,7\u00a0%) · оценка 3 (1 ответ)" in masters.text
    assert "<b>ivan (нет в файле бизнеса)</b>: 1 визит" in masters.text
    assert "<b>Без мастера</b>: 1 визит, повторных 1 (100\u00a0%)" in masters.text

    await sources_base(carebot.db)  # its sales would change the masters' figures: added now
    await olga.send(f"/stats sources {OCTOBER}")
    sources = await olga.reply()
    assert sources.template == "stats_breakdowns"
    lines = sources.text.splitlines()
    assert lines[1:4] == [
        "<code>insta</code>: пришли 5 · купили 4 (80\u00a0%) · купили снова 2 (50\u00a0%)",
        "<code>vk</code>: пришли 2 · купили 1 (50\u00a0%) · купили снова 0 (0\u00a0%)",
        "без метки: пришли 1 · купили 1 (100\u00a0%) · купили снова 0 (0\u00a0%)",
    ]
    assert "Всего: пришли 8 · купили 6 · купили снова 2" in sources.text

    await olga.send(f"/stats воронка {OCTOBER}")
    funnel = await olga.reply()
    assert funnel.template == "stats_breakdowns"
    steps = [
        line.split(" (")[0]
        for line in funnel.text.replace("<b>", "").replace("</b>", "").splitlines()
    ]
    assert steps[1:8] == [
        "1. Начали: 8",
        "2. Согласились на обработку данных: 8",
        "3. Дали телефон: 6",
        "4. Дали день рождения: 5",
        "5. Получили приветственный купон: 3",
        "6. Купили: 2",
        "7. Купили снова: 1",
    ]
    assert "3. Дали телефон: <b>6</b> (75\u00a0%) · ушли 2" in funnel.text

    # the default period (the last 3 months, 24.08–23.11) holds October and j7, j8 of September; plain /stats is the summary
    await olga.send("/stats funnel")
    assert "24.08.2026 — 23.11.2026\n1. Начали: <b>10</b>" in (await olga.reply()).text
    await olga.send(f"/stats {OCTOBER}")
    assert (await olga.reply()).template == "stats"


async def test_the_funnel_counts_who_left_at_the_consent_question(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    """Two newcomers press /start (one twice: the same start), one of them consents: the funnel
    starts 2 → 1, and the start is counted under its deep link's source, nothing personal."""
    anna, boris = telegram.user(5101, "Анна"), telegram.user(5102, "Борис")
    await anna.send("/start src_Insta")
    await anna.reply()
    await boris.send("/start")
    await boris.reply()
    await boris.send("/start")  # again, before consenting: not a second start
    await tap(boris, await boris.reply(), "✅")
    await boris.reply()  # the phone question
    async with carebot.db.reading() as repos:
        assert await repos.onboarding_starts.by_day() == {
            (date(2026, 11, 23), "insta"): 1,
            (date(2026, 11, 23), ""): 1,
        }
    await olga.send("/stats funnel")
    funnel = (await olga.reply()).text
    assert "1. Начали: <b>2</b>" in funnel
    assert "2. Согласились на обработку данных: <b>1</b> (50\u00a0%) · ушли 1" in funnel


async def test_breakdowns_are_for_staff_only(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    customer = telegram.user(5002, "Анна")
    await onboard(customer)
    for command in ("/stats masters", "/stats sources 30", "/stats funnel"):
        await customer.send(command)
        assert (await customer.reply()).template == "staff_only"
    insider = telegram.user(9001, "Ольга")  # a staff member, but in a private chat with the bot
    await insider.send("/stats masters")
    assert (await insider.reply()).template == "staff_only"
    outsider = telegram.staff(9003, "Чужой", -1009999)  # a group that is not the admin chat
    await outsider.send("/stats funnel")
    assert (await outsider.reply()).template == "staff_only"


@pytest.mark.parametrize("period", ["вчера", "31.02.2026 01.03.2026", "01.12.2026 01.11.2026"])
async def test_a_bad_period_gets_the_usage(
    carebot, telegram: TelegramServer, olga: Person, period: str
) -> None:
    await olga.send(f"/stats sources {period}")
    usage = await olga.reply()
    assert usage.template == "stats_breakdowns" and f"«{period}» — не период" in usage.text
    assert "/stats sources 01.09.2026 30.11.2026" in usage.text
