"""The `/stats` pictures: PNG charts drawn with matplotlib from the shapes of
`bot.services.stats_figures`, nothing else (no database, no Telegram).

- repeat share by month, by count and by money (two lines);
- retention cohorts: month of first purchase × months since, the share who bought again (a
  heatmap, each cell annotated);
- the onboarding funnel, each step's customers and the drop from the step before;
- campaign lift: came back, the campaign minus its holdout (and variant B minus A), as a point
  with its 95 % confidence interval around a zero line, the arms' shares beside it.

A chart with nothing to show is not drawn (its function returns None): the text already says
there were no sales, and an empty picture would only cost one of the group's 20 messages a
minute. Words come from `templates/<lang>/charts.txt` (`chart_texts`), numbers are formatted
by Babel the way the texts format them (30 %, 1 234 in Russian).

Drawing is CPU work of a tenth of a second a chart: `draw` runs it in a worker thread
(`asyncio.to_thread`), one chart at a time (matplotlib's font and text caches are shared), and
matplotlib is imported there, on first use, so the bot's start-up and the CLI never load it.
The figure API (`matplotlib.figure.Figure` on the Agg canvas), never pyplot: no global state.
"""

from __future__ import annotations

import asyncio
import io
import math
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_decimal, format_percent

from bot.services.campaign_results import ORDER as CAMPAIGNS
from bot.services.stats_figures import (
    FUNNEL_KEYS,
    CampaignResult,
    Cohort,
    FunnelStep,
    MonthShare,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bot.rendering import Renderer
    from bot.services.stats import Period

WIDTH, HEIGHT, DPI = 8.0, 4.5, 100  # 800 × 450 px: readable on a phone, tens of kilobytes
COHORT_ROWS = 12  # the latest cohorts on the heatmap (the export has them all)
COHORT_MONTHS = 13  # months since the first purchase: 0 … 12 (the LTV's year)
MAX_LINES = 12  # intervals on the campaigns chart (the export has them all)
NOTED_LINES = 6  # up to this many, each with its arms' shares under it
LINE_COLOURS = ("#1f77b4", "#ff7f0e")
GOOD, BAD, UNSURE = "#2ca02c", "#d62728", "#7f7f7f"
_LOCK = threading.Lock()  # one chart at a time in the whole process
_MONTH = {"ru": "LLL yy", "en": "MMM yy"}

CHART_KEYS = (
    "repeat_title",
    "repeat_by_count",
    "repeat_by_money",
    "cohorts_title",
    "cohorts_x",
    "cohorts_y",
    "funnel_title",
    "funnel_from_previous",
    "campaigns_title",
    "campaigns_x",
    "variants",
    "arm_a",
    "arm_b",
    "arm_holdout",
    "not_significant",
)


@dataclass(frozen=True)
class ChartTexts:
    """The words of one language: the keys of `CHART_KEYS`, `step_<key>`, `campaign_<name>`, and
    a broadcast's name (`campaign_broadcast(id)`), read once on the event loop."""

    lang: str
    words: Mapping[str, str]
    broadcast: Callable[[str], str] = field(default=lambda id: f"#{id}")

    def __getitem__(self, key: str) -> str:
        return self.words.get(key, key)

    def campaign(self, name: str) -> str:
        if name.startswith("broadcast:"):
            return self.broadcast(name.split(":", 1)[1])
        return self.words.get(f"campaign_{name}", name)


def chart_texts(render: Renderer, lang: str) -> ChartTexts:
    """The chart words of `templates/<lang>/charts.txt` (the owner's `data/templates/` first)."""
    module = render.env.get_template(f"{lang}/charts.txt").module
    keys = (*CHART_KEYS, *(f"step_{s}" for s in FUNNEL_KEYS), *(f"campaign_{c}" for c in CAMPAIGNS))
    words = {key: str(getattr(module, key)()).strip() for key in keys if hasattr(module, key)}
    broadcast = module.campaign_broadcast  # type: ignore[attr-defined]
    return ChartTexts(lang, words, lambda id: str(broadcast(id)).strip())


# ---- numbers the way the texts write them ----------------------------------------------------


def _locale(lang: str) -> Locale:
    return Locale.parse(lang if lang in ("ru", "en") else "ru")


def percent(share: float, lang: str, decimals: bool = False) -> str:
    """0.3 → "30 %" (ru) / "30%" (en); with `decimals`, one decimal when there is one."""
    locale = _locale(lang)
    pattern = locale.percent_formats[None].pattern
    if decimals:
        pattern = pattern.replace("#,##0", "#,##0.#", 1)
    return format_percent(share, pattern, locale=locale)


def number(value: float, lang: str, sign: bool = False) -> str:
    """1 234 / 12,5 (ru), 1,234 / 12.5 (en); with `sign`, "+" before a positive one."""
    pattern = "+#,##0.#;-#,##0.#" if sign else "#,##0.#"
    return format_decimal(value, pattern, locale=_locale(lang))


def month_label(month: Any, lang: str) -> str:
    """сент. 26 / Sep 26."""
    return format_date(month, _MONTH.get(lang, _MONTH["ru"]), locale=_locale(lang))


# ---- the figures -----------------------------------------------------------------------------


def _figure(left: float = 0.09, bottom: float = 0.12, right: float = 0.97) -> Figure:
    import matplotlib

    matplotlib.use("Agg")  # no display, ever (a no-op when already so)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    # Fixed margins, not a layout engine: laying out every text again costs more than drawing.
    figure.subplots_adjust(left=left, bottom=bottom, right=right, top=0.91)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No metadata: the same numbers give the same bytes.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _percent_axis(axes: Axes, lang: str, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter

    formatter = FuncFormatter(lambda value, _: percent(value, lang))
    (axes.yaxis if axis == "y" else axes.xaxis).set_major_formatter(formatter)


def repeat_share_chart(months: Sequence[MonthShare], texts: ChartTexts) -> bytes | None:
    """The repeat share of each month's sales, by count and by money; None with no sales."""
    months = [m for m in months]
    if not any(m.sales for m in months):
        return None
    lang = texts.lang
    figure = _figure(left=0.08, bottom=0.15)
    axes = figure.subplots()
    xs = list(range(len(months)))
    shares: list[float] = []
    for colour, key, values in (
        (LINE_COLOURS[0], "repeat_by_count", [m.repeat_share for m in months]),
        (LINE_COLOURS[1], "repeat_by_money", [m.repeat_money_share for m in months]),
    ):
        ys = [math.nan if v is None else v for v in values]
        shares += [y for y in ys if not math.isnan(y)]
        axes.plot(xs, ys, marker="o", color=colour, label=texts[key], linewidth=2)
        # Every point's value up to half a year; beyond, the latest only (they would overlap).
        for x, y in list(zip(xs, ys, strict=True))[-6 if len(xs) <= 6 else -1 :]:
            if not math.isnan(y):
                axes.annotate(
                    percent(y, lang),
                    (x, y),
                    textcoords="offset points",
                    xytext=(0, 7 if colour == LINE_COLOURS[0] else -13),
                    ha="center",
                    fontsize=8,
                    color=colour,
                )
    step = max(1, math.ceil(len(months) / 12))
    axes.set_xticks(xs[::step], [month_label(m.month, lang) for m in months][::step])
    if len(xs[::step]) > 6:
        axes.tick_params(axis="x", labelrotation=35)
    axes.set_xlim(-0.5, len(xs) - (0.5 if len(xs) <= 6 else -0.5))  # room for the last label
    axes.set_ylim(0, min(1.05, max(shares, default=0) * 1.25 + 0.1))
    _percent_axis(axes, lang)
    axes.grid(axis="y", alpha=0.3)
    axes.set_title(texts["repeat_title"])
    axes.legend(loc="upper left", frameon=False)
    return _png(figure)


def cohort_chart(cohorts: Sequence[Cohort], texts: ChartTexts) -> bytes | None:
    """The latest cohorts × months since their first purchase, each cell the share who bought
    again that month; None with no cohort."""
    rows = [c for c in cohorts if c.customers][-COHORT_ROWS:]
    if not rows:
        return None
    lang = texts.lang
    width = min(COHORT_MONTHS, max(len(c.returned) for c in rows)) or 1
    grid = [[math.nan if (v := c.retention(k)) is None else v for k in range(width)] for c in rows]
    import numpy

    figure = _figure(left=0.2, bottom=0.11, right=1.0)
    axes = figure.subplots()
    top = max(0.05, max((v for row in grid for v in row if not math.isnan(v)), default=0))
    image = axes.imshow(
        numpy.ma.masked_invalid(numpy.array(grid, dtype=float)),
        cmap="YlGn",
        vmin=0.0,
        vmax=top,
        aspect="auto",
    )
    small = len(rows) * width > 100
    for y, row in enumerate(grid):
        for x, value in enumerate(row):
            if not math.isnan(value):
                axes.text(
                    x,
                    y,
                    percent(value, lang).replace("\u00a0", ""),
                    ha="center",
                    va="center",
                    fontsize=6 if small else 8,
                    color="white" if value > 0.6 * top else "black",
                )
    axes.set_xticks(range(width), [str(k) for k in range(width)])
    axes.set_yticks(
        range(len(rows)),
        [f"{month_label(c.month, lang)} ({number(c.customers, lang)})" for c in rows],
    )
    axes.set_xlabel(texts["cohorts_x"])
    axes.set_ylabel(texts["cohorts_y"])
    axes.set_title(texts["cohorts_title"])
    colourbar = figure.colorbar(image, ax=axes, shrink=0.8)
    from matplotlib.ticker import FuncFormatter

    colourbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: percent(v, lang)))
    return _png(figure)


