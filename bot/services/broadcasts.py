"""Broadcasts: an owner's message to a segment, queued into the outbox, watched, reported.

Queueing is one INSERT … SELECT of outbox rows keyed `broadcast:<id>:<customer>` with "on
conflict do nothing": a restart in the middle, or queueing twice, sends nobody a second copy.
Delivery is the outbox sender's (limits, quiet hours, the weekly cap, opt-out); each message
carries an "unsubscribe" button. Cancelling skips what is still waiting and tells the running
sender, which checks before every call.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from bot.business import Business
from bot.buttons import BroadcastReport, Button, Keyboard, OpenBooking, OpenUrl, Unsubscribe
from bot.clock import Clock, local_today
from bot.db import queries
from bot.db.models import (
    OUTBOX_WAITING,
    Broadcast,
    BroadcastState,
    Customer,
    OutboxError,
    OutboxMessage,
    OutboxState,
)
from bot.db.repositories import Database, Repos
from bot.outbox import SERVICE
from bot.outbox.compose import Obsolete, stop_hint_room
from bot.outbox.policy import Policy
from bot.rendering import LANGUAGES, Renderer
from bot.services.segments import Condition, Segments
from bot.telegram_text import CAPTION_LIMIT, TEXT_LIMIT, visible_len

if TYPE_CHECKING:
    from bot.features import Features

log = logging.getLogger("carebot.broadcasts")

STALE_AFTER = timedelta(days=3)  # a broadcast that could not go out in three days is not sent
BOOKINGS_WINDOW = timedelta(days=7)  # a recipient's booking within a week counts for the broadcast


def prefix(broadcast_id: int) -> str:
    return f"broadcast:{broadcast_id}:"


@dataclass
class Progress:
    id: int
    state: str
    recipients: int
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    skipped: int = 0
    waiting: int = 0  # pending or being sent
    held_out: int = 0  # the control group (`[campaigns]`): never sent, not among the recipients
    starts_at: datetime | None = None
    expected_end: datetime | None = None
    redeemed: int = 0  # coupons of this broadcast redeemed so far
    bookings: int = 0  # bookings its recipients made within a week of receiving it
    # Sent as a paid broadcast (`[broadcasts] allow_paid_broadcast`): once it is all sent, the
    # messages past Telegram's free 30 a second, and what they cost in Stars (paid_cost()).
    paid: bool = False
    paid_messages: int = 0
    stars: Decimal = Decimal(0)

    @property
    def finished(self) -> bool:
        return self.state in (BroadcastState.DONE, BroadcastState.CANCELLED)


FREE_PER_SECOND = 30  # what Telegram lets a bot send for free
STARS_PER_PAID_MESSAGE = Decimal("0.1")


def paid_cost(moments: Iterable[datetime]) -> tuple[int, Decimal]:
    """What a paid broadcast cost: Telegram charges 0.1 Star for each message past the free 30
    a second. Its deliveries are counted per second of the clock (by `sent_at`); in each second,
    the messages past the first 30 are paid. Returns (paid messages, Stars)."""
    seconds = Counter(int(moment.timestamp()) for moment in moments)
    paid = sum(max(0, n - FREE_PER_SECOND) for n in seconds.values())
    return paid, paid * STARS_PER_PAID_MESSAGE


@dataclass(frozen=True)
class _WidestCoupon:
    valid_until: date
    code: str = "ABCD2345"
    percent: int | None = None
    amount: int = 999_999  # the wizard takes up to six digits


class BroadcastService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        business: Business,
        tz: ZoneInfo,
        render: Renderer,
        admin_chat_id: int | None,
        cancelled: set[str] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz
        self.render = render
        self.admin_chat_id = admin_chat_id
        self.segments = Segments(business, tz)
        self.policy = Policy(business.marketing, tz)
        self.cancelled = cancelled if cancelled is not None else set()

    def register(self, features: Features) -> None:
        features.plan("broadcasts", self.queue_due)
        features.compose(self.compose, "broadcast", "broadcast_report")

    # ---- before sending ------------------------------------------------------------------------

    async def count(self, conditions: list[Condition]) -> int:
        async with self.db.reading() as repos:
            return await repos.customers.count_in(self.segments.where(conditions, self.clock.now()))

    def today(self) -> date:
        return local_today(self.clock, self.tz)

    def waits_until(self, starts_at: datetime) -> datetime | None:
        """When a broadcast starting then would really start, if quiet hours hold it back."""
        return self.policy.quiet_until(max(starts_at, self.clock.now()))

    async def create(
        self,
        *,
        by: str,
        content: dict[str, Any],
        buttons: list[dict[str, Any]],
        coupon: dict[str, Any] | None,
        conditions: list[Condition],
        starts_at: datetime | None,
        progress_chat_id: int | None = None,
    ) -> int:
        now = self.clock.now()
        async with self.db.transaction() as repos:
            broadcast = Broadcast(
                created_by=by,
                created_at=now,
                content=content,
                buttons=buttons,
                coupon=coupon,
                segment=[c.as_json() for c in conditions],
                starts_at=starts_at or now,
                state=BroadcastState.SCHEDULED,
                progress_chat_id=progress_chat_id,
            )
            return (await repos.broadcasts.add(broadcast)).id

    async def set_progress_message(self, broadcast_id: int, chat_id: int, message_id: int) -> None:
        async with self.db.transaction() as repos:
            broadcast = await repos.broadcasts.get(broadcast_id)
            if broadcast is not None:
                broadcast.progress_chat_id, broadcast.progress_message_id = chat_id, message_id

    # ---- queueing ----------------------------------------------------------------------------------

    @staticmethod
    def _coupon_data(coupon: dict[str, Any] | None) -> dict[str, Any]:
        """A coupon unique to each recipient, made when their message goes, valid through the day promised."""
        if not coupon:
            return {}
        return {
            "coupon": {
                "kind": "broadcast",
                "percent": coupon.get("percent"),
                "amount": coupon.get("amount"),
                "last_day": coupon["last_day"],
            }
        }

    async def queue_due(self) -> int:
        """Scheduled broadcasts whose time came: one outbox row per recipient, set-wise."""
        now = self.clock.now()
        queued = 0
        async with self.db.reading(
            snapshot=False
        ) as repos:  # every two seconds: nothing due takes no write lock
            if not await repos.broadcasts.any_due(now):
                return queued
        async with self.db.transaction() as repos:
            for broadcast in await repos.broadcasts.due(now):
                not_after = now + STALE_AFTER
                if broadcast.coupon:  # nothing after the coupon's last day
                    last_day = date.fromisoformat(broadcast.coupon["last_day"])
                    not_after = min(
                        not_after,
                        datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=self.tz),
                    )
                data = {"broadcast_id": broadcast.id, **self._coupon_data(broadcast.coupon)}
                if broadcast.content.get("kind", "text") != "text":
                    data["media"] = {
                        "kind": broadcast.content["kind"],
                        "file_id": broadcast.content["file_id"],
                    }
                rows = queries.broadcast_rows(
                    prefix(broadcast.id),
                    data=data,
                    now=now,
                    not_after=not_after,
                    due_at=self.policy.morning(now),
                    segment=self.segments.where([Condition.of(c) for c in broadcast.segment], now),
                )
                broadcast.recipients = await repos.outbox.plan(rows)
                broadcast.state, broadcast.queued_at = BroadcastState.SENDING, now
                queued += broadcast.recipients
                log.info("broadcast queued id=%s recipients=%s", broadcast.id, broadcast.recipients)
        return queued

    # ---- while sending -----------------------------------------------------------------------------

    async def cancel(self, broadcast_id: int, by: str) -> bool:
        """Stop it: what waits is skipped, and the running sender skips its claimed rows too."""
        self.cancelled.add(prefix(broadcast_id))
        async with self.db.transaction() as repos:
            broadcast = await repos.broadcasts.get(broadcast_id, for_update=True)
            if broadcast is None or broadcast.state not in (
                BroadcastState.SCHEDULED,
                BroadcastState.SENDING,
            ):
                return False
            broadcast.state, broadcast.cancelled_by, broadcast.finished_at = (
                BroadcastState.CANCELLED,
                by,
                self.clock.now(),
            )
            await repos.outbox.skip_pending("cancelled", prefix=prefix(broadcast_id))
            return True

    async def _progress(self, repos: Repos, broadcast: Broadcast) -> Progress:
        progress = Progress(
            broadcast.id, broadcast.state, broadcast.recipients or 0, starts_at=broadcast.starts_at
        )
        for state, code, n in await repos.broadcasts.outcomes(prefix(broadcast.id)):
            if state == OutboxState.SENT:
                progress.sent += n
            elif state in OUTBOX_WAITING:
                progress.waiting += n
            elif code == OutboxError.HOLDOUT:
                progress.held_out += n
            elif code == OutboxError.BLOCKED:  # a 403, or known blocked before it was sent
                progress.blocked += n
            elif state == OutboxState.FAILED:
                progress.failed += n
            else:  # skipped (opted out meanwhile, cancelled) or expired
                progress.skipped += n
        progress.recipients -= progress.held_out
        if progress.waiting:
            start = max(self.clock.now(), self.policy.morning(self.clock.now()))
            rate = (
                self.business.broadcasts.paid_messages_per_second
                if self.business.broadcasts.allow_paid_broadcast
                else self.business.outbox.messages_per_second
            )
            progress.expected_end = start + timedelta(seconds=progress.waiting / rate)
        if self.business.broadcasts.allow_paid_broadcast and not progress.waiting:
            moments = await repos.broadcasts.sent_moments(prefix(broadcast.id))
            progress.paid = True
            progress.paid_messages, progress.stars = paid_cost(moments)
        progress.redeemed = await repos.broadcasts.redeemed(prefix(broadcast.id))
        if broadcast.queued_at is not None:
            progress.bookings = await self._bookings_after(repos, broadcast.id, broadcast.queued_at)
        return progress

    @staticmethod
    async def _bookings_after(repos: Repos, broadcast_id: int, queued_at: datetime) -> int:
        """Bookings its recipients made within a week of receiving it (compared here rather than
        in SQL: date arithmetic differs between SQLite and PostgreSQL; the bookings are few)."""
        pairs = await repos.broadcasts.bookings_after(prefix(broadcast_id), queued_at)
        return sum(
            1
            for created, sent_at in pairs
            if sent_at and sent_at <= created <= sent_at + BOOKINGS_WINDOW
        )

    async def progress(self, broadcast_id: int) -> Progress | None:
        async with self.db.reading() as repos:
            broadcast = await repos.broadcasts.get(broadcast_id)
            return await self._progress(repos, broadcast) if broadcast else None

    async def watch(self) -> list[tuple[Progress, int, int]]:
        """For the progress message: every broadcast being sent (and its message), and those
        that just finished, marked done and reported to the admin chat through the outbox.
        Counted in a read, which waits for no writer: this runs every two seconds beside the sender."""
        now = self.clock.now()
        async with self.db.reading() as repos:
            sending = await repos.broadcasts.sending()
            found = [
                (await self._progress(repos, b), b.progress_chat_id, b.progress_message_id)
                for b in sending
            ]
        finished = [progress.id for progress, _, _ in found if not progress.waiting]
        if finished:
            async with self.db.transaction() as repos:
                for broadcast_id in finished:
                    broadcast = await repos.broadcasts.get(broadcast_id)
                    if broadcast is None or broadcast.state != BroadcastState.SENDING:
                        continue  # cancelled meanwhile
                    broadcast.state, broadcast.finished_at = BroadcastState.DONE, now
                    if broadcast.progress_chat_id is not None:
                        await repos.outbox.queue(
                            key=f"broadcast_report:{broadcast.id}",
                            kind=SERVICE,
                            template="broadcast_report",
                            chat_id=broadcast.progress_chat_id,
                            data={"broadcast_id": broadcast.id},
                            not_before=now,
                            not_after=now + timedelta(days=2),
                            now=now,
                        )
        for progress, _, _ in found:
            if progress.id in finished:
                progress.state = BroadcastState.DONE
        return [
            (progress, chat_id, message_id)
            for progress, chat_id, message_id in found
            if chat_id is not None and message_id is not None
        ]

    # ---- composing ---------------------------------------------------------------------------------

    def content_limit(self, kind: str) -> int:
        """How long the owner's text (or caption) may be, in Telegram's units, so that it still
        fits with the longest coupon line in any language (the coupon is chosen after the text)
        and the line a customer's first offer ends with, on how to stop them."""
        limit = TEXT_LIMIT if kind == "text" else CAPTION_LIMIT
        widest = _WidestCoupon(date(2026, 12, 31))  # the longest date in any language's format
        gift = max(
            visible_len(
                self.render.text(
                    lang, "broadcast", content=Markup("x"), coupon=widest, business=self.business
                )
            )
            - 1
            for lang in LANGUAGES
        )
        return limit - gift - stop_hint_room(self.render, LANGUAGES)

    async def compose(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard]:
        broadcast = await repos.broadcasts.get(int(row.data["broadcast_id"]))
        if broadcast is None or broadcast.state == BroadcastState.CANCELLED:
            raise Obsolete("broadcast cancelled")
        if row.template == "broadcast_report":
            progress = await self._progress(repos, broadcast)
            return {"progress": progress}, self.report_keyboard(broadcast.id)
        lang = customer.language if customer else self.business.staff_language
        return {"content": Markup(broadcast.content.get("html", ""))}, self.keyboard(
            broadcast.buttons, lang
        )

    def keyboard(self, buttons: list[dict[str, Any]], lang: str) -> Keyboard:
        """The owner's buttons, then "unsubscribe" (as sent and as previewed)."""
        rows: list[list[Button]] = []
        for button in buttons:
            if button.get("book"):
                rows.append([Button(self.render.label(lang, "book"), OpenBooking())])
            else:
                rows.append([Button(button["text"], OpenUrl(button["url"]))])
        rows.append([Button(self.render.label(lang, "unsubscribe"), Unsubscribe())])
        return rows

    def report_keyboard(self, broadcast_id: int) -> Keyboard:
        lang = self.business.staff_language
        return [
            [Button(self.render.label(lang, "broadcast_refresh"), BroadcastReport(broadcast_id))]
        ]
