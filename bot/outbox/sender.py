"""The one sender: delivers due outbox rows within Telegram's limits, never twice in normal work.

A row goes pending → sending (claimed, its text rendered, committed) → sent / failed /
pending again (retry, deferral). Each outcome is committed right after its API call (the
deliveries that came back while one write was under way go in the next, together), so a
process killed at any instant leaves at most the rows whose API call was in flight then, or
whose outcome was still being written: those were claimed, maybe delivered, not yet marked,
and are sent again once their claim lease runs out. That is the duplicate bound: about
`messages_per_second × (API latency + one write)` (about 30 × 0.2 s ≈ 6). Nothing is lost.

Relays (what a customer wrote, for the staff chat; a staff reply, for the customer) are rows
too, written before anything is sent. They are claimed before everything else, one *lane*
(a customer's words, a customer's replies) at a time so their order is kept, and the rows of
one lane that are due together go as one group: a customer's flood reaches the staff chat as
a few coalesced posts, never one post per message.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot.business import Business
from bot.clock import Clock
from bot.db.models import OutboxError, OutboxMessage, OutboxState
from bot.db.repositories import Database, Repos
from bot.metrics import OUTBOX_FAILED, OUTBOX_SENT, RETRIES
from bot.outbox import MARKETING, RELAY, SERVICE
from bot.outbox.compose import Composer, Obsolete, compose
from bot.outbox.errors import Blocked, RetryAfter, Withdrawn, describe, is_transient
from bot.outbox.limits import DELIVERY, Delivery, Limiter, Priority, is_group
from bot.outbox.policy import CAP_WINDOW, Decision, Policy
from bot.rendering import Renderer

log = logging.getLogger("carebot.outbox")

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 3600.0
# A row still waiting for its turn this far into its claim's lease goes back instead of out.
LEASE_SHARE = 0.8
PAID_BATCH_SECONDS = 0.3
PAID_PREFIX = (
    "broadcast:"  # a broadcast's rows (bot/services/broadcasts.py): paid ones when allowed
)


Sent = tuple[int, int | None]  # an outbox row delivered, and the message id Telegram gave it


class SentMarks:
    """Delivered rows marked sent by a group commit: while one write is under way, the rows that
    come back meanwhile gather and go together in the next. A message or two a second are each
    written at once, alone; a paid broadcast's hundreds a second share a transaction by the dozen
    (one transaction per message was most of the sender's CPU). Each caller returns once its own
    rows are committed, as before. A write that fails is tried again a few times (a database
    restarting), then its callers hear of it (`NotMarked`). Hand-written: a few lines around one
    asyncio task, which no library we use offers."""

    def __init__(
        self,
        write: Callable[[list[Sent]], Awaitable[None]],
        retry_after: tuple[float, ...] = (0.2, 1.0, 3.0),
    ) -> None:
        self._write = write
        self._retry_after = retry_after
        self._waiting: list[tuple[list[Sent], asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def mark(self, sent: list[Sent]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((sent, future))
        if self._writing is None or self._writing.done():
            # a task of its own, so a caller stopped meanwhile does not stop the write (the
            # message did go), and a context of its own: nothing of the first caller's (a
            # conversation's write riding along, `bot.db.repositories.ALONG`) goes into it
            self._writing = asyncio.create_task(self._write_all(), context=contextvars.Context())
        await future

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._write_with_retries([row for sent, _ in batch for row in sent])
            except BaseException as error:
                stopped = not isinstance(error, Exception)
                if stopped:  # the write itself was stopped: nobody is left waiting for it
                    batch, self._waiting = batch + self._waiting, []
                for _, future in batch:
                    if not future.done():
                        future.set_exception(NotMarked(str(error) or type(error).__name__))
                if stopped:
                    raise
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def _write_with_retries(self, rows: list[Sent]) -> None:
        for delay in (*self._retry_after, None):
            try:
                await self._write(rows)
                return
            except Exception:
                if delay is None:
                    raise
                log.warning("could not mark %s delivered rows sent; again in %gs", len(rows), delay)
                await asyncio.sleep(delay)


class NotMarked(Exception):
    """Rows delivered but not marked sent (the database kept failing): they stay claimed, and come
    back to the queue when their claim's lease runs out (then they may be sent twice)."""


@dataclass(frozen=True)
class Ready:
    """A claimed row (or a lane's group of rows), rendered and ready for its API calls."""

    id: int
    key: str
    chat_id: int
    text: str
    markup: dict[str, Any] | None
    customer_id: int | None
    attempts: int
    media: dict[str, Any] | None = None  # {"kind": "photo" | "video" | "animation", "file_id": ...}
    template: str = ""
    kind: str = SERVICE
    data: dict[str, Any] = field(default_factory=dict)
    # A lane's group: (row id, row data) of every row, in the order they were written.
    parts: tuple[tuple[int, dict[str, Any]], ...] = ()
    lane: str | None = None

    @property
    def row_ids(self) -> list[int]:
        return [row_id for row_id, _ in self.parts] or [self.id]


class Transport(Protocol):
    """The messenger's side of a row (the Telegram edge's `handlers.outbox_client.TelegramTransport`)."""

    async def send(self, item: Ready) -> int:
        """One row's API call; the new message's id. Raises `bot.outbox.errors`' kinds (Blocked,
        RetryAfter, Transient, Refused) or Withdrawn."""
        ...


# Marks rows delivered as soon as their message is out: (row ids, the message's id).
Done = Callable[[list[int], int | None], Awaitable[None]]
# Sends a group of rows its own way (a relay: cards, topics, coalescing) and calls `done` after each post;
# raises `bot.outbox.errors`' kinds, like a Transport.
Deliverer = Callable[[Ready, Done], Awaitable[None]]
# Told, inside the transaction that marks rows failed or skipped, why they will never go.
FailureHook = Callable[[Repos, Ready, list[int], str], Awaitable[None]]


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
    def __init__(
        self,
        db: Database,
        transport: Transport,
        clock: Clock,
        business: Business,
        tz: ZoneInfo,
        render: Renderer,
        *,
        batch: int | None = None,
        limiter: Limiter | None = None,
        composers: dict[str, Composer] | None = None,
    ) -> None:
        self.db = db
        self.composers: dict[str, Composer] = composers if composers is not None else {}
        self.deliverers: dict[str, Deliverer] = {}
        # Templates whose rows go in lanes: the key up to its last ":" (`care_in:<customer>:`), in
        # order, the rows of one lane due together as one group.
        self.laned: set[str] = set()
        self.on_failure: dict[str, FailureHook] = {}
        self.transport = transport
        self.clock = clock
        self.business = business
        self.tz = tz
        self.render = render
        self.policy = Policy(business.marketing, tz, business.privacy_version)
        limits = business.outbox
        self.limiter = limiter or Limiter(
            limits.messages_per_second, limits.seconds_per_chat, limits.group_per_minute
        )
        # Two seconds' worth at the free rate; with paid broadcasts, a third of a second's worth
        # at the paid rate (a claim of 2,000 rows would keep the database's connections busy
        # marking them sent while people wait for their answers).
        self.batch = batch or max(
            1,
            int(limits.messages_per_second * 2),
            int(business.broadcasts.paid_messages_per_second * PAID_BATCH_SECONDS)
            if business.broadcasts.allow_paid_broadcast
            else 0,
        )
        self.lease = timedelta(seconds=limits.lease_seconds)
        self.max_attempts = limits.max_attempts
        self.worker = uuid.uuid4().hex[:12]
        # 403s met in the batch in flight: the rest of that batch skips the chat. Forgotten as
        # soon as the customer is reachable again (they wrote to the bot: the database says so).
        self._blocked_chats: set[int] = set()
        self._busy_lanes: set[str] = set()
        self._busy_groups: set[int] = set()  # groups with a message of ours on its way
        self._wake = asyncio.Event()
        # Key prefixes cancelled while a batch is in flight (a broadcast's cancel button): checked
        # before each call, so a cancel stops the sending within one message, not one batch.
        self.cancelled: set[str] = set()
        # Tasks whose row waits for its turn (nothing sent yet): a stop hands these rows back.
        self._turn_waiting: set[asyncio.Task[Any]] = set()
        # When each row in flight was claimed: one whose lease ran out while it waited for its
        # turn (several instances share the rate) may be another sender's now, and is not sent.
        self._claimed_at: dict[int, datetime] = {}
        self._marks = SentMarks(self._mark_sent)

    def wake(self) -> None:
        """Something was just queued for at once (a relay, a staff reply): claim it now."""
        self._wake.set()

    # ---- claiming ----------------------------------------------------------------------------

    async def _claim(self, tally: Tally) -> list[Ready]:
        now = self.clock.now()
        ready: list[Ready] = []
        orphaned, busy, groups_busy = (
            now - self.lease,
            sorted(self._busy_lanes),
            sorted(self._busy_groups),
        )
        async with self.db.reading(
            snapshot=False
        ) as repos:  # nothing due (an idle bot): no write lock taken
            if not await repos.outbox.claimable(
                now, orphaned, 1, worker=self.worker, busy=busy, busy_chats=groups_busy, lock=False
            ):
                return ready
        async with self.db.transaction() as repos:
            # What people wrote and service notices first, then the bulk, in due order.
            first = await repos.outbox.claimable(
                now,
                orphaned,
                self.batch,
                worker=self.worker,
                kinds=(RELAY, SERVICE),
                busy=busy,
                busy_chats=groups_busy,
            )
            rest = (
                await repos.outbox.claimable(
                    now,
                    orphaned,
                    self.batch - len(first),
                    worker=self.worker,
                    busy=busy,
                    busy_chats=groups_busy,
                )
                if len(first) < self.batch
                else []
            )
            rows = list(
                {r.id: r for r in first + rest}.values()
            )  # the bulk query may find them again
            customer_ids = {r.customer_id for r in rows if r.customer_id is not None}
            recent = (
                await repos.outbox.recent_marketing(customer_ids, now - CAP_WINDOW)
                if customer_ids
                else {}
            )
            customers = await repos.customers.by_ids(customer_ids) if customer_ids else {}
            groups: dict[str, list[tuple[OutboxMessage, int]]] = {}
            group_taken: dict[
                int, str
            ] = {}  # group chat → the lane (or row) that has it in this claim
            for row in rows:
                lane = row.key.rsplit(":", 1)[0] + ":" if row.template in self.laned else None
                if row.chat_id is not None and is_group(row.chat_id):
                    # One post at a time into a group (20 a minute): what waits behind it stays
                    # pending, coalesces, and holds no place among the batch in flight.
                    own = lane or f"row:{row.id}"
                    if group_taken.setdefault(row.chat_id, own) != own:
                        continue
                customer = customers.get(row.customer_id) if row.customer_id else None
                if (
                    customer is not None
                    and customer.blocked_at is None
                    and customer.tg_user_id is not None
                ):
                    self._blocked_chats.discard(customer.tg_user_id)
                if row.kind == RELAY:
                    # What someone wrote: only its customer's erasure stops it (or a week gone by).
                    verdict = self.policy.judge(
                        kind=SERVICE,
                        now=now,
                        not_after=row.not_after,
                        customer=customer if customer and customer.erased_at else None,
                    )
                elif row.state == OutboxState.SENDING:
                    # Taken up from a sender that died mid-way: it was judged then, and may even
                    # have gone out, so only an erased or blocked customer stops it now.
                    verdict = self.policy.judge(
                        kind=SERVICE, now=now, not_after=now, customer=customer
                    )
                else:
                    verdict = self.policy.judge(
                        kind=row.kind,
                        now=now,
                        not_after=row.not_after,
                        customer=customer,
                        recent_marketing=recent.get(row.customer_id or 0, []),
                    )
                if verdict.decision is Decision.DEFER:
                    row.due_at, row.last_error = verdict.until, verdict.reason  # type: ignore[assignment]
                    tally.deferred += 1
                    continue
                if verdict.decision in (Decision.SKIP, Decision.EXPIRE):
                    row.state = (
                        OutboxState.SKIPPED
                        if verdict.decision is Decision.SKIP
                        else OutboxState.EXPIRED
                    )
                    row.last_error, row.claimed_at, row.claimed_by = verdict.reason, None, None
                    row.error_code = (
                        OutboxError.LATE
                        if verdict.decision is Decision.EXPIRE
                        else OutboxError(str(verdict.reason))
                    )
                    await repos.coupons.void_issued_for(row.key, now)
                    await _give_back_stop_hints(repos, [row])
                    await self._failed_hook(repos, _ready_of(row, 0), [row.id], str(verdict.reason))
                    tally.skipped += verdict.decision is Decision.SKIP
                    tally.expired += verdict.decision is Decision.EXPIRE
                    continue
                chat_id = row.chat_id or (customer.tg_user_id if customer else None)
                if chat_id is None:
                    row.state, row.last_error, row.error_code = (
                        OutboxState.SKIPPED,
                        "erased",
                        OutboxError.ERASED,
                    )
                    tally.skipped += 1
                    continue
                if row.text is None and row.template not in self.deliverers:
                    try:
                        row.text, row.markup = await compose(
                            repos,
                            row,
                            customer,
                            self.business,
                            self.tz,
                            self.render,
                            now,
                            self.composers,
                        )
                    except Obsolete as reason:
                        row.state, row.last_error, row.claimed_at, row.claimed_by = (
                            OutboxState.SKIPPED,
                            str(reason),
                            None,
                            None,
                        )
                        row.error_code = OutboxError.OBSOLETE
                        tally.skipped += 1
                        continue
                if row.kind == MARKETING and row.customer_id is not None:
                    recent.setdefault(row.customer_id, []).append(
                        now
                    )  # counts toward the cap at once
                row.state, row.claimed_at, row.claimed_by = OutboxState.SENDING, now, self.worker
                if lane is not None:
                    groups.setdefault(lane, []).append((row, chat_id))
                else:
                    ready.append(_ready_of(row, chat_id))
            for lane, members in groups.items():
                head, chat_id = members[0]
                parts = tuple((row.id, dict(row.data or {})) for row, _ in members)
                ready.append(_ready_of(head, chat_id, parts=parts, lane=lane))
        # Busy only once the claim is committed: a commit that fails must not stall a lane for good.
        self._claimed_at.update((item.id, now) for item in ready)
        self._busy_lanes.update(item.lane for item in ready if item.lane is not None)
        self._busy_groups.update(item.chat_id for item in ready if is_group(item.chat_id))
        return ready

    # ---- sending -----------------------------------------------------------------------------

    async def _send_one(self, item: Ready, tally: Tally) -> None:
        remaining = list(item.row_ids)

        async def done(row_ids: list[int], message_id: int | None) -> None:
            await self._marks.mark([(row_id, message_id) for row_id in row_ids])
            OUTBOX_SENT.labels(item.kind).inc(len(row_ids))
            tally.sent += len(row_ids)
            for row_id in row_ids:
                if row_id in remaining:
                    remaining.remove(row_id)

        relay = item.kind == RELAY
        deliverer = self.deliverers.get(item.template)
        delivery = Delivery(
            priority=Priority.RELAY if item.kind != MARKETING else Priority.BULK,
            retry_in_process=relay,
            paced=deliverer is None,
            # a broadcast, when the business pays for Telegram's faster broadcasts
            paid=self.business.broadcasts.allow_paid_broadcast and item.key.startswith(PAID_PREFIX),
        )
        token = DELIVERY.set(delivery)
        try:
            if deliverer is None:
                waiting = asyncio.current_task()
                if waiting is not None:
                    self._turn_waiting.add(waiting)
                try:
                    await self.limiter.wait_turn(item.chat_id, delivery.priority)
                except asyncio.CancelledError:
                    # stopping: a row still waiting for its turn goes back to the queue at once
                    # (another instance takes it up now, not when the claim's lease runs out)
                    await asyncio.shield(self._hand_back(remaining))
                    return
                finally:
                    if waiting is not None:
                        self._turn_waiting.discard(waiting)
                claimed = self._claimed_at.get(item.id)
                if claimed is not None and self.clock.now() - claimed > self.lease * LEASE_SHARE:
                    await self._hand_back(remaining)
                    return
                if (
                    item.chat_id in self._blocked_chats
                ):  # an earlier message of this batch met a 403
                    tally.skipped += 1
                    await self._finish(
                        item,
                        remaining,
                        OutboxState.SKIPPED,
                        error="blocked",
                        count_attempt=False,
                        code=OutboxError.BLOCKED,
                    )
                    return
                if self.cancelled and item.key.startswith(tuple(self.cancelled)):
                    raise Withdrawn(item.key)
                await done(remaining, await self.transport.send(item))
            else:
                await deliverer(item, done)
        except NotMarked:
            log.exception(
                "outbox message delivered but not marked sent key=%s rows=%s",
                item.key,
                len(remaining),
            )
        except Withdrawn:
            tally.skipped += len(remaining)
            await self._finish(
                item,
                remaining,
                OutboxState.SKIPPED,
                error="cancelled",
                count_attempt=False,
                code=OutboxError.CANCELLED,
            )
        except RetryAfter as error:
            # The middleware paused this chat (only this chat) for as long as Telegram asked.
            tally.throttled += 1
            await self._again(
                item, remaining, timedelta(seconds=error.seconds), str(error), count_attempt=False
            )
        except Blocked as error:
            tally.blocked += 1
            self._blocked_chats.add(item.chat_id)
            await self._blocked(item, remaining, describe(error))
        except Exception as error:
            if not is_transient(error):  # a bad request, a wrong token, a conflict: never retried
                tally.failed += 1
                await self._finish(
                    item,
                    remaining,
                    OutboxState.FAILED,
                    error=describe(error),
                    code=OutboxError.REFUSED,
                )
                return
            attempts = item.attempts + 1
            if attempts >= self.max_attempts:
                tally.failed += 1
                await self._finish(
                    item,
                    remaining,
                    OutboxState.FAILED,
                    error=f"gave up: {describe(error)}"[:300],
                    code=OutboxError.GAVE_UP,
                )
            else:
                tally.retried += 1
                RETRIES.inc()
                delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
                await self._again(
                    item,
                    remaining,
                    timedelta(seconds=delay * random.uniform(0.5, 1.5)),
                    describe(error),
                )
        finally:
            # a turn taken for a message that did not go (withdrawn, blocked, its claim ran out)
            await self.limiter.release_unused()
            DELIVERY.reset(token)
            self._claimed_at.pop(item.id, None)
            if item.lane is not None:
                self._busy_lanes.discard(item.lane)
            if item.lane is not None or is_group(item.chat_id):
                self._busy_groups.discard(item.chat_id)
                self.wake()  # the lane's or the group's next rows may be waiting

    async def _hand_back(self, row_ids: list[int]) -> None:
        """Claimed rows not sent: pending again, no attempt counted, for any sender to take up."""
        async with self.db.transaction(urgent=True) as repos:
            for row in await repos.outbox.get_many(row_ids):
                if row.state == OutboxState.SENDING and row.claimed_by == self.worker:
                    row.state, row.claimed_at, row.claimed_by = OutboxState.PENDING, None, None
                    row.due_at = self.clock.now()

    async def _mark_sent(self, sent: list[Sent]) -> None:
        async with self.db.transaction(urgent=True) as repos:
            await repos.outbox.mark_sent(sent, self.clock.now())

    async def _finish(
        self,
        item: Ready,
        row_ids: list[int],
        state: OutboxState,
        *,
        error: str | None = None,
        count_attempt: bool = True,
        code: OutboxError | None = None,
    ) -> None:
        if not row_ids:
            return
        async with self.db.transaction(urgent=True) as repos:
            await self._close(repos, item, row_ids, state, error, count_attempt, code=code)
        if state == OutboxState.FAILED:
            OUTBOX_FAILED.labels(item.kind).inc(len(row_ids))
            log.warning(
                "outbox message failed key=%s rows=%s error=%s", item.key, len(row_ids), error
            )

    async def _close(
        self,
        repos: Repos,
        item: Ready,
        row_ids: list[int],
        state: OutboxState,
        error: str | None,
        count_attempt: bool = True,
        reason: str | None = None,
        code: OutboxError | None = None,
    ) -> None:
        """Rows that will never go (failed, skipped): why in words (`error`) and as a code, their
        coupons voided, and the template's failure hook told why."""
        now = self.clock.now()
        rows = await repos.outbox.get_many(row_ids)
        for row in rows:
            row.state, row.last_error, row.claimed_at, row.claimed_by = state, error, None, None
            row.error_code = code
            row.attempts += 1 if count_attempt else 0
            await repos.coupons.void_issued_for(row.key, now)
        await _give_back_stop_hints(repos, rows)
        await self._failed_hook(repos, item, row_ids, reason or error or state)

    async def _failed_hook(
        self, repos: Repos, item: Ready, row_ids: list[int], reason: str
    ) -> None:
        hook = self.on_failure.get(item.template)
        if hook is not None:
            await hook(repos, item, row_ids, reason)

    async def _again(
        self,
        item: Ready,
        row_ids: list[int],
        delay: timedelta,
        error: str,
        count_attempt: bool = True,
    ) -> None:
        async with self.db.transaction(urgent=True) as repos:
            for row in await repos.outbox.get_many(row_ids):
                row.state, row.claimed_at, row.claimed_by = OutboxState.PENDING, None, None
                row.due_at = self.clock.now() + delay
                row.last_error = error
                row.attempts += 1 if count_attempt else 0

    async def _blocked(self, item: Ready, row_ids: list[int], error: str) -> None:
        """403: a customer blocked the bot (mark them; nothing more is sent or queued for them),
        or the bot is no longer in a group (the rows fail; no customer is blamed)."""
        now = self.clock.now()
        async with self.db.transaction(urgent=True) as repos:
            await self._close(
                repos,
                item,
                row_ids,
                OutboxState.FAILED,
                error[:300],
                reason="blocked",
                code=OutboxError.BLOCKED,
            )
            if item.customer_id is None or is_group(item.chat_id):
                return
            customer = await repos.customers.get(item.customer_id, for_update=True)
            if customer is not None and customer.tg_user_id == item.chat_id:
                if customer.blocked_at is None:
                    customer.blocked_at = now
                await repos.outbox.skip_pending_of(item.customer_id, OutboxError.BLOCKED)

    # ---- loops -------------------------------------------------------------------------------

    async def _pump(self, stop: asyncio.Event | None, idle_seconds: float = 1.0) -> Tally:
        """Keep the limiter fed: the next batch is claimed while the last half of this one is
        still going out, so claiming and rendering never leave a gap in the sending (claiming one
        batch and waiting for all of it cost about a tenth of the rate). A `wake()` (a relay was
        queued) claims at once. With no `stop` it returns once nothing is due and nothing is in
        flight (`drain`); with one it idles and goes on until set.
        """
        total = Tally()
        in_flight: set[asyncio.Task[Any]] = set()
        woken: asyncio.Task[bool] | None = None
        stopping: asyncio.Task[Any] | None = None
        if stop is not None:
            stopping = asyncio.create_task(self._hand_back_on(stop))
        try:
            while stop is None or not stop.is_set():
                claimed = 0
                if len(in_flight) <= self.batch // 2:
                    self._wake.clear()
                    try:
                        ready = await self._claim(total)
                    except Exception:
                        if stop is None:
                            raise
                        log.exception("outbox sender could not claim rows; retrying shortly")
                        ready = []
                    claimed = len(ready)
                    in_flight.update(
                        asyncio.create_task(self._send_one(item, total)) for item in ready
                    )
                if in_flight:
                    waits: set[asyncio.Task[Any]] = set(in_flight)
                    if len(in_flight) <= self.batch // 2:  # room for more: a wake-up claims at once
                        if woken is None or woken.done():
                            woken = asyncio.create_task(self._wake.wait())
                        waits.add(woken)
                    done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    done.discard(woken)
                    in_flight -= done
                    self._check(done, stop is None)
                elif stop is None:
                    if self._wake.is_set():
                        continue
                    return total
                elif not claimed:
                    idle = [
                        asyncio.create_task(stop.wait()),
                        asyncio.create_task(self._wake.wait()),
                    ]
                    await asyncio.wait(
                        idle, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in idle:
                        task.cancel()
        finally:
            if stopping is not None:
                stopping.cancel()
            if woken is not None:
                woken.cancel()
            if in_flight:  # stopping: what is claimed goes out (or is marked) before we return
                done, _ = await asyncio.wait(in_flight)
                self._check(done, False)
        return total

    async def _hand_back_on(self, stop: asyncio.Event) -> None:
        """Graceful shutdown: the rows still waiting for a turn are handed back at once; those
        whose API call is under way finish (and are marked) before the sender returns."""
        await stop.wait()
        for task in list(self._turn_waiting):
            task.cancel()

    @staticmethod
    def _check(done: set[asyncio.Task[None]], raise_errors: bool) -> None:
        for task in done:
            error = task.exception()
            if error is None:
                continue
            if raise_errors:
                raise error
            log.error(
                "outbox sender failed to record a message's outcome; its lease will bring it back",
                exc_info=error,
            )

    async def drain(self) -> Tally:
        """Deliver until nothing is due now (`carebot tick`, tests)."""
        return await self._pump(None)

    async def run(self, stop: asyncio.Event, idle_seconds: float = 1.0) -> None:
        """The long-running sender of `carebot run`; stops when `stop` is set, after what it has claimed."""
        await self._pump(stop, idle_seconds)


async def _give_back_stop_hints(repos: Repos, rows: list[OutboxMessage]) -> None:
    """Rows that told their customers how to stop offers and will never go: the next offer tells
    them (bot/outbox/compose.py)."""
    told = [r.customer_id for r in rows if r.customer_id and (r.data or {}).get("stop_hint")]
    if told:
        await repos.stop_hints.give_back(told)


def _ready_of(
    row: OutboxMessage,
    chat_id: int,
    *,
    parts: tuple[tuple[int, dict[str, Any]], ...] = (),
    lane: str | None = None,
) -> Ready:
    data = dict(row.data or {})
    return Ready(
        row.id,
        row.key,
        chat_id,
        row.text or "",
        row.markup,
        row.customer_id,
        row.attempts,
        data.get("media"),
        row.template,
        row.kind,
        data,
        parts,
        lane,
    )
