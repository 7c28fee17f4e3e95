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
    modules = (nobody, coupons, profile, booking, masters, broadcasts, onboarding, surveys, staff, care, fallback)
    return [m.create_router() for m in modules]
