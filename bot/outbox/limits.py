"""Telegram's limits for every message the bot sends: one budget for replies, relays and the outbox.

Telegram allows a bot about 30 messages a second in all, about one a second into one private
chat (short bursts pass), and 20 a minute into one group; a 429 says how long one chat must
wait (`retry_after`). Every API call goes through `Limiter` (an aiogram request middleware in
`handlers/delivery.py` asks it), so an answer to a customer, a relay into the staff chat and a
broadcast share one budget, and a group's 429 pauses that group only.

Who goes first: a person waiting for an answer (`INTERACTIVE`), then what people wrote to each
other and service notices (`RELAY`), then the outbox's bulk (`BULK`, broadcasts and offers),
which yields a share of the global rate while interactive traffic is about.

Several instances share the budget through Redis (`shared`, a `bot.outbox.shared_budget.
SharedBudget`): the chat's turn is still kept in order here, and then the turn itself (the global
rate, the chat's gap, the group's minute, a `retry_after`) is taken by one atomic script for all
of them. With no Redis (one process) the in-process pacing below is the whole budget.

A paid broadcast (`allow_paid_broadcast`, the business file's `[broadcasts] allow_paid_broadcast`)
goes at its own rate, `paid_per_second` (Telegram allows 1,000 a second, for Stars), on a lane of
its own; everything else keeps the free rate.

Hand-written because it is a few lines that must honour `retry_after` per chat and count the way
Telegram does: the rate-limit libraries on PyPI (aiolimiter and friends) have no per-key pause
and count in windows that let a burst through at the window's edge, which is exactly what earns
a 429.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import IntEnum

from bot.outbox.shared_budget import FREE, PAID, SharedBudget

log = logging.getLogger("carebot.limits")

GROUP_WINDOW = 60.0  # Telegram counts a group's messages per minute
GROUP_BURST = 5  # relays into a group go at once up to this many a minute, then spread out
RECENT_INTERACTIVE = 2.0
BURST_WINDOW = 1.05  # bulk leaves room for answers this long after the last one


class Priority(IntEnum):
    INTERACTIVE = 0  # an answer to someone who is waiting for it
    RELAY = 1  # a customer's or staff member's words, a service notice
    BULK = 2  # broadcasts and offers: they yield


@dataclass(frozen=True)
class Delivery:
    """How the API calls made in this context are sent (a context variable, so the request
    middleware knows a broadcast from an answer without every call site saying so)."""

    priority: Priority = Priority.INTERACTIVE
    # 5xx, network faults and a short retry_after are retried right here; the outbox sender
    # turns this off for its bulk rows and reschedules them in the database instead.
    retry_in_process: bool = True
    # Checked when the turn comes: False withdraws the message (a broadcast stopped meanwhile).
    still_wanted: Callable[[], bool] | None = None
    # The outbox sender took the turn of this one-call message itself: the middleware does not
    # wait again (it does for a retry).
    paced: bool = False
    # A broadcast sent with allow_paid_broadcast: the paid lane's rate, not the free one.
    paid: bool = False


DELIVERY: ContextVar[Delivery] = ContextVar("carebot_delivery", default=Delivery())
# The shared turns taken in this context since the last call came back: (chat, its name in
# Redis, lane) each; an album into a group takes one per item.
SHARED_TURNS: ContextVar[tuple[tuple[int, str, str], ...]] = ContextVar(
    "carebot_shared_turns", default=()
)


def is_group(chat_id: int) -> bool:
    return chat_id < 0


@dataclass
class _Chat:
    sent: list[float] = field(default_factory=list)  # departures (and reserved turns), sorted
    paused_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # FIFO among non-interactive senders


class Limiter:
    def __init__(
        self,
        per_second: float,
        per_chat_seconds: float = 1.0,
        group_per_minute: int = 20,
        *,
        private_burst: int = 10,
        group_reserve: int = 4,
        timer: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        paid_per_second: float = 1000.0,
        shared: SharedBudget | None = None,
    ) -> None:
        self.gap = 1.0 / per_second
        self.paid_per_second = paid_per_second
        self.shared = shared
        self._paid_next_slot = 0.0
        self._pausing: set[asyncio.Task[None]] = set()
        self._redis_away = False
        self.per_second = max(1, int(per_second))
        self.per_chat = per_chat_seconds
        self.group_per_minute = group_per_minute
        self.private_burst = max(1, private_burst)
        # A staff member's /find must not wait behind a customer's flood: relays and notices
        # leave this many of a group's 20 a minute to interactive answers.
        self.group_reserve = min(group_reserve, group_per_minute - 1)
        self._timer = timer
        self._sleep = sleep
        self._chats: dict[int, _Chat] = {}
        self._next_slot = 0.0
        self._paused_until = 0.0  # a 429 that named no chat
        self._departures = asyncio.Lock()
        self._last_departure = float("-inf")
        self._second: deque[float] = deque(maxlen=self.per_second)  # the latest departures
        self._last_interactive = float("-inf")
        self._answers: deque[float] = deque(maxlen=self.per_second)  # answers of the last second
        self._answers_waiting = 0  # answers waiting for room in the second (no Redis)
        self._calls = 0

    def now(self) -> float:
        return self._timer() if self._timer else asyncio.get_running_loop().time()

    # ---- what Telegram said ------------------------------------------------------------------

    def pause(self, chat_id: int | None, seconds: float) -> None:
        """Telegram said "retry after" for this chat: nothing more goes there before then."""
        if self.shared is not None:  # every instance waits it out, not only this one
            task = asyncio.get_running_loop().create_task(self._share_pause(chat_id, seconds))
            self._pausing.add(task)
            task.add_done_callback(self._pausing.discard)
        until = self.now() + seconds
        if chat_id is None:
            self._paused_until = max(self._paused_until, until)
            return
        chat = self._chat(chat_id)
        chat.paused_until = max(chat.paused_until, until)

    async def _share_pause(self, chat_id: int | None, seconds: float) -> None:
        assert self.shared is not None
        try:
            await self.shared.pause(chat_id, seconds)
        except Exception:  # Redis away: this instance still waits it out
            log.warning("could not share a retry_after through Redis", exc_info=True)

    def limits(self) -> dict[str, float]:
        """The named limits this budget keeps (shared by every instance when `shared` is set)."""
        return {
            "messages_per_second": self.per_second,
            "paid_messages_per_second": self.paid_per_second,
            "seconds_per_chat": self.per_chat,
            "private_burst": self.private_burst,
            "group_per_minute": self.group_per_minute,
            "group_reserve": self.group_reserve,
        }

    def paused_for(self, chat_id: int) -> float:
        """Seconds until this chat may be written to again (0 when it may now)."""
        chat = self._chats.get(chat_id)
        until = max(self._paused_until, chat.paused_until if chat else 0.0)
        return max(0.0, until - self.now())

    async def wait_unpaused(self, chat_id: int) -> None:
        """For calls that are not new messages (edits, look-ups): only a 429's pause applies."""
        while (wait := self.paused_for(chat_id)) > 0:
            await self._sleep(wait)
        if self.shared is not None:
            while (wait := await self.shared.paused_for(chat_id)) > 0:
                await self._sleep(wait)

    # ---- taking a turn -----------------------------------------------------------------------

    async def wait_turns(
        self, chat_id: int, count: int, priority: Priority = Priority.BULK
    ) -> float:
        """A message of `count` items (an album: Telegram counts each item as a message): each
        takes a turn, and all of them count from when the last turn came (an item counted from an
        earlier turn would leave a group's window early, and the next message would earn a 429).
        Returns that moment, for `arrived`."""
        taken = [await self.wait_turn(chat_id, priority) for _ in range(count)]
        departed = self.now()
        self._restamp(chat_id, taken, departed)
        return departed

    def arrived(self, chat_id: int, departed: float, count: int) -> None:
        """A message into a group was accepted: its items count from now. Telegram counts a
        group's minute from when they arrived, later than when they left (an album's upload takes
        a while): counted from the departure, the oldest would leave our window before Telegram's,
        and the message after it would earn a 429."""
        self._restamp(chat_id, [departed] * count, self.now())

    def _restamp(self, chat_id: int, moments: list[float], moment: float) -> None:
        chat = self._chat(chat_id)
        for old in moments:
            if old != moment and old in chat.sent:
                chat.sent.remove(old)
                bisect.insort(chat.sent, moment)

    async def wait_turn(self, chat_id: int, priority: Priority = Priority.BULK) -> float:
        """Wait until one more message may go into this chat and globally; take that turn (the
        moment it is counted from is returned)."""
        chat = self._chat(chat_id)
        paid = DELIVERY.get().paid and priority is Priority.BULK
        if priority is Priority.INTERACTIVE:
            reserved = await self._chat_turn(chat, chat_id, priority)
            self._last_interactive = self.now()
            if self.shared is None:
                self._answers_waiting += 1
                try:
                    await self._interactive_departure()
                finally:
                    self._answers_waiting -= 1
        else:
            async with chat.lock:  # first come, first served within one chat: order is kept
                reserved = await self._chat_turn(chat, chat_id, priority)
                if self.shared is not None:  # in the chat's order, across instances too
                    await self._shared_turn(chat_id, priority, paid)
            if self.shared is None:
                await (self._paid_departure() if paid else self._bulk_departure(priority))
        if self.shared is not None and priority is Priority.INTERACTIVE:
            await self._shared_turn(chat_id, priority, paid)
        # The chat's window counts when the message really left, not when its turn was reserved.
        departed = self.now()
        if reserved != departed and reserved in chat.sent:
            chat.sent.remove(reserved)
            bisect.insort(chat.sent, departed)
        self._prune()
        return departed

    async def _shared_turn(self, chat_id: int, priority: Priority, paid: bool) -> None:
        assert self.shared is not None
        lane = PAID if paid else FREE
        try:
            member = await self._shared_take(chat_id, priority, paid, lane)
        except Exception:  # Redis away: this instance paces alone until it answers again
            if not self._redis_away:
                log.warning("Redis does not answer: pacing this instance alone", exc_info=True)
            self._redis_away = True
            if priority is Priority.INTERACTIVE:
                await self._interactive_departure()
            else:
                await (self._paid_departure() if paid else self._bulk_departure(priority))
            return
        self._redis_away = False
        SHARED_TURNS.set((*SHARED_TURNS.get(), (chat_id, member, lane)))

    async def _shared_take(self, chat_id: int, priority: Priority, paid: bool, lane: str) -> str:
        assert self.shared is not None
        return await self.shared.take(
            chat_id,
            int(priority),
            per_second=self.paid_per_second if paid else self.per_second,
            per_chat_seconds=self.per_chat,
            private_burst=self.private_burst,
            group_per_minute=self.group_per_minute,
            group_reserve=self.group_reserve,
            lane=lane,
            sleep=self._sleep,
        )

    async def landed(self) -> None:
        """The message whose turns this context took is in (its call came back): across
        instances they count from now (`SharedBudget.landed`). Nothing to do without Redis."""
        await self._settle_turns(landed=True)

    async def release_unused(self) -> None:
        """The turns this context took went unused (the message was withdrawn after its turn
        came, or its claim ran out): across instances their places are free again at once,
        rather than held as if the message were on its way. Nothing to do without Redis."""
        await self._settle_turns(landed=False)

    async def _settle_turns(self, *, landed: bool) -> None:
        turns = SHARED_TURNS.get()
        if not turns:
            return
        SHARED_TURNS.set(())
        if self.shared is None:
            return
        for chat_id, member, lane in turns:
            try:
                if landed:
                    await self.shared.landed(chat_id, member, lane=lane)
                else:
                    await self.shared.release(chat_id, member, lane=lane)
            except Exception:  # Redis away: a place held frees itself after the hold
                log.warning("could not settle a turn in Redis landed=%s", landed, exc_info=True)
                return

    async def _paid_departure(self) -> None:
        """A paid broadcast's messages: evenly spaced at the paid rate, apart from the free lane."""
        now = self.now()
        slot = max(now, self._paid_next_slot)
        self._paid_next_slot = slot + 1.0 / self.paid_per_second
        if slot > now:
            await self._sleep(slot - now)

    async def _chat_turn(self, chat: _Chat, chat_id: int, priority: Priority) -> float:
        while True:
            now = self.now()
            ready = self._chat_ready(chat, chat_id, priority, now)
            if ready <= now:
                bisect.insort(chat.sent, now)
                return now
            await self._sleep(ready - now)

    def _chat_ready(self, chat: _Chat, chat_id: int, priority: Priority, now: float) -> float:
        ready = max(chat.paused_until, self._paused_until)
        sent = chat.sent
        if is_group(chat_id):
            window = [t for t in sent if t > now - GROUP_WINDOW]
            cap = self.group_per_minute - (
                0 if priority is Priority.INTERACTIVE else self.group_reserve
            )
            if len(window) >= cap:
                ready = max(ready, window[-cap] + GROUP_WINDOW)
            if priority is not Priority.INTERACTIVE and len(window) >= GROUP_BURST:
                # past a short burst, spread out: a flood then coalesces instead of using up the minute
                ready = max(ready, window[-1] + GROUP_WINDOW / self.group_per_minute)
        elif sent:
            if priority is Priority.BULK:
                ready = max(ready, sent[-1] + self.per_chat)
            elif len(sent) >= self.private_burst:  # a short burst, about one a second on average
                ready = max(ready, sent[-self.private_burst] + self.private_burst * self.per_chat)
        return ready

    async def _interactive_departure(self) -> None:
        """An answer leaves as soon as the last second has room: no spacing, no queue."""
        while True:
            now = self.now()
            # A little over a second: answers leave in a burst, and what Telegram counts is when
            # they arrive, a few milliseconds apart from when they left.
            if len(self._second) < self.per_second or self._second[0] + BURST_WINDOW <= now:
                self._second.append(now)
                self._answers.append(now)
                return
            await self._sleep(self._second[0] + BURST_WINDOW - now)

    async def _bulk_departure(self, priority: Priority) -> None:
        """Evenly spaced departures at the global rate, in the order turns were taken."""
        now = self.now()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self.gap
        if slot > now:
            await self._sleep(slot - now)
        # A busy machine may wake several waiters late and at once; space the real departures
        # as well, so a stall of the event loop never turns into a burst (and a 429).
        # The spacing counts from when the last one was due to leave, not from when it did: a
        # sleep wakes a millisecond or so late, and counting from the wake-up would lose that
        # on every message (about 3% of the rate at 29/s). After a stall it counts from now.
        # And never more than `per_second` in any one second, the way Telegram counts; while
        # answers are being given, bulk leaves them a tenth of that second (as far as unused).
        async with self._departures:
            while True:
                due = self._last_departure + self.gap
                room = self.per_second - (
                    self._unused_reserve() if priority is Priority.BULK else 0
                )
                recent = [t for t in self._second if t > self.now() - 1.0]
                if len(recent) >= room:
                    due = max(due, recent[-room] + 1.0)
                wait = due - self.now()
                if wait <= 0:
                    break
                await self._sleep(wait)
            self._last_departure = max(due, self.now() - self.gap / 2)
            self._second.append(self.now())

    def _unused_reserve(self) -> int:
        """While a person waits for an answer, bulk leaves them a tenth of the second: all of it
        while answers are still waiting for their turn (they take the places as they free, before
        bulk), else what the answers of the last second have not used of it (`shared_budget`
        counts the same way)."""
        now = self.now()
        if now - self._last_interactive >= RECENT_INTERACTIVE:
            return 0
        reserve = min(self.per_second - 1, max(1, self.per_second // 10))
        if self._answers_waiting:
            return reserve
        while self._answers and self._answers[0] <= now - 1.0:
            self._answers.popleft()
        return max(0, reserve - len(self._answers))

    # ---- bookkeeping -------------------------------------------------------------------------

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat()
        return chat

    def _prune(self) -> None:
        """Forget chats whose last message and pause are past every window (a 100,000-customer
        broadcast must not keep 100,000 records)."""
        self._calls += 1
        if self._calls % 1000:
            return
        horizon = self.now() - GROUP_WINDOW
        self._chats = {
            cid: c
            for cid, c in self._chats.items()
            if c.paused_until > horizon + GROUP_WINDOW
            or (c.sent and c.sent[-1] > horizon)
            or c.lock.locked()
        }
        for chat in self._chats.values():
            del chat.sent[: bisect.bisect_right(chat.sent, horizon)]
