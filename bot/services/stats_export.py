"""`/stats export [period]`: the tables behind `/stats` and its charts as CSV files in one ZIP
archive (one message of the admin group's 20 a minute), the way `carebot export` writes its
files (`bot.services.exporting`): UTF-8 with a byte-order mark so Excel reads Cyrillic, commas,
one header line, amounts with a dot (`1500.00`). Shares are fractions with four decimals
(`0.3000` is 30 %), an empty cell where there is nothing to divide by.

- `period.csv`: the period and the one before it: sales first and repeat, by count and money;
- `months.csv`: each month's sales, first and repeat (the repeat-share chart);
- `cohorts.csv`: customers by month of first purchase, how many bought again k months later
  (`returned_0` …) and the share (`share_0` …), their revenue over 12 months and LTV;
- `funnel.csv`, `masters.csv`, `sources.csv`, `campaigns.csv` (one row per arm, the campaign's
  lift and its 95 % interval on each): when those numbers are wired.

A table nobody computes yet is left out, not written empty. Text typed by people (a master's name,
a deep-link source) is written as `carebot export` writes it: never as an Excel formula.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.services.charts import Figures, FigureSources
from bot.services.exporting import ENCODING, ExportedFile, money, text_cell
from bot.services.stats import Period, StatsReport, StatsService
from bot.services.stats_figures import CampaignResult, Cohort, FunnelStep, MonthShare

Breakdown = Callable[[Period], Awaitable[Sequence[Any]]]


def fraction(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@dataclass(frozen=True)
class StatsTables:
    """Everything `/stats` knows of one period."""

    report: StatsReport
    figures: Figures
    masters: tuple[Any, ...] | None = None  # StatsBreakdownService.masters' MasterFigures
    sources: tuple[Any, ...] | None = None  # SourceFigures

    @property
    def period(self) -> Period:
        return self.report.current.period


def _period_rows(report: StatsReport) -> Iterable[list[Any]]:
    for name, split in (("current", report.current), ("previous", report.previous)):
        s = split.sales
        yield [
            name,
            split.period.first_day.isoformat(),
            split.period.last_day.isoformat(),
            s.sales,
            s.first,
            s.repeat,
            fraction(split.repeat_share),
            money(s.money_minor),
            money(s.first_minor),
            money(s.repeat_minor),
            fraction(split.repeat_money_share),
            s.customers,
            s.new,
            s.returning,
            money(split.average_check_minor),
            "" if split.average_interval_days is None else split.average_interval_days,
        ]


PERIOD_COLUMNS = (
    "period",
    "first_day",
    "last_day",
    "sales",
    "first",
    "repeat",
    "repeat_share",
    "money",
    "first_money",
    "repeat_money",
    "repeat_money_share",
    "customers",
    "new",
    "returning",
    "average_check",
    "average_interval_days",
)
MONTH_COLUMNS = (
    "month",
    "sales",
    "first",
    "repeat",
    "repeat_share",
    "money",
    "repeat_money",
    "repeat_money_share",
)


def _month_rows(months: Sequence[MonthShare]) -> Iterable[list[Any]]:
    for m in months:
        yield [
            m.month.strftime("%Y-%m"),
            m.sales,
            m.sales - m.repeat,
            m.repeat,
            fraction(m.repeat_share),
            money(m.money_minor),
            money(m.repeat_minor),
            fraction(m.repeat_money_share),
        ]


def _cohort_table(cohorts: Sequence[Cohort]) -> tuple[list[str], list[list[Any]]]:
    width = max((len(c.returned) for c in cohorts), default=0)
    columns = [
        "cohort",
        "customers",
        "revenue_12m",
        "ltv_12m",
        *(f"returned_{k}" for k in range(width)),
        *(f"share_{k}" for k in range(width)),
    ]
    rows = [
        [
            c.month.strftime("%Y-%m"),
            c.customers,
            money(c.revenue_12m_minor),
            money(c.ltv_minor),
            *(c.returned[k] if k < len(c.returned) else "" for k in range(width)),
            *(fraction(c.retention(k)) for k in range(width)),
        ]
        for c in cohorts
    ]
    return columns, rows


FUNNEL_COLUMNS = ("step", "customers", "share_of_previous", "drop")


def _funnel_rows(steps: Sequence[FunnelStep]) -> Iterable[list[Any]]:
    before: int | None = None
    for step in steps:
        kept = step.customers / before if before else None
        drop = "" if before is None else before - step.customers
        yield [step.key, step.customers, fraction(kept), drop]
        before = step.customers


MASTER_COLUMNS = (
    "master_id",
    "master",
    "sales",
    "repeat",
    "repeat_share",
    "money",
    "customers",
    "csat",
    "answers",
    "done",
    "no_show",
    "no_show_rate",
)


def _master_rows(masters: Sequence[Any]) -> Iterable[list[Any]]:
    for m in masters:
        yield [
            m.master_id or "",
            text_cell(m.name),
            m.sales,
            m.repeat,
            fraction(m.repeat_share),
            money(m.money_minor),
            m.customers,
            "" if m.csat is None else m.csat,
            m.answers,
            m.done,
            m.no_show,
            fraction(m.no_show_rate),
        ]


SOURCE_COLUMNS = ("source", "joined", "bought", "bought_again", "bought_share", "again_share")


def _source_rows(sources: Sequence[Any]) -> Iterable[list[Any]]:
    for s in sources:
        yield [
            text_cell(s.source),
            s.joined,
            s.bought,
            s.bought_again,
            fraction(s.bought_share),
            fraction(s.again_share),
        ]


CAMPAIGN_COLUMNS = (
    "campaign",
    "arm",
    "customers",
    "sent",
    "redeemed",
    "came_back",
    "came_back_share",
    "revenue",
    "lift",
    "lift_low",
    "lift_high",
    "lift_significant",
    "variants_difference",
    "variants_low",
    "variants_high",
    "variants_significant",
)


def _campaign_rows(results: Sequence[CampaignResult]) -> Iterable[list[Any]]:
    for result in results:
        intervals: list[Any] = []
        for interval in (result.lift, result.variants):
            intervals += (
                ["", "", "", ""]
                if interval is None
                else [
                    fraction(interval.difference),
                    fraction(interval.low),
                    fraction(interval.high),
                    "yes" if interval.significant else "no",
                ]
            )
        for arm in result.arms:
            yield [
                result.campaign,
                arm.arm,
                arm.customers,
                arm.sent,
                arm.redeemed,
                arm.came_back,
                fraction(arm.came_back_share),
                money(arm.revenue_minor),
                *intervals,
            ]


def stats_archive(tables: StatsTables) -> tuple[bytes, list[ExportedFile]]:
    """The ZIP archive's bytes and what is in it (a few kilobytes: built in memory)."""
    f = tables.figures
    files: list[tuple[str, Sequence[str], list[list[Any]]]] = [
        ("period.csv", PERIOD_COLUMNS, list(_period_rows(tables.report)))
    ]
    if f.months:
        files.append(("months.csv", MONTH_COLUMNS, list(_month_rows(f.months))))
    if f.cohorts:
        files.append(("cohorts.csv", *_cohort_table(f.cohorts)))
    if f.funnel:
        files.append(("funnel.csv", FUNNEL_COLUMNS, list(_funnel_rows(f.funnel))))
    if tables.masters is not None:
        files.append(("masters.csv", MASTER_COLUMNS, list(_master_rows(tables.masters))))
    if tables.sources is not None:
        files.append(("sources.csv", SOURCE_COLUMNS, list(_source_rows(tables.sources))))
    if f.campaigns:
        files.append(("campaigns.csv", CAMPAIGN_COLUMNS, list(_campaign_rows(f.campaigns))))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, header, rows in files:
            text = io.StringIO(newline="")
            writer = csv.writer(text)
            writer.writerow(header)
            writer.writerows(rows)
            archive.writestr(name, text.getvalue().encode(ENCODING))
    return buffer.getvalue(), [ExportedFile(name, len(rows)) for name, _, rows in files]


def archive_name(period: Period) -> str:
    return f"carebot-stats-{period.first_day.isoformat()}-{period.last_day.isoformat()}.zip"


class StatsExporter:
    """Gathers a period's tables from the services that compute them (wired by the composition
    root; one not wired leaves its file out)."""

    def __init__(
        self,
        stats: StatsService,
        sources: FigureSources,
        *,
        masters: Breakdown | None = None,
        joined_by_source: Breakdown | None = None,
    ) -> None:
        self.stats = stats
        self.sources = sources
        self.masters = masters
        self.joined_by_source = joined_by_source

    async def tables(self, period: Period) -> StatsTables:
        report = await self.stats.report(period)
        figures = await self.sources.gather(period, known=Figures(cohorts=report.cohorts))
        masters = tuple(await self.masters(period)) if self.masters else None
        joined = tuple(await self.joined_by_source(period)) if self.joined_by_source else None
        return StatsTables(report, figures, masters, joined)
