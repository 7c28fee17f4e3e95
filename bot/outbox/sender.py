"""The one sender: delivers due outbox rows within Telegram's limits, never twice in normal work.

A row goes pending → sending (claimed, its text rendered, committed) → sent / failed /
pending again (retry, deferral). Each outcome is committed right after its API call, so a
process killed at any instant leaves at most the rows whose API call was in flight then:
those were claimed, maybe delivered, not yet marked, and are sent again once their claim
lease runs out. That is the duplicate bound: the number of calls in flight at the kill,
at most `messages_per_second × API latency` (about 30 × 0.2 s ≈ 6). Nothing is lost.
"""
from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.types import InlineKeyboardMarkup, Message

from bot.business import Business
from bot.clock import Clock
from bot.db.repositories import Database
from bot.outbox import MARKETING, SERVICE
from bot.outbox.compose import Composer, Obsolete, compose
from bot.outbox.limits import Pacer
from bot.outbox.policy import CAP_WINDOW, Decision, Policy
from bot.rendering import Renderer

log = logging.getLogger("carebot.outbox")

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 3600.0


@dataclass(frozen=True)
class Ready:
    """A claimed row, rendered and ready for its API call."""

    id: int
    key: str
    chat_id: int
    text: str
    markup: dict[str, Any] | None
    customer_id: int | None
    attempts: int
    media: dict[str, Any] | None = None  # {"kind": "photo" | "video" | "animation", "file_id": ...}