def funnel_chart(steps: Sequence[FunnelStep], texts: ChartTexts) -> bytes | None:
    """Each step's customers as a bar, with its share of the step before (the drop); None when
    nobody started."""
    steps = list(steps)
    if not steps or not steps[0].customers:
        return None
    lang = texts.lang
    figure = _figure(left=0.24, bottom=0.03)
    axes = figure.subplots()
    ys = list(range(len(steps)))
    counts = [s.customers for s in steps]
    axes.barh(ys, counts, color=LINE_COLOURS[0], alpha=0.85)
    axes.invert_yaxis()  # the first step on top
    top = max(counts)
    for y, step in enumerate(steps):
        text = number(step.customers, lang)
        if y and counts[y - 1]:
            kept = step.customers / counts[y - 1]
            text += f"  ({percent(kept, lang)} {texts['funnel_from_previous']}, −{percent(1 - kept, lang)})"
        axes.text(step.customers + top * 0.01, y, text, va="center", fontsize=8)
    axes.set_yticks(ys, [texts[f"step_{s.key}"] for s in steps])
    axes.set_xlim(0, top * 1.6)
    axes.xaxis.set_visible(False)
    for side in ("top", "right", "bottom"):
        axes.spines[side].set_visible(False)
    axes.set_title(texts["funnel_title"])
    return _png(figure)


