"""The /stats charts (`bot.services.charts`): real PNGs of a fixed size, nothing drawn for no
data, words in the staff's language and numbers the Russian way, drawn off the event loop, and
matplotlib never loaded until a chart is drawn."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.rendering import Renderer
from bot.services import charts
from bot.services.charts import (
    ChartTexts,
    Figures,
    FigureSources,
    campaign_chart,
    chart_texts,
    cohort_chart,
    draw,
    draw_now,
    funnel_chart,
    repeat_share_chart,
)
from bot.services.stats import Period
from bot.services.stats_figures import (
    FUNNEL_KEYS,
    ArmOutcome,
    CampaignResult,
    Cohort,
    FunnelStep,
    Interval,
    MonthShare,
)

ROOT = Path(__file__).resolve().parents[2]
NBSP = "\u00a0"
MONTHS = (
    MonthShare(date(2026, 9, 1), 60, 18, 6_720_000, 2_520_000),
    MonthShare(date(2026, 10, 1), 50, 20, 5_000_000, 2_500_000),
    MonthShare(date(2026, 11, 1), 0, 0, 0, 0),  # no sales yet: a gap, not a zero
)
COHORTS = (
    Cohort(date(2026, 9, 1), 40, (12, 8, 4)),
    Cohort(date(2026, 10, 1), 20, (5, 2)),
    Cohort(date(2026, 11, 1), 0, (0,)),  # nobody: not a row
)
FUNNEL = tuple(
    FunnelStep(k, n) for k, n in zip(FUNNEL_KEYS, (1000, 900, 700, 650, 640, 300, 120), strict=True)
)
CAMPAIGNS = (
    CampaignResult(
        "reactivation",
        (ArmOutcome("a", 900, 900, 120, 225, 0), ArmOutcome("holdout", 100, 0, 0, 10, 0)),
        Interval(0.15, 0.09, 0.21),
        None,
    ),
    CampaignResult(
        "broadcast:7",
        (ArmOutcome("a", 300, 300, 20, 60, 0), ArmOutcome("b", 300, 300, 20, 45, 0)),
        None,
        Interval(-0.05, -0.11, 0.01),
    ),
)
FULL = Figures(MONTHS, COHORTS, FUNNEL, CAMPAIGNS)


@pytest.fixture(scope="module")
def render() -> Renderer:
    return Renderer(ZoneInfo("Europe/Moscow"), [ROOT / "templates"])


@pytest.fixture(scope="module")
def ru(render: Renderer) -> ChartTexts:
    return chart_texts(render, "ru")


@pytest.fixture(scope="module")
def en(render: Renderer) -> ChartTexts:
    return chart_texts(render, "en")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's header (its IHDR chunk), after checking the signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class Captured:
    """The figure each chart function drew, instead of its PNG: what it says can be read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.figures: list[Any] = []
        monkeypatch.setattr(charts, "_png", self._keep)

    def _keep(self, figure: Any) -> bytes:
        figure.canvas.draw()  # lays the texts out, as saving would
        self.figures.append(figure)
        return b"captured"

    def texts(self) -> list[str]:
        """Every text of the last figure: titles, tick labels, annotations, the legend."""
        figure = self.figures[-1]
        found = [t.get_text() for t in figure.findobj(lambda o: hasattr(o, "get_text"))]
        return [t for t in found if t]


def test_each_chart_is_a_small_png_of_the_fixed_size(ru: ChartTexts) -> None:
    drawn = draw_now(FULL, ru)
    assert [c.name for c in drawn] == ["repeat_share", "cohorts", "funnel", "campaigns"]
    for chart in drawn:
        assert png_size(chart.png) == (800, 450)
        assert len(chart.png) < 200_000
    assert [c.title for c in drawn] == [
        "Доля повторных продаж по месяцам",
        "Купили снова: клиенты по месяцу первой покупки",
        "Воронка: от /start до второй покупки",
        "Что дали сообщения: вернулись, против контроля",
    ]


def test_the_same_numbers_give_the_same_bytes(ru: ChartTexts) -> None:
    assert repeat_share_chart(MONTHS, ru) == repeat_share_chart(MONTHS, ru)


def test_nothing_to_show_draws_nothing(ru: ChartTexts) -> None:
    assert repeat_share_chart([], ru) is None
    assert repeat_share_chart([MonthShare(date(2026, 9, 1), 0, 0, 0, 0)], ru) is None
    assert cohort_chart([Cohort(date(2026, 9, 1), 0, (0,))], ru) is None
    assert funnel_chart([FunnelStep(k, 0) for k in FUNNEL_KEYS], ru) is None
    no_holdout = CampaignResult("welcome", (ArmOutcome("a", 5, 5, 1, 1, 0),), None, None)
    assert campaign_chart([no_holdout], ru) is None
    assert draw_now(Figures(campaigns=(no_holdout,)), ru) == []
    assert [c.name for c in draw_now(Figures(funnel=FUNNEL), ru)] == ["funnel"]


async def test_no_figures_no_thread(ru: ChartTexts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts, "draw_now", lambda *a: pytest.fail("drawn"))
    assert await draw(Figures(), ru) == []


