"""The owner's numbers broken down: per master, per deep-link source, and the onboarding funnel
(`/stats masters|sources|funnel [period]`), beside the summary of `bot.services.stats`.

- **Per master** (article 002 pays staff by repeat sales): a master's *repeat share* is the share
  of their sales in the period that were repeat sales, by the summary's rule (the customer had
  bought before, from anyone, imported history included). Crediting the sale to whoever served the
  returning customer makes the masters' repeat sales add up to the summary's; a master whose
  customers come back to them keeps the credit, one who loses them to a colleague gives it up.
  Beside it: their visits (sales), the average satisfaction score of the surveys answered in the
  period about their visits, and their no-show rate (bookings starting in the period: no-shows of
  those done or no-show).
- **Per source** (`t.me/<bot>?start=src_…`): customers who joined in Telegram in the period, how
  many of them bought since, and how many bought again.
- **The funnel** (article 004: look at the losses at each step every season), for the customers
  who joined in the period: started → consented → phone → birthday → welcome coupon → first
  purchase → second purchase. Steps are nested (a customer counts at a step when they reached it
  and every step before it), so each drop is the loss at that step and they add up. Nothing
  about a person is stored before the consent button (152-FZ), so *started* is the newcomers'
  /start counted anonymously per local day (`bot.services.onboarding_starts`; a second press
  before consenting is not counted again), and never fewer than *consented*: days before that
  counter existed (migration 0015) have no count, and a customer who consented in the period
  may have pressed /start before it. Imported customers without Telegram are not in it;
  purchases count from joining up to today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from bot.business import Business
from bot.clock import Clock
from bot.db.repositories import Database
from bot.db.stats_breakdowns import SourceJoined
from bot.services.stats import Period, parse_period
from bot.services.stats_figures import FUNNEL_KEYS, FunnelStep, share


@dataclass(frozen=True)
class MasterFigures:
    """One master's period. `master_id` None: sales recorded without a master; `name` is the
    business file's (None for a master no longer in it, or for no master)."""

    master_id: str | None
    name: str | None
    sales: int = 0
    repeat: int = 0
    money_minor: int = 0
    customers: int = 0
    answers: int = 0  # satisfaction scores given
    score_sum: int = 0
    done: int = 0  # bookings done
    no_show: int = 0

    @property
    def repeat_share(self) -> float | None:
        return share(self.repeat, self.sales)

    @property
    def csat(self) -> float | None:
        """The average score, 1–5, to one decimal."""
        return round(self.score_sum / self.answers, 1) if self.answers else None

    @property
    def no_show_rate(self) -> float | None:
        return share(self.no_show, self.done + self.no_show)


@dataclass(frozen=True)
class SourceFigures:
    """One source's customers who joined in the period (`source` None: no deep link)."""

    source: str | None
    joined: int
    bought: int  # at least once since joining
    bought_again: int  # at least twice

    @property
    def bought_share(self) -> float | None:
        return share(self.bought, self.joined)

    @property
    def again_share(self) -> float | None:
        """Of those who bought, the share who bought again."""
        return share(self.bought_again, self.bought)


def funnel_of(rows: list[SourceJoined], started: int = 0) -> list[FunnelStep]:
    """The funnel of all sources together, in `FUNNEL_KEYS` order. `started`: the starts counted
    in the period; shown as at least the consented (days before the counter have none)."""

    def total(field: str) -> int:
        return sum(getattr(row, field) for row in rows)

    joined = total("joined")
    counts = [max(started, joined), joined, *(total(key) for key in FUNNEL_KEYS[2:])]
    return [FunnelStep(key, n) for key, n in zip(FUNNEL_KEYS, counts, strict=True)]


def drops(steps: list[FunnelStep]) -> list[int | None]:
    """Each step's loss from the step before (None for the first)."""
    return [None] + [a.customers - b.customers for a, b in zip(steps, steps[1:], strict=False)]


class StatsBreakdownService:
    def __init__(self, db: Database, clock: Clock, tz: ZoneInfo, business: Business) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz
        self.business = business

    def today(self) -> date:
        return self.clock.now().astimezone(self.tz).date()

    def period(self, text: str | None) -> Period | None:
        """The period asked for, as `/stats` reads it (`bot.services.stats.parse_period`)."""
        return parse_period(text, self.today())

    async def masters(self, period: Period) -> list[MasterFigures]:
        """Every master of the business file (in its order, with zeros when idle), then masters
        no longer in it who have figures, then sales without a master, if any. Three statements
        in one read snapshot."""
        start, end = period.bounds(self.tz)
        async with self.db.reading() as repos:
            sales = await repos.stats_breakdowns.master_sales(start, end)
            surveys = await repos.stats_breakdowns.master_surveys(start, end)
            bookings = await repos.stats_breakdowns.master_bookings(start, end)
        figures: dict[str | None, dict[str, int]] = {m.id: {} for m in self.business.masters}
        for s in sales:
            figures.setdefault(s.master_id, {}).update(
                sales=s.sales, repeat=s.repeat, money_minor=s.money_minor, customers=s.customers
            )
        for v in surveys:
            figures.setdefault(v.master_id, {}).update(answers=v.answers, score_sum=v.score_sum)
        for b in bookings:
            figures.setdefault(b.master_id, {}).update(done=b.done, no_show=b.no_show)
        known = [m.id for m in self.business.masters]
        gone = sorted(k for k in figures if k is not None and k not in known)
        order: list[str | None] = [*known, *gone, *([None] if None in figures else [])]
        names = {m.id: m.name for m in self.business.masters}
        return [MasterFigures(k, names.get(k) if k else None, **figures[k]) for k in order]

    async def sources(self, period: Period) -> list[SourceFigures]:
        """The sources of the customers who joined in the period, most joined first (then by
        name; no source last among equals)."""
        rows = await self._joined(period)
        found = [SourceFigures(r.source, r.joined, r.bought, r.bought_again) for r in rows]
        return sorted(found, key=lambda s: (-s.joined, s.source is None, s.source or ""))

    async def funnel(self, period: Period) -> list[FunnelStep]:
        """The onboarding funnel of the customers who joined in the period (`FUNNEL_KEYS`),
        started being the newcomers' /start counted on its days (at least the consented)."""
        start, end = period.bounds(self.tz)
        async with self.db.reading() as repos:
            joined = await repos.stats_breakdowns.joined_by_source(start, end)
            started = await repos.onboarding_starts.between(period.first_day, period.last_day)
        return funnel_of(joined, started)

    async def _joined(self, period: Period) -> list[SourceJoined]:
        start, end = period.bounds(self.tz)
        async with self.db.reading() as repos:
            return await repos.stats_breakdowns.joined_by_source(start, end)
