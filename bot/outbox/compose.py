"""Turn an outbox row into the message itself, when it is claimed: personal, rendered once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business, CouponRule
from bot.buttons import Button, Keyboard, ShowCoupons, Unsubscribe, dump, is_intents, load
from bot.db.models import Coupon, Customer, OutboxKind, OutboxMessage
from bot.db.repositories import Repos
from bot.rendering import Renderer
from bot.services.campaigns import coupon_rule, shown_template
from bot.services.coupons import CouponView, issue_coupon
from bot.telegram_text import CAPTION_LIMIT, TEXT_LIMIT, visible_len

STOP_HINT = "marketing_stop_hint"  # the template of the line on how to stop offers
STOP_HINT_GAP = "\n\n"  # between the message and that line


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
    repos: Repos,
    row: OutboxMessage,
    customer: Customer | None,
    business: Business,
    tz: ZoneInfo,
    now: datetime,
) -> Coupon | None:
    """The coupon the message carries: one issued for it (once, by its key) or one named in it
    (worth its campaign's variant b, for a customer in that arm)."""
    if row.coupon_id is not None:
        return await repos.coupons.get(row.coupon_id)
    rule = (row.data or {}).get("coupon")
    if not rule or customer is None:
        return None
    rule = coupon_rule(row, business.campaigns, rule)
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
    coupon = await _coupon(repos, row, customer, business, tz, now)
    if coupon is not None:
        context["coupon"] = CouponView.of(coupon, tz)
    if coupon is not None and markup is None:
        markup = dump([[Button(render.label(lang, "my_coupons"), ShowCoupons())]])
    text = str(render.text(lang, shown_template(row, business.campaigns), **context))
    if row.kind == OutboxKind.MARKETING and customer is not None:
        markup = with_unsubscribe(markup, render.label(lang, "unsubscribe"))
        text = await _with_stop_hint(repos, row, customer, text, render, lang, now)
    return text, markup


def with_unsubscribe(markup: dict[str, Any] | None, label: str) -> dict[str, Any] | None:
    """Every marketing message ends with the unsubscribe button, added here so that no planner
    can forget it; once, where its composer put one already (a broadcast's)."""
    if markup is not None and not is_intents(markup):
        return markup  # Telegram's own JSON of a row stored before intents: sent as it was
    rows = load(markup) if markup else []
    if any(isinstance(button.intent, Unsubscribe) for row in rows for button in row):
        return markup
    return dump([*rows, [Button(label, Unsubscribe())]])


def stop_hint_room(render: Renderer, languages: tuple[str, ...]) -> int:
    """Telegram's units the line on how to stop offers takes, in its longest language (a
    broadcast's text leaves room for it)."""
    return max(visible_len(STOP_HINT_GAP + render.text(lang, STOP_HINT)) for lang in languages)


async def _with_stop_hint(
    repos: Repos,
    row: OutboxMessage,
    customer: Customer,
    text: str,
    render: Renderer,
    lang: str,
    now: datetime,
) -> str:
    """The first marketing message a customer receives says how to stop them, once: the row that
    takes `customers.stop_hint_at` (bot/db/stop_hints.py) carries it, and its data says so (given
    back when it never goes). A text with no room left for it goes without; the next one says it."""
    if customer.stop_hint_at is not None:
        return text
    told = f"{text}{STOP_HINT_GAP}{render.text(lang, STOP_HINT)}"
    limit = CAPTION_LIMIT if (row.data or {}).get("media") else TEXT_LIMIT
    if visible_len(told) > limit or not await repos.stop_hints.take(customer.id, now):
        return text
    row.data = {**(row.data or {}), "stop_hint": True}
    return told
