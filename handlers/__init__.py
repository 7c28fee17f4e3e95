"""aiogram routers, one module per conversation. Order matters: the fallback goes last.

Each module builds its router in `create_router()`, so every Dispatcher (a restart, a test)
gets routers of its own: an aiogram router can belong to one dispatcher only.
"""
from aiogram import Router

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


def all_routers() -> list[Router]:
    # Messages no person wrote are dropped first. Commands (/profile, /forget, …) work in any
    # state, so their routers go before onboarding; a master's invite link (/start master_…) too.
    # A failed update is answered by the first error handler whose exception type matches, in the
    # same order: the staff's usage errors in `staff`, the rest in `errors`, last.
    modules = (nobody, coupons, profile, booking, masters, broadcasts, onboarding, surveys, staff, care, fallback,
               errors)
    return [m.create_router() for m in modules]
