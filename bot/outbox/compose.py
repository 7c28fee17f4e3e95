"""Turn an outbox row into the message itself, when it is claimed: personal, rendered once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business, CouponRule
from bot.buttons import Button, Keyboard, ShowCoupons, dump
from bot.db.models import Coupon, Customer, OutboxMessage
from bot.db.repositories import Repos
from bot.rendering import Renderer
from bot.services.coupons import CouponView, issue_coupon


class Obsolete(Exception):
    """The message no longer makes sense (its visit was cancelled, the customer booked
    meanwhile): the sender skips it instead of sending."""


# Extra context and buttons for some templates, computed at send time (a visit's details,
# real free slots); registered by the services that own those messages. No buttons (None): the
# row's own, if a planner stored some.
Composer = Callable[
    [Repos, OutboxMessage, Customer | None, datetime],
    Awaitable[tuple[dict[str, Any], Keyboard | None]],
]


async def _coupon(
    repos: Repos, row: OutboxMessage, customer: Customer | None, tz: ZoneInfo, now: datetime
) -> Coupon | None:
    """The coupon the message carries: one issued for it (once, by its key) or one named in it."""
    if row.coupon_id is not None:
        return await repos.coupons.get(row.coupon_id)
    rule = (row.data or {}).get("coupon")
    if not rule or customer is None:
        return None
    last_day = date.fromisoformat(rule["last_day"]) if rule.get("last_day") else None
    coupon = await issue_coupon(
        repos,
        customer_id=customer.id,
        kind=str(rule.get("kind", "gift")),
        rule=CouponRule(
            percent=rule.get("percent"),
            amount=rule.get("amount"),
            valid_days=rule.get("valid_days", 1),
        ),
        now=now,
        tz=tz,
        last_day=last_day,
    )
    coupon.issue_key = row.key
    row.coupon_id = coupon.id
    return coupon


async def compose(
    repos: Repos,
    row: OutboxMessage,
    customer: Customer | None,
    business: Business,
    tz: ZoneInfo,
    render: Renderer,
    now: datetime,
    composers: Mapping[str, Composer] | None = None,
) -> tuple[str, dict[str, Any] | None]:
    lang = customer.language if customer else business.staff_language
    context: dict[str, Any] = {
        "business": business,
        "data": row.data or {},
        "name": None,
        "last_service": None,
        "last_master": None,
        "coupon": None,
    }
    if customer is not None:
        context["name"] = customer.name
        last = await repos.outbox.last_purchase(customer.id)
        if last is not None:
            context["last_service"] = getattr(business.service(last.service_id), "name", None)
            context["last_master"] = getattr(business.master(last.master_id), "name", None)
    markup = row.markup  # a planner may have set the buttons itself (a survey's scores)
    composer = (composers or {}).get(row.template)
    if composer is not None:
        extra, keyboard = await composer(repos, row, customer, now)
        context.update(extra)
        if keyboard is not None:
            markup = dump(keyboard)
    coupon = await _coupon(repos, row, customer, tz, now)
    if coupon is not None:
        context["coupon"] = CouponView.of(coupon, tz)
    if coupon is not None and markup is None:
        markup = dump([[Button(render.label(lang, "my_coupons"), ShowCoupons())]])
    return str(render.text(lang, row.template, **context)), markup