def _arm_shares(result: CampaignResult, texts: ChartTexts, lang: str) -> str:
    names = {"a": texts["arm_a"], "b": texts["arm_b"], "holdout": texts["arm_holdout"]}
    parts = []
    for arm in result.arms:
        if arm.came_back_share is not None:
            parts.append(
                f"{names.get(arm.arm, arm.arm)} {percent(arm.came_back_share, lang)}"
                f" (n={number(arm.customers, lang)})"
            )
    return " · ".join(parts)


def campaign_chart(results: Sequence[CampaignResult], texts: ChartTexts) -> bytes | None:
    """Each campaign's lift (came back: the campaign minus its holdout) and each A/B test's
    difference (B minus A), in percentage points, with the 95 % interval as error bars around
    a zero line; green or red when significant, grey when not yet; the arms' shares under each
    while there are few. None with no interval."""
    lang = texts.lang
    lines: list[tuple[str, float, float, float, str]] = []  # label, point, low, high, note
    for result in results:
        name, shares = texts.campaign(result.campaign), _arm_shares(result, texts, lang)
        if result.lift is not None:
            interval = result.lift
            lines.append((name, interval.difference, interval.low, interval.high, shares))
        if result.variants is not None:
            interval = result.variants
            label = f"↳ {texts['variants']}" if result.lift else f"{name}: {texts['variants']}"
            note = "" if result.lift is not None else shares
            lines.append((label, interval.difference, interval.low, interval.high, note))
    if not lines:
        return None
    lines = lines[:MAX_LINES]  # the export has them all
    noted = len(lines) <= NOTED_LINES  # more, and the notes would overlap
    longest = max(len(label) for label, *_ in lines)
    figure = _figure(left=min(0.45, 0.05 + 0.0115 * longest), bottom=0.12)
    axes = figure.subplots()
    reach = max(max(abs(low), abs(high)) for _, _, low, high, _ in lines) * 100 or 1.0
    for y, (_label, point, low, high, note) in enumerate(lines):
        colour = GOOD if low > 0 else BAD if high < 0 else UNSURE
        axes.errorbar(
            [point * 100],
            [y],
            xerr=[[(point - low) * 100], [(high - point) * 100]],
            fmt="o",
            color=colour,
            capsize=4,
            linewidth=2,
        )
        caption = (
            f"{number(point * 100, lang, sign=True)} "
            f"({number(low * 100, lang, sign=True)}…{number(high * 100, lang, sign=True)})"
        )
        if low <= 0 <= high:
            caption += f", {texts['not_significant']}"
        axes.annotate(  # right of the interval: never over another line
            caption,
            (high * 100, y),
            textcoords="offset points",
            xytext=(8, 0),
            va="center",
            fontsize=8,
            color=colour,
        )
        if note and noted:
            axes.annotate(
                note,
                (point * 100, y),
                textcoords="offset points",
                xytext=(0, -13),
                ha="center",
                fontsize=7,
                color="#555555",
            )
    axes.axvline(0, color="black", linewidth=1)
    axes.set_yticks(range(len(lines)), [label for label, *_ in lines])
    axes.set_ylim(len(lines) - 0.4, -0.6)
    axes.set_xlim(-reach * 1.2, reach * 2.4)  # room on the right for the captions
    from matplotlib.ticker import FuncFormatter

    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: number(v, lang, sign=True)))
    axes.set_xlabel(texts["campaigns_x"])
    axes.grid(axis="x", alpha=0.3)
    axes.set_title(texts["campaigns_title"])
    return _png(figure)


