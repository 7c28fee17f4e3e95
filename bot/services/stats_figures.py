"""The shapes of the owner's numbers that more than one part of `/stats` uses.

The database side (`bot.db.stats*`) fills them, the text templates and the charts
(`bot.services.charts`) read them, `/stats export` writes them as CSV. Plain frozen dataclasses
of ints, dates and fractions: a chart is drawn in a worker thread from them alone, without the
database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


def share(part: int, whole: int) -> float | None:
    """part / whole as a fraction (0.3 is 30 %), None when there is no whole."""
    return part / whole if whole else None


@dataclass(frozen=True)
class MonthShare:
    """One calendar month's sales, split into first and repeat (the repeat-share chart)."""

    month: date  # its first day
    sales: int
    repeat: int
    money_minor: int
    repeat_minor: int

    @property
    def repeat_share(self) -> float | None:
        return share(self.repeat, self.sales)

    @property
    def repeat_money_share(self) -> float | None:
        return share(self.repeat_minor, self.money_minor)


@dataclass(frozen=True)
class Cohort:
    """Customers by the month of their first purchase (the retention heatmap).

    `returned[k]` is how many of them bought again in the k-th calendar month after that month
    (`returned[0]`: again within the first month itself); the list stops at the current month.
    """

    month: date  # the first day of the month of their first purchase
    customers: int
    returned: tuple[int, ...]
    revenue_12m_minor: int = 0  # what they spent in their first 12 months (LTV = this / customers)

    def retention(self, k: int) -> float | None:
        return share(self.returned[k], self.customers) if k < len(self.returned) else None

    @property
    def ltv_minor(self) -> int | None:
        return round(self.revenue_12m_minor / self.customers) if self.customers else None


FUNNEL_KEYS = (
    "started",
    "consented",
    "phone",
    "birthday",
    "coupon",
    "first_purchase",
    "second_purchase",
)  # the onboarding funnel's steps, in order (each names a label in the templates)


@dataclass(frozen=True)
class FunnelStep:
    """One step of onboarding and after: started, consented, phone, birthday, coupon,
    first_purchase, second_purchase (the key names a label in the templates)."""

    key: str
    customers: int


@dataclass(frozen=True)
class Interval:
    """A difference of two shares with its 95 % confidence interval (fractions)."""

    difference: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval does not contain zero."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class ArmOutcome:
    """What one arm of a campaign did: the customers assigned to it (the holdout included, who
    got nothing), and within the report's window of N days after the assignment."""

    arm: str  # "a", "b" (variants; "a" when there is one text) or "holdout"
    customers: int
    sent: int
    redeemed: int  # the campaign's coupon used
    came_back: int  # bought within N days
    revenue_minor: int  # spent within N days

    @property
    def came_back_share(self) -> float | None:
        return share(self.came_back, self.customers)


@dataclass(frozen=True)
class CampaignResult:
    """One automatic message or broadcast in the period, its arms and the lifts."""

    campaign: str  # "welcome", "birthday", "holiday", "thanks", "expiry", "due_offer",
    # "reactivation", "broadcast:<id>"
    arms: tuple[ArmOutcome, ...]
    lift: Interval | None  # came back: the campaign (all variants) minus the holdout
    variants: Interval | None  # came back: variant b minus variant a
