"""Where a feature plugs in: the domain events it follows, the planners it runs with the outbox's,
and the composers that finish its outbox rows at send time. The composition root (`bot/app.py`)
hands one `Features` to each service's `register`, so a feature's wiring lives with the feature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.events import (
    CancelledSubscriber,
    ErasedSubscriber,
    Events,
    FreedSubscriber,
    PhoneSubscriber,
    PurchaseSubscriber,
)
from bot.outbox.compose import Composer
from bot.outbox.planners import Planners


class Features:
    def __init__(self, events: Events, planners: Planners) -> None:
        self.events = events
        self.planners = planners
        self.composers: dict[str, Composer] = {}

    def on_purchase(self, subscriber: PurchaseSubscriber) -> None:
        self.events.on_purchase(subscriber)

    def on_erased(self, subscriber: ErasedSubscriber) -> None:
        self.events.on_erased(subscriber)

    def on_slot_freed(self, subscriber: FreedSubscriber) -> None:
        """A master's time free again (cancelled, declined, an expired hold, a day off undone)."""
        self.events.on_slot_freed(subscriber)

    def on_phone_shared(self, subscriber: PhoneSubscriber) -> None:
        """A customer gave their phone in onboarding: what joining earns, in that transaction."""
        self.events.on_phone_shared(subscriber)

    def on_sale_cancelled(self, subscriber: CancelledSubscriber) -> None:
        """Staff cancelled a mistaken sale: undo what it caused, in the cancelling transaction."""
        self.events.on_sale_cancelled(subscriber)

    def plan(self, name: str, planner: Callable[[], Awaitable[int]]) -> None:
        """A planner run with the outbox's own (now, then every few minutes; `carebot tick`)."""
        self.planners.register(name, planner)

    def compose(self, composer: Composer, *templates: str) -> None:
        """The composer of these templates' rows (context and buttons computed at send time)."""
        for template in templates:
            if template in self.composers:
                raise ValueError(f"two composers for {template!r}")
            self.composers[template] = composer
