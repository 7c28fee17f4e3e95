"""aiogram routers, one module per conversation. Order matters: the fallback goes last.

Each module builds its router in `create_router()`, so every Dispatcher (a restart, a test)
gets routers of its own: an aiogram router can belong to one dispatcher only.
"""
from aiogram import Router

from handlers import care, coupons, fallback, onboarding, profile, staff, surveys


def all_routers() -> list[Router]:
    # Commands (/profile, /forget, …) work in any state, so their routers go before onboarding.
    return [m.create_router() for m in (coupons, profile, onboarding, surveys, staff, care, fallback)]