# ---- all of them, off the event loop ---------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """What the charts are drawn from (a part nobody computes yet stays empty: no chart)."""

    months: tuple[MonthShare, ...] = ()
    cohorts: tuple[Cohort, ...] = ()
    funnel: tuple[FunnelStep, ...] = ()
    campaigns: tuple[CampaignResult, ...] = ()


Source = Callable[["Period"], Awaitable[Sequence[Any]]]


@dataclass(frozen=True)
class FigureSources:
    """Where each chart's numbers come from, for a period: the services' methods, wired by the
    composition root (`StatsService.months`, `StatsService.cohorts`,
    `StatsBreakdownService.funnel`, `CampaignResultsService.results`). One not wired (None)
    gives no chart."""

    months: Source | None = None
    cohorts: Source | None = None
    funnel: Source | None = None
    campaigns: Source | None = None

    async def gather(
        self, period: Period, only: Sequence[str] = (), known: Figures | None = None
    ) -> Figures:
        """The figures of `period`, one read after the other (each its own read snapshot; a
        SQLite base has one connection to give). `only`: the charts wanted (default all);
        `known`: figures already read (the summary's cohorts), not read again."""
        wanted = set(only or CHARTS)
        found: dict[str, tuple[Any, ...]] = {}
        for field_name, chart in (
            ("months", "repeat_share"),
            ("cohorts", "cohorts"),
            ("funnel", "funnel"),
            ("campaigns", "campaigns"),
        ):
            source, have = getattr(self, field_name), getattr(known, field_name, ())
            if chart not in wanted:
                continue
            if have:
                found[field_name] = tuple(have)
            elif source is not None:
                found[field_name] = tuple(await source(period))
        return Figures(**found)


@dataclass(frozen=True)
class Chart:
    """One picture: `name` is its file name without `.png` (repeat_share, cohorts, funnel,
    campaigns), `title` the chart's own title (a caption)."""

    name: str
    title: str
    png: bytes


CHARTS = ("repeat_share", "cohorts", "funnel", "campaigns")


def draw_now(figures: Figures, texts: ChartTexts, only: Sequence[str] = CHARTS) -> list[Chart]:
    """Every chart of `only` that has something to show, in that order (blocking: CPU work)."""
    makers: dict[str, tuple[Callable[[], bytes | None], str]] = {
        "repeat_share": (lambda: repeat_share_chart(figures.months, texts), "repeat_title"),
        "cohorts": (lambda: cohort_chart(figures.cohorts, texts), "cohorts_title"),
        "funnel": (lambda: funnel_chart(figures.funnel, texts), "funnel_title"),
        "campaigns": (lambda: campaign_chart(figures.campaigns, texts), "campaigns_title"),
    }
    charts = []
    for name in only:
        make, title = makers[name]
        with _LOCK:
            png = make()
        if png is not None:
            charts.append(Chart(name, texts[title], png))
    return charts


async def draw(figures: Figures, texts: ChartTexts, only: Sequence[str] = CHARTS) -> list[Chart]:
    """`draw_now` in a worker thread: the event loop keeps answering while the charts are drawn."""
    if not (figures.months or figures.cohorts or figures.funnel or figures.campaigns):
        return []  # nothing to draw: no thread, no matplotlib
    return await asyncio.to_thread(draw_now, figures, texts, only)


def _load_matplotlib() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib.backends import backend_agg  # noqa: F401  (what drawing imports first)
    from matplotlib.figure import Figure  # noqa: F401

    font_manager.findfont("DejaVu Sans")  # the font list read once


async def warm_up() -> None:
    """matplotlib loaded in a worker thread while a /stats reads its figures: the first chart of
    a process otherwise waits about 0.7 s for the import after the reads. The bot does not load it
    at start (a bot nobody asks for numbers stays light); this is the moment it is needed."""
    if "matplotlib.backends.backend_agg" in sys.modules:
        return
    await asyncio.to_thread(_load_matplotlib)
