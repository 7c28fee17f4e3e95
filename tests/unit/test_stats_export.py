"""`/stats export`'s archive (`bot.services.stats_export`) from hand-built tables: each file's
exact content, Excel's byte-order mark, nothing written for a table nobody computes; and the
weekly digest's week and its best and worst campaign (`bot.services.digest`)."""

from __future__ import annotations

import io
import zipfile
from datetime import date

from bot.db.stats import PeriodSales
from bot.services.charts import Figures
from bot.services.digest import best_and_worst, iso_key, week_before
from bot.services.stats import Period, Split, StatsReport
from bot.services.stats_breakdowns import MasterFigures, SourceFigures
from bot.services.stats_export import StatsTables, archive_name, stats_archive
from bot.services.stats_figures import (
    ArmOutcome,
    CampaignResult,
    Cohort,
    FunnelStep,
    Interval,
    MonthShare,
)

PERIOD = Period(date(2026, 8, 24), date(2026, 11, 23))
REPORT = StatsReport(
    Split(PERIOD, PeriodSales(60, 42, 6_720_000, 4_200_000, 51, 9, 4, 50.0)),
    Split(PERIOD.previous(), PeriodSales(10, 9, 1_000_000, 900_000, 9, 0, 0, 0.0)),
)
REACTIVATION = CampaignResult(
    "reactivation",
    (ArmOutcome("a", 900, 890, 120, 225, 1_500_000), ArmOutcome("holdout", 100, 0, 0, 10, 0)),
    Interval(0.15, 0.09, 0.21),
    None,
)
FULL = StatsTables(
    REPORT,
    Figures(
        months=(MonthShare(date(2026, 9, 1), 29, 12, 3_260_000, 1_680_000),),
        cohorts=(
            Cohort(date(2026, 9, 1), 40, (12, 8), 6_000_000),
            Cohort(date(2026, 10, 1), 20, (5,)),
        ),
        funnel=(FunnelStep("started", 10), FunnelStep("consented", 8), FunnelStep("phone", 6)),
        campaigns=(REACTIVATION,),
    ),
    masters=(MasterFigures("anna", "=Анна", 10, 4, 1_200_000, 8, 2, 9, 5, 1),),
    sources=(SourceFigures("src_vk", 5, 3, 1), SourceFigures(None, 2, 0, 0)),
)


def files_of(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        raw = {name: archive.read(name) for name in archive.namelist()}
    assert all(content.startswith(b"\xef\xbb\xbf") for content in raw.values())
    return {name: content.decode("utf-8-sig") for name, content in raw.items()}


def test_every_table_as_its_file() -> None:
    data, listed = stats_archive(FULL)
    files = files_of(data)
    assert [(f.name, f.rows) for f in listed] == [
        ("period.csv", 2),
        ("months.csv", 1),
        ("cohorts.csv", 2),
        ("funnel.csv", 3),
        ("masters.csv", 1),
        ("sources.csv", 2),
        ("campaigns.csv", 2),
    ]
    assert list(files) == [f.name for f in listed]
    assert files["period.csv"] == (
        "period,first_day,last_day,sales,first,repeat,repeat_share,money,first_money,"
        "repeat_money,repeat_money_share,customers,new,returning,average_check,"
        "average_interval_days\r\n"
        "current,2026-08-24,2026-11-23,60,42,18,0.3000,67200.00,42000.00,25200.00,0.3750,"
        "51,42,9,1120.00,12.5\r\n"
        "previous,2026-05-24,2026-08-23,10,9,1,0.1000,10000.00,9000.00,1000.00,0.1000,"
        "9,9,0,1000.00,\r\n"
    )
    assert files["months.csv"] == (
        "month,sales,first,repeat,repeat_share,money,repeat_money,repeat_money_share\r\n"
        "2026-09,29,17,12,0.4138,32600.00,16800.00,0.5153\r\n"
    )
    assert files["cohorts.csv"] == (
        "cohort,customers,revenue_12m,ltv_12m,returned_0,returned_1,share_0,share_1\r\n"
        "2026-09,40,60000.00,1500.00,12,8,0.3000,0.2000\r\n"
        "2026-10,20,0.00,0.00,5,,0.2500,\r\n"
    )
    assert files["funnel.csv"] == (
        "step,customers,share_of_previous,drop\r\n"
        "started,10,,\r\n"
        "consented,8,0.8000,2\r\n"
        "phone,6,0.7500,2\r\n"
    )
    assert files["masters.csv"] == (
        "master_id,master,sales,repeat,repeat_share,money,customers,csat,answers,done,no_show,"
        "no_show_rate\r\n"
        "anna,'=Анна,10,4,0.4000,12000.00,8,4.5,2,5,1,0.1667\r\n"  # a formula-like name: text
    )
    assert files["sources.csv"] == (
        "source,joined,bought,bought_again,bought_share,again_share\r\n"
        "src_vk,5,3,1,0.6000,0.3333\r\n"
        ",2,0,0,0.0000,\r\n"
    )
    assert files["campaigns.csv"] == (
        "campaign,arm,customers,sent,redeemed,came_back,came_back_share,revenue,lift,lift_low,"
        "lift_high,lift_significant,variants_difference,variants_low,variants_high,"
        "variants_significant\r\n"
        "reactivation,a,900,890,120,225,0.2500,15000.00,0.1500,0.0900,0.2100,yes,,,,\r\n"
        "reactivation,holdout,100,0,0,10,0.1000,0.00,0.1500,0.0900,0.2100,yes,,,,\r\n"
    )


def test_a_table_nobody_computes_is_left_out() -> None:
    data, listed = stats_archive(StatsTables(REPORT, Figures()))
    assert [f.name for f in listed] == ["period.csv"] and list(files_of(data)) == ["period.csv"]
    assert archive_name(PERIOD) == "carebot-stats-2026-08-24-2026-11-23.zip"


def test_the_digest_reports_the_week_before() -> None:
    monday = date(2026, 11, 23)
    for day in (monday, date(2026, 11, 25), date(2026, 11, 29)):
        assert week_before(day) == Period(date(2026, 11, 16), date(2026, 11, 22))
    assert iso_key(date(2026, 11, 16)) == "digest:2026-W47"
    assert iso_key(date(2026, 12, 28)) == "digest:2026-W53"  # 2026 has 53 ISO weeks
    assert iso_key(date(2027, 1, 4)) == "digest:2027-W01"


def test_best_and_worst_campaign() -> None:
    def lifted(name: str, lift: float | None) -> CampaignResult:
        interval = None if lift is None else Interval(lift, lift - 0.1, lift + 0.1)
        return CampaignResult(name, (), interval, None)

    assert best_and_worst([]) == (None, None)
    assert best_and_worst([lifted("welcome", None)]) == (None, None)
    only = lifted("birthday", 0.05)
    assert best_and_worst([only]) == (only, None)
    low, high = lifted("thanks", -0.02), lifted("reactivation", 0.15)
    assert best_and_worst([low, lifted("welcome", None), high, only]) == (high, low)
