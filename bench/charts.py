"""Charts benchmark: prints figures, asserts nothing (these machines are shared and noisy).

    python bench/charts.py [--runs 5]

Each /stats chart drawn from shapes the size of a 3-month and of a 3-year period (3 or 36
months, 3 or 36 cohorts of which the heatmap shows 12, the seven funnel steps, 8 campaigns with
holdouts and variants): the first chart of the process (matplotlib's import and font cache), then
the median and the worst of `--runs` draws of each, and each PNG's size. The goals: under 0.3 s
a chart, under 200 KB a PNG.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.rendering import Renderer  # noqa: E402
from bot.services.charts import CHARTS, Figures, chart_texts, draw_now  # noqa: E402
from bot.services.stats_figures import (  # noqa: E402
    FUNNEL_KEYS,
    ArmOutcome,
    CampaignResult,
    Cohort,
    FunnelStep,
    Interval,
    MonthShare,
)


def month(index: int) -> date:
    year, m = divmod(2023 * 12 + 11 + index, 12)
    return date(year, m + 1, 1)


def figures(months: int, seed: int = 7) -> Figures:
    rng = random.Random(seed)
    shares = [
        MonthShare(
            month(i),
            sales := rng.randint(20_000, 40_000),
            repeat := int(sales * rng.uniform(0.25, 0.45)),
            money := sales * 150_000,
            int(money * repeat / sales * rng.uniform(0.9, 1.2)),
        )
        for i in range(months)
    ]
    cohorts = [
        Cohort(
            month(i),
            customers := rng.randint(2_000, 4_000),
            tuple(int(customers * 0.3 * 0.85**k) for k in range(months - i)),
            customers * rng.randint(200_000, 600_000),
        )
        for i in range(months)
    ]
    funnel = [FunnelStep(k, int(10_000 * 0.8**i)) for i, k in enumerate(FUNNEL_KEYS)]
    names = ["birthday", "holiday", "thanks", "expiry", "due_offer", "reactivation"]
    campaigns = [
        CampaignResult(
            name,
            (
                ArmOutcome("a", 9_000, 9_000, 900, 2_000, 0),
                ArmOutcome("b", 9_000, 9_000, 800, 1_900, 0),
                ArmOutcome("holdout", 2_000, 0, 0, 300, 0),
            ),
            Interval(d := rng.uniform(-0.02, 0.1), d - 0.02, d + 0.02),
            Interval(e := rng.uniform(-0.03, 0.03), e - 0.015, e + 0.015),
        )
        for name in [*names, "broadcast:41", "broadcast:42"]
    ]
    return Figures(tuple(shares), tuple(cohorts), tuple(funnel), tuple(campaigns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    texts = chart_texts(Renderer(ZoneInfo("Europe/Moscow")), "ru")
    started = time.perf_counter()
    draw_now(figures(3), texts, ["funnel"])
    print(f"first chart of the process (matplotlib loaded): {time.perf_counter() - started:.2f} s")
    for label, months in (("3 months", 3), ("3 years", 36)):
        shapes = figures(months)
        for name in CHARTS:
            times, size = [], 0
            for _ in range(args.runs):
                started = time.perf_counter()
                [chart] = draw_now(shapes, texts, [name])
                times.append(time.perf_counter() - started)
                size = len(chart.png)
            print(
                f"{label:8} {name:13} median {statistics.median(times):.3f} s, "
                f"worst {max(times):.3f} s, {size / 1024:.0f} KB"
            )


if __name__ == "__main__":
    main()
