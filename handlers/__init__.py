"""aiogram routers, one module per conversation. Order matters: the fallback goes last.

Each module builds its router in `create_router()`, so every Dispatcher (a restart, a test)
gets routers of its own: an aiogram router can belong to one dispatcher only.
"""
from aiogram import Dispatcher, Router
from aiogram.utils.callback_answer import CallbackAnswerMiddleware

from bot.services.customers import CustomerService
from handlers import (
    booking,
    broadcasts,
    care,
    coupons,
    errors,
    fallback,
    masters,
    nobody,
    onboarding,
    profile,
    staff,
    surveys,
)
from handlers.middlewares import CustomerMiddleware


def setup_dispatcher(dp: Dispatcher, customers: CustomerService) -> None:
    """The edge on a dispatcher: who is writing, every press answered, the routers."""
    dp.update.outer_middleware(CustomerMiddleware(customers))
    # Every button press answered at once, before its handler (aiogram's own middleware); a
    # handler that shows an alert or answers after its edits says so with its callback_answer flag.
    dp.callback_query.middleware(CallbackAnswerMiddleware(pre=True))
    dp.include_routers(*all_routers())


def all_routers() -> list[Router]:
    # Messages no person wrote are dropped first. Commands (/profile, /forget, …) work in any
    # state, so their routers go before onboarding; a master's invite link (/start master_…) too.
    # A failed update is answered by the first error handler whose exception type matches, in the
    # same order: the staff's usage errors in `staff`, the rest in `errors`, last.
    modules = (nobody, coupons, profile, booking, masters, broadcasts, onboarding, surveys, staff, care, fallback,
               errors)
    return [m.create_router() for m in modules]