@dataclass
class Tally:
    sent: int = 0
    retried: int = 0
    throttled: int = 0
    failed: int = 0
    blocked: int = 0
    deferred: int = 0
    skipped: int = 0
    expired: int = 0

    def add(self, other: Tally) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class OutboxSender:
    def __init__(self, db: Database, bot: Bot, clock: Clock, business: Business, tz: ZoneInfo,
                 render: Renderer, *, batch: int | None = None, pacer: Pacer | None = None,
                 composers: dict[str, Composer] | None = None) -> None:
        self.db = db
        self.composers: dict[str, Composer] = composers if composers is not None else {}
        self.bot = bot
        self.clock = clock
        self.business = business
        self.tz = tz
        self.render = render
        self.policy = Policy(business.marketing, tz)
        limits = business.outbox
        self.pacer = pacer or Pacer(limits.messages_per_second, limits.seconds_per_chat)
        self.batch = batch or max(1, int(limits.messages_per_second * 2))
        self.lease = timedelta(seconds=limits.lease_seconds)
        self.max_attempts = limits.max_attempts
        self.worker = uuid.uuid4().hex[:12]
        self._blocked_chats: set[int] = set()  # 403s seen by this sender: nothing more goes there
        # Key prefixes cancelled while a batch is in flight (a broadcast's cancel button): checked
        # before each call, so a cancel stops the sending within one message, not one batch.
        self.cancelled: set[str] = set()

    # ---- claiming ----------------------------------------------------------------------------

    async def _claim(self, tally: Tally) -> list[Ready]:
        now = self.clock.now()
        ready: list[Ready] = []
        async with self.db.transaction() as repos:
            rows = await repos.outbox.claimable(now, now - self.lease, self.batch)
            customer_ids = {r.customer_id for r in rows if r.customer_id is not None}
            recent = await repos.outbox.recent_marketing(customer_ids, now - CAP_WINDOW) if customer_ids else {}
            for row in rows:
                customer = await repos.customers.get(row.customer_id) if row.customer_id else None
                if row.state == "sending":
                    # Taken up from a sender that died mid-way: it was judged then, and may even
                    # have gone out, so only an erased or blocked customer stops it now.
                    verdict = self.policy.judge(kind=SERVICE, now=now, not_after=now, customer=customer)
                else:
                    verdict = self.policy.judge(kind=row.kind, now=now, not_after=row.not_after, customer=customer,
                                                recent_marketing=recent.get(row.customer_id or 0, []))
                if verdict.decision is Decision.DEFER:
                    row.due_at, row.last_error = verdict.until, verdict.reason  # type: ignore[assignment]
                    tally.deferred += 1
                    continue
                if verdict.decision in (Decision.SKIP, Decision.EXPIRE):
                    row.state = "skipped" if verdict.decision is Decision.SKIP else "expired"
                    row.last_error, row.claimed_at, row.claimed_by = verdict.reason, None, None
                    await repos.coupons.void_issued_for(row.key, now)
                    tally.skipped += verdict.decision is Decision.SKIP
                    tally.expired += verdict.decision is Decision.EXPIRE
                    continue
                chat_id = row.chat_id or (customer.tg_user_id if customer else None)
                if chat_id is None:
                    row.state, row.last_error = "skipped", "erased"
                    tally.skipped += 1
                    continue
                if row.text is None:
                    try:
                        row.text, row.markup = await compose(repos, row, customer, self.business, self.tz,
                                                             self.render, now, self.composers)
                    except Obsolete as reason:
                        row.state, row.last_error, row.claimed_at, row.claimed_by = "skipped", str(reason), None, None
                        tally.skipped += 1
                        continue
                if row.kind == MARKETING and row.customer_id is not None:
                    recent.setdefault(row.customer_id, []).append(now)  # counts toward the cap at once
                row.state, row.claimed_at, row.claimed_by = "sending", now, self.worker
                ready.append(Ready(row.id, row.key, chat_id, row.text, row.markup, row.customer_id, row.attempts,
                                   (row.data or {}).get("media")))
        return ready

    # ---- sending -----------------------------------------------------------------------------

    async def _send_one(self, item: Ready, tally: Tally) -> None:
        await self.pacer.wait_turn(item.chat_id)
        if item.chat_id in self._blocked_chats:  # an earlier message of this batch met a 403
            tally.skipped += 1
            await self._finish(item, "skipped", error="blocked", attempts=item.attempts)
            return
        if self.cancelled and item.key.startswith(tuple(self.cancelled)):
            tally.skipped += 1
            await self._finish(item, "skipped", error="cancelled", attempts=item.attempts)
            return
        markup = InlineKeyboardMarkup.model_validate(item.markup) if item.markup else None
        try:
            message = await self._deliver(item, markup)
        except TelegramRetryAfter as error:
            self.pacer.pause(error.retry_after)
            tally.throttled += 1
            await self._again(item, timedelta(seconds=error.retry_after), f"429 retry after {error.retry_after}s",
                              count_attempt=False)
        except TelegramForbiddenError as error:
            tally.blocked += 1
            self._blocked_chats.add(item.chat_id)
            await self._blocked(item, error.message)
        except TelegramBadRequest as error:
            tally.failed += 1
            await self._finish(item, "failed", error=f"400 {error.message}")
        except (TelegramNetworkError, TelegramAPIError, TimeoutError) as error:
            # 5xx and network trouble: exponential backoff with jitter, up to max_attempts
            attempts = item.attempts + 1
            if attempts >= self.max_attempts:
                tally.failed += 1
                await self._finish(item, "failed", error=f"gave up: {error}"[:300], attempts=attempts)
            else:
                tally.retried += 1
                delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
                await self._again(item, timedelta(seconds=delay * random.uniform(0.5, 1.5)),
                                  f"{type(error).__name__}: {error}"[:300])
        else:
            tally.sent += 1
            await self._finish(item, "sent", message_id=message.message_id)

    async def _deliver(self, item: Ready, markup: InlineKeyboardMarkup | None) -> Message:
        """The API call: a text, or a photo / video / animation with the text as its caption."""
        media = item.media
        if not media:
            return await self.bot.send_message(item.chat_id, item.text, reply_markup=markup)
        kind, file_id = media["kind"], media["file_id"]
        if kind == "photo":
            return await self.bot.send_photo(item.chat_id, file_id, caption=item.text, reply_markup=markup)
        if kind == "video":
            return await self.bot.send_video(item.chat_id, file_id, caption=item.text, reply_markup=markup)
        return await self.bot.send_animation(item.chat_id, file_id, caption=item.text, reply_markup=markup)

    async def _finish(self, item: Ready, state: str, *, error: str | None = None, message_id: int | None = None,
                      attempts: int | None = None) -> None:
        now = self.clock.now()
        async with self.db.transaction() as repos:
            row = await repos.outbox.get(item.id)
            if row is None:
                return
            row.state, row.last_error, row.claimed_at, row.claimed_by = state, error, None, None
            row.attempts = attempts if attempts is not None else row.attempts + 1
            if state == "sent":
                row.sent_at, row.message_id = now, message_id
            else:
                await repos.coupons.void_issued_for(row.key, now)
        if state == "failed":
            log.warning("outbox message failed key=%s error=%s", item.key, error)

    async def _again(self, item: Ready, delay: timedelta, error: str, count_attempt: bool = True) -> None:
        async with self.db.transaction() as repos:
            row = await repos.outbox.get(item.id)
            if row is None:
                return
            row.state, row.claimed_at, row.claimed_by = "pending", None, None
            row.due_at = self.clock.now() + delay
            row.last_error = error
            row.attempts += 1 if count_attempt else 0

    async def _blocked(self, item: Ready, error: str) -> None:
        """403: the customer blocked the bot. Mark them; nothing more is sent or queued for them."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            row = await repos.outbox.get(item.id)
            if row is not None:
                row.state, row.last_error, row.claimed_at, row.claimed_by = "failed", f"403 {error}"[:300], None, None
                row.attempts += 1
                await repos.coupons.void_issued_for(row.key, now)
            if item.customer_id is not None:
                customer = await repos.customers.get(item.customer_id, for_update=True)
                if customer is not None and customer.blocked_at is None:
                    customer.blocked_at = now
                await repos.outbox.skip_pending_of(item.customer_id, "blocked")

    # ---- loops -------------------------------------------------------------------------------

    async def _pump(self, stop: asyncio.Event | None, idle_seconds: float = 1.0) -> Tally:
        """Keep the pacer fed: the next batch is claimed while the last half of this one is still
        going out, so claiming and rendering never leave a gap in the sending (claiming one batch
        and waiting for all of it cost about a tenth of the rate). With no `stop` it returns once
        nothing is due and nothing is in flight (`drain`); with one it idles and goes on until set.
        """
        total = Tally()
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while stop is None or not stop.is_set():
                claimed = 0
                if len(in_flight) <= self.batch // 2:
                    try:
                        ready = await self._claim(total)
                    except Exception:
                        if stop is None:
                            raise
                        log.exception("outbox sender could not claim rows; retrying shortly")
                        ready = []
                    claimed = len(ready)
                    in_flight.update(asyncio.create_task(self._send_one(item, total)) for item in ready)
                if in_flight:
                    done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    self._check(done, stop is None)
                elif stop is None:
                    return total
                elif not claimed:
                    try:
                        await asyncio.wait_for(stop.wait(), idle_seconds)
                    except TimeoutError:
                        pass
        finally:
            if in_flight:  # stopping: what is claimed goes out (or is marked) before we return
                done, _ = await asyncio.wait(in_flight)
                self._check(done, False)
        return total

    @staticmethod
    def _check(done: set[asyncio.Task[None]], raise_errors: bool) -> None:
        for task in done:
            error = task.exception()
            if error is None:
                continue
            if raise_errors:
                raise error
            log.error("outbox sender failed to record a message's outcome; its lease will bring it back",
                      exc_info=error)

    async def drain(self) -> Tally:
        """Deliver until nothing is due now (`carebot tick`, tests)."""
        return await self._pump(None)

    async def run(self, stop: asyncio.Event, idle_seconds: float = 1.0) -> None:
        """The long-running sender of `carebot run`; stops when `stop` is set, after what it has claimed."""
        await self._pump(stop, idle_seconds)
