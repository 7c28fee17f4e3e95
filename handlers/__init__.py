"""aiogram routers, one module per conversation. Order matters: the fallback goes last.

Each module builds its router in `create_router()`, so every Dispatcher (a restart, a test)
gets routers of its own: an aiogram router can belong to one dispatcher only.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Dispatcher, Router

from bot.services.customers import CustomerService
from handlers import (
    booking,
    broadcasts,
    business_chats,
    campaigns,
    care,
    coupons,
    data_rights,
    deposits,
    errors,
    fallback,
    importing,
    loyalty,
    masters,
    nobody,
    onboarding,
    points_pay,
    profile,
    referrals,
    staff,
    stats,
    stats_breakdowns,
    stats_export,
    surveys,
    waitlist,
)
from handlers.middlewares import CustomerMiddleware, PressAnswers


def setup_dispatcher(dp: Dispatcher, customers: CustomerService) -> None:
    """The edge on a dispatcher: who is writing, every press answered, the routers."""
    dp.update.outer_middleware(CustomerMiddleware(customers))
    # Every button press answered at once, before its handler (aiogram's own middleware); a
    # handler that shows an alert or answers after its edits says so with its callback_answer flag.
    dp.callback_query.middleware(PressAnswers(pre=True))
    dp.include_routers(*all_routers())
    filters_in_place(dp)


def filters_in_place(dp: Dispatcher) -> None:
    """Every plain-function filter (`F.text`, `from_a_person`, …) checked in place, as a coroutine.

    aiogram runs a filter that is not a coroutine in a thread of its own (`asyncio.to_thread`),
    so each `F` check of each update was a hand-over to a worker thread and back: a tenth of a
    newcomer's `/start`. Ours are quick and never block; what they return is unchanged.
    """
    for router in dp.chain_tail:
        for observer in router.observers.values():
            for handler in (
                observer._handler,
                *observer.handlers,
            ):  # _handler: the router's own filters
                for event_filter in handler.filters or ():
                    if not event_filter.awaitable:
                        event_filter.callback = _in_place(event_filter.callback)
                        event_filter.awaitable = True


def _in_place(check: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def checked(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    return checked


def all_routers() -> list[Router]:
    # Messages no person wrote are dropped first. Commands (/profile, /forget, …) work in any
    # state, so their routers go before onboarding; a master's invite link (/start master_…) too.
    # A failed update is answered by the first error handler whose exception type matches, in the
    # same order: the staff's usage errors in `staff`, the rest in `errors`, last.
    modules = (
        nobody,
        business_chats,  # Telegram Business: the accounts' updates, /accounts, /start book
        coupons,
        profile,
        loyalty,  # /card, and the staff's /points (refused outside the admin chat)
        referrals,  # the staff's /referrals (refused outside the admin chat)
        points_pay,  # paying with points: staff's button, the customer's confirm / decline
        deposits,  # before staff and care: a payment, the card's deposit mark, staff's cancel
        data_rights,
        booking,
        masters,
        waitlist,  # /waitlist, joining from /book, a freed time's offer
        broadcasts,
        onboarding,
        surveys,
        importing,  # before staff: its "for staff only" answers /import anywhere else
        stats_breakdowns,  # before stats: /stats masters|sources|funnel; the rest passes on
        stats_export,  # before stats: /stats export [period]; the rest passes on
        campaigns,  # before stats: /stats campaigns [period]; the rest passes on
        stats,  # before staff too: /stats elsewhere is refused there
        staff,
        care,
        fallback,
        errors,
    )
    return [m.create_router() for m in modules]
