"""The one place that decides whether a queued message may go now: quiet hours, the weekly cap,
opt-out, erasure and blocking. Service messages ignore quiet hours and caps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.business import Marketing
from bot.db.models import Customer
from bot.outbox import MARKETING

CAP_WINDOW = timedelta(days=7)
# Marketing to a customer who has not yet agreed to the current privacy text waits this long at a
# time (they are asked again at their next message), until it is too late for it.
PRIVACY_HOLD = timedelta(hours=1)


class Decision(StrEnum):
    SEND = "send"
    DEFER = "defer"  # not now: try again at `until`
    SKIP = "skip"  # never, for this customer (opted out, erased, blocked)
    EXPIRE = "expire"  # too late to be worth sending


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    until: datetime | None = None
    reason: str | None = None


class Policy:
    def __init__(
        self, marketing: Marketing, tz: ZoneInfo, privacy_version: str | None = None
    ) -> None:
        self.privacy_version = privacy_version  # None: not checked (planners only plan)
        self.per_week = marketing.per_week
        self.quiet_start, self.quiet_end = marketing.quiet()
        self.tz = tz

    def quiet_until(self, moment: datetime) -> datetime | None:
        """The end of the quiet hours `moment` falls in, or None when it is not quiet."""
        local = moment.astimezone(self.tz)
        t = local.time()
        start, end = self.quiet_start, self.quiet_end
        if start == end:
            return None
        crosses_midnight = start > end
        quiet = (t >= start or t < end) if crosses_midnight else (start <= t < end)
        if not quiet:
            return None
        day = local.date() + timedelta(days=1) if crosses_midnight and t >= start else local.date()
        return datetime.combine(day, end, tzinfo=self.tz)

    def morning(self, moment: datetime) -> datetime:
        """`moment`, or the end of the quiet hours when it falls into them."""
        return self.quiet_until(moment) or moment

    def judge(
        self,
        *,
        kind: str,
        now: datetime,
        not_after: datetime,
        customer: Customer | None,
        recent_marketing: Sequence[datetime] = (),
    ) -> Verdict:
        if now > not_after:
            return Verdict(Decision.EXPIRE, reason="late")
        if customer is not None:
            if customer.erased_at is not None or customer.tg_user_id is None:
                return Verdict(Decision.SKIP, reason="erased")
            if customer.blocked_at is not None:
                return Verdict(Decision.SKIP, reason="blocked")
        if kind != MARKETING:
            return Verdict(Decision.SEND)
        # Offers only to a customer with a current consent to them (none: declined, withdrawn by
        # /stop or the unsubscribe button, imported without one; or no customer at all).
        if customer is None or customer.marketing_opt_out:
            return Verdict(Decision.SKIP, reason="opted_out")
        if self.privacy_version and customer.data_consent_version != self.privacy_version:
            # they are to agree to the new privacy text first
            if now + PRIVACY_HOLD > not_after:
                return Verdict(Decision.EXPIRE, reason="privacy_outdated")
            return Verdict(Decision.DEFER, until=now + PRIVACY_HOLD, reason="privacy_outdated")
        later = self.quiet_until(now)
        reason = "quiet_hours"
        if later is None and len(recent_marketing) >= self.per_week:
            if self.per_week == 0:
                return Verdict(Decision.SKIP, reason="no_marketing")
            # the week is full: wait until the oldest of the last N falls out of the window
            later = self.morning(sorted(recent_marketing)[-self.per_week] + CAP_WINDOW)
            reason = "weekly_cap"
        if later is None:
            return Verdict(Decision.SEND)
        if later > not_after:
            return Verdict(Decision.EXPIRE, reason=reason)
        return Verdict(Decision.DEFER, until=later, reason=reason)
