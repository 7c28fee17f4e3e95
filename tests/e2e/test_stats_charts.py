"""/stats with its pictures and /stats export, end to end: the staff see the text and then the
PNG charts as one album in the admin chat, and get the tables as CSV files in one ZIP; the
album counts item by item against the group's 20 a minute and nothing is refused; anyone else
is told it is for staff, and a period that is not one gets the usage."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime

import pytest

from bot.db.models import OutboxError, OutboxMessage, OutboxState
from bot.db.repositories import Database
from tests.conftest import ADMIN_CHAT
from tests.e2e.helpers import onboard
from tests.telegram_server import Person, TelegramServer
from tests.unit.test_charts import png_size
from tests.unit.test_stats import FIRST_MINOR, articles_example, buyer, local

pytestmark = pytest.mark.in_process


async def held_out_campaign(db: Database, at: datetime, sent: int, held: int) -> None:
    """The reactivation campaign of `at`: `sent` customers got it, `held` were its holdout (who
    bought long before the periods, and nobody since: no sale of /stats's fixture changes)."""
    for i in range(sent + held):
        customer_id = await buyer(db, [(local(2026, 3, 1), FIRST_MINOR)])
        arm = "a" if i < sent else "holdout"
        async with db.transaction() as repos:
            repos.session.add(
                OutboxMessage(
                    key=f"reactivation:{customer_id}:1",
                    customer_id=customer_id,
                    kind="marketing",
                    template="reactivation",
                    data={},
                    not_before=at,
                    not_after=at,
                    due_at=at,
                    state=OutboxState.SENT if arm == "a" else OutboxState.SKIPPED,
                    error_code=None if arm == "a" else OutboxError.HOLDOUT,
                    sent_at=at if arm == "a" else None,
                    created_at=at,
                    campaign="reactivation",
                    arm=arm,
                )
            )


async def seeded(carebot, telegram: TelegramServer) -> None:
    """The articles' example, two customers onboarded in Telegram (the funnel) and a campaign
    with a holdout (the lift)."""
    await articles_example(carebot.db)
    for tg, phone in ((5101, "79161110001"), (5102, "79161110002")):
        await onboard(telegram.user(tg, "Анна"), phone=phone)
    await held_out_campaign(carebot.db, local(2026, 10, 1), sent=8, held=4)


async def test_staff_see_the_text_then_the_charts(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await seeded(carebot, telegram)
    await olga.send("/stats")
    text = await olga.reply()
    assert text.template == "stats" and "Доля повторных: 30\u00a0%" in text.text
    album = await olga.next("sendMediaGroup")
    names = [upload.filename for upload in album.album_uploads()]
    assert names == ["repeat_share.png", "cohorts.png", "funnel.png", "campaigns.png"]
    for upload in album.album_uploads():
        assert png_size(upload.data) == (800, 450) and len(upload.data) < 200_000
    caption = album.album[0]["caption"]
    assert "Графики" in caption and "24.08.2026 — 23.11.2026" in caption
    assert "1. Доля повторных продаж по месяцам" in caption
    assert "3. Воронка: от /start до второй покупки" in caption
    assert all("caption" not in item for item in album.album[1:])
    assert len(album.result) == len(names) and album.result[0]["media_group_id"]
    await olga.quiet()


async def test_no_data_no_pictures(carebot, telegram: TelegramServer, olga: Person) -> None:
    await olga.send("/stats")
    assert "Продаж за период не было" in (await olga.reply()).text
    await olga.quiet()


async def test_albums_keep_the_group_limit(carebot, telegram: TelegramServer, olga: Person) -> None:
    """Each /stats is the text and an album of several photos: the group's 20 messages a minute
    are reached after a few, and the next ones wait their turn instead of earning a 429."""
    await seeded(carebot, telegram)
    for _ in range(8):  # 8 × (a text and an album of 2) = 24 messages: more than a minute's 20
        await olga.send("/stats")
        await olga.reply()
        await olga.next("sendMediaGroup")
    assert telegram.refused == []
    assert sum(len(c.album) or 1 for c in telegram.sent_to(ADMIN_CHAT)) >= 8 * 3


def read_zip(data: bytes) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        tables = {}
        for name in archive.namelist():
            raw = archive.read(name)
            assert raw.startswith("\ufeff".encode()), f"{name}: no byte-order mark"
            tables[name] = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        return tables


async def test_export_sends_the_tables(carebot, telegram: TelegramServer, olga: Person) -> None:
    await seeded(carebot, telegram)
    await olga.send("/stats export")
    document = await olga.next("sendDocument")
    upload = document.upload()
    assert upload.filename == "carebot-stats-2026-08-24-2026-11-23.zip"
    assert document.template == "stats_export" and "period.csv — 2 строки" in document.text
    tables = read_zip(upload.data)
    assert list(tables) == [
        "period.csv",
        "months.csv",
        "cohorts.csv",
        "funnel.csv",
        "masters.csv",
        "sources.csv",
        "campaigns.csv",
    ]
    september = next(row for row in tables["months.csv"] if row[0] == "2026-09")
    assert september[:5] == ["2026-09", "29", "17", "12", "0.4138"]  # 12 of 29 repeat
    period = tables["period.csv"]
    assert period[0][:7] == [
        "period",
        "first_day",
        "last_day",
        "sales",
        "first",
        "repeat",
        "repeat_share",
    ]
    current = dict(zip(period[0], period[1], strict=True))
    assert current == {
        "period": "current",
        "first_day": "2026-08-24",
        "last_day": "2026-11-23",
        "sales": "60",
        "first": "42",
        "repeat": "18",
        "repeat_share": "0.3000",
        "money": "67200.00",
        "first_money": "42000.00",
        "repeat_money": "25200.00",
        "repeat_money_share": "0.3750",
        "customers": "51",
        "new": "42",
        "returning": "9",
        "average_check": "1120.00",
        "average_interval_days": current["average_interval_days"],
    }
    previous = dict(zip(period[0], period[2], strict=True))
    assert (previous["period"], previous["sales"], previous["repeat_share"]) == (
        "previous",
        "10",
        "0.1000",
    )
    funnel = tables["funnel.csv"]
    assert funnel[0] == ["step", "customers", "share_of_previous", "drop"]
    assert funnel[1] == ["started", "2", "", ""]
    campaigns = tables["campaigns.csv"]
    arms = {row[1]: dict(zip(campaigns[0], row, strict=True)) for row in campaigns[1:]}
    assert arms["a"]["campaign"] == "reactivation" and arms["a"]["customers"] == "8"
    assert arms["a"]["sent"] == "8" and arms["holdout"]["customers"] == "4"
    assert arms["holdout"]["sent"] == "0" and arms["a"]["lift"] == "0.0000"
    assert arms["a"]["lift_significant"] == "no"
    await olga.quiet()


async def test_export_of_a_period(carebot, telegram: TelegramServer, olga: Person) -> None:
    await articles_example(carebot.db)
    await olga.send("/stats экспорт 01.09.2026 30.09.2026")
    document = await olga.next("sendDocument")
    assert document.upload().filename == "carebot-stats-2026-09-01-2026-09-30.zip"
    period = read_zip(document.upload().data)["period.csv"]
    assert period[1][:6] == ["current", "2026-09-01", "2026-09-30", "29", "17", "12"]


async def test_export_of_no_period_gets_the_usage(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await olga.send("/stats export вчера")
    usage = await olga.reply()
    assert usage.template == "stats_export" and "«вчера» — не период" in usage.text
    await olga.quiet()


async def test_export_is_for_staff_only(carebot, telegram: TelegramServer) -> None:
    customer = telegram.user(5002, "Анна")
    await onboard(customer)
    await customer.send("/stats export")
    assert (await customer.reply()).template == "staff_only"
    outsider = telegram.staff(9003, "Чужой", -1009999)  # a group that is not the admin chat
    await outsider.send("/stats export")
    assert (await outsider.reply()).template == "staff_only"
    await outsider.quiet()