async def test_drawing_happens_in_a_worker_thread(
    ru: ChartTexts, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real = charts.draw_now

    def recorded(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(charts, "draw_now", recorded)
    drawn = await draw(Figures(funnel=FUNNEL), ru)
    assert [c.name for c in drawn] == ["funnel"]
    assert threads and threads[0] is not threading.main_thread()


def test_repeat_share_words_and_numbers(
    ru: ChartTexts, en: ChartTexts, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured = Captured(monkeypatch)
    repeat_share_chart(MONTHS, ru)
    texts = captured.texts()
    assert "Доля повторных продаж по месяцам" in texts
    assert {"по числу продаж", "по деньгам"} <= set(texts)
    assert f"30{NBSP}%" in texts and f"40{NBSP}%" in texts  # 18 of 60, 20 of 50 by count
    assert f"37,5{NBSP}%" not in texts  # whole percents on the chart: 38 %
    assert f"38{NBSP}%" in texts and f"50{NBSP}%" in texts  # by money
    assert {"сент. 26", "окт. 26", "нояб. 26"} <= set(texts)
    repeat_share_chart(MONTHS, en)
    texts = captured.texts()
    assert "Repeat share of sales by month" in texts and "by money" in texts
    assert "30%" in texts and {"Sep 26", "Oct 26", "Nov 26"} <= set(texts)


def test_cohort_cells_are_annotated(ru: ChartTexts, monkeypatch: pytest.MonkeyPatch) -> None:
    captured = Captured(monkeypatch)
    cohort_chart(COHORTS, ru)
    texts = captured.texts()
    # September: 12, 8, 4 of 40 came back in months 0, 1, 2; October: 5, 2 of 20
    assert ["30%", "20%", "10%", "25%", "10%"] == [t for t in texts if t.endswith("%")][:5]
    assert "сент. 26 (40)" in texts and "окт. 26 (20)" in texts
    assert not any(t.startswith("нояб.") for t in texts)  # a cohort of nobody is not a row
    assert "месяцев после первой покупки" in texts


def test_funnel_shows_each_drop(ru: ChartTexts, monkeypatch: pytest.MonkeyPatch) -> None:
    captured = Captured(monkeypatch)
    funnel_chart(FUNNEL, ru)
    texts = captured.texts()
    assert f"1{NBSP}000" in texts
    assert f"900  (90{NBSP}% от предыдущего шага, −10{NBSP}%)" in texts
    assert f"120  (40{NBSP}% от предыдущего шага, −60{NBSP}%)" in texts
    assert "начали (/start)" in texts and "вторая покупка" in texts


def test_campaign_lift_with_its_interval(
    ru: ChartTexts, en: ChartTexts, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured = Captured(monkeypatch)
    campaign_chart(CAMPAIGNS, ru)
    texts = captured.texts()
    assert "возврат уснувших" in texts and "рассылка №7: вариант Б − А" in texts
    assert "+15 (+9…+21)" in texts  # significant: no remark
    assert "-5 (-11…+1), пока не значимо" in texts
    assert f"А 25{NBSP}% (n=900) · контроль 10{NBSP}% (n=100)" in texts
    axes = captured.figures[-1].axes[0]
    assert any(line.get_xdata()[0] == 0 for line in axes.get_lines())  # the zero line
    campaign_chart(CAMPAIGNS, en)
    texts = captured.texts()
    assert "wake-up" in texts and "broadcast #7: variant B − A" in texts
    assert "-5 (-11…+1), not significant yet" in texts


async def test_sources_are_asked_only_for_the_charts_wanted() -> None:
    asked: list[str] = []
    period = Period(date(2026, 9, 1), date(2026, 11, 30))

    async def months(p: Period) -> list[MonthShare]:
        assert p == period
        asked.append("months")
        return list(MONTHS)

    async def funnel(p: Period) -> list[FunnelStep]:
        asked.append("funnel")
        return list(FUNNEL)

    sources = FigureSources(months=months, funnel=funnel)  # no cohorts, no campaigns wired
    assert await sources.gather(period) == Figures(months=MONTHS, funnel=FUNNEL)
    assert asked == ["months", "funnel"]
    assert await sources.gather(period, only=["funnel"]) == Figures(funnel=FUNNEL)
    assert asked == ["months", "funnel", "funnel"]


def test_matplotlib_is_loaded_only_to_draw() -> None:
    """The bot's start-up and the CLI import no matplotlib (about a second and 30 MB)."""
    code = (
        "import sys, bot.app, bot.cli, bot.services.charts, bot.services.digest;"
        "print('matplotlib' in sys.modules)"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert found.stdout.strip() == "False"


def test_owner_words_override_the_bundled_ones(tmp_path: Path, render: Renderer) -> None:
    (tmp_path / "ru").mkdir()
    bundled = (ROOT / "templates" / "ru" / "charts.txt").read_text(encoding="utf-8")
    (tmp_path / "ru" / "charts.txt").write_text(
        bundled.replace("Доля повторных продаж по месяцам", "Повторные, помесячно"),
        encoding="utf-8",
    )
    own = Renderer(ZoneInfo("Europe/Moscow"), [tmp_path, ROOT / "templates"])
    assert chart_texts(own, "ru")["repeat_title"] == "Повторные, помесячно"
    assert chart_texts(render, "ru").campaign("broadcast:12") == "рассылка №12"
    assert asyncio.iscoroutinefunction(draw)
