"""Loyalty points at the edge: the customer's /card (points and their soonest expiry), and the
staff's `/points <customer> <+N|-N> <reason>` correction in the admin chat."""

from __future__ import annotations

import re

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from markupsafe import Markup

from bot.business import Business
from bot.rendering import Renderer
from bot.services.certificates import CertificateService
from bot.services.customers import CustomerView
from bot.services.loyalty import LoyaltyService
from bot.services.packages import PackageService
from bot.services.referrals import ReferralService
from bot.services.staff import StaffService, UsageError, split_customer
from bot.services.stamps import StampService
from bot.telegram_text import TEXT_LIMIT, truncate_html
from handlers.admin_chat import AdminChat
from handlers.filters import admin_chat_router
from handlers.referrals import invitation
from handlers.staff import staff_only

POINTS = re.compile(r"[+\-−]?\d{1,7}")


async def card(
    message: Message,
    customer: CustomerView | None,
    loyalty: LoyaltyService,
    referrals: ReferralService,
    packages: PackageService,
    certificates: CertificateService,
    render: Renderer,
    lang: str,
    business: Business,
    stamps: StampService,
) -> None:
    if customer is None or not customer.onboarded or message.from_user is None:
        await message.answer(render.text(lang, "not_registered"))
        return
    wallet = await loyalty.wallet(customer.id)
    parts: list[Markup] = []
    if wallet.enabled or wallet.points:
        parts.append(render.text(lang, "loyalty_card", wallet=wallet, business=business))
    stamp_card = await stamps.card(customer.id)
    if stamp_card is not None:
        parts.append(render.text(lang, "stamp_card", stamps=stamp_card, business=business))
    held = await packages.left(customer.id)
    if held:  # prepaid packages with visits left
        parts.append(render.text(lang, "packages_card", packages=held))
    gifts = await certificates.of_customer(message.from_user.id)
    if gifts:  # gift certificates with something left
        parts.append(render.text(lang, "certificates_card", certificates=gifts, business=business))
    history = await loyalty.history(customer.id)
    if history:  # the last accruals and spendings, newest first
        parts.append(render.text(lang, "points_history", history=history))
    if not parts:  # none of the programs: says there is none
        parts.append(render.text(lang, "loyalty_card", wallet=wallet, business=business))
    assert message.bot is not None
    invite, share = await invitation(message.bot, customer.id, referrals, render, lang, business)
    text = Markup("\n\n").join(parts) + invite
    await message.answer(truncate_html(text, TEXT_LIMIT), reply_markup=share)


def parse_points(args: str) -> tuple[str, int, str]:
    """`<customer> <+N|-N> <reason…>` → (customer, points, reason); UsageError otherwise."""
    tokens = args.split()
    if len(tokens) < 2:
        raise UsageError("points_usage")
    customer, rest = split_customer(tokens)
    if not rest or not POINTS.fullmatch(rest[0]):
        raise UsageError("points_usage")
    points = int(rest[0].replace("−", "-"))
    return customer, points, " ".join(rest[1:])


async def points(
    message: Message,
    command: CommandObject,
    staff_service: StaffService,
    loyalty: LoyaltyService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
) -> None:
    assert message.from_user is not None
    try:
        query, change, reason = parse_points(command.args or "")
        found = await staff_service.resolve(query)
        done = await loyalty.correct(
            admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature),
            found.id,
            change,
            reason,
        )
    except UsageError as error:
        template = "points_usage" if error.reason.startswith("points") else "staff_usage"
        text = render.text(
            staff_lang, template, command="points", reason=error.reason, **error.details
        )
        await message.reply(truncate_html(text, TEXT_LIMIT))
        return
    await message.reply(render.text(staff_lang, "points_corrected", done=done, card=found))


def create_router() -> Router:
    router = Router(name="loyalty")
    private = Router(name="loyalty-private")
    private.message.filter(F.chat.type == ChatType.PRIVATE)
    private.message.register(card, Command("card"))
    admin = admin_chat_router("loyalty-admin-chat")
    admin.message.register(points, Command("points"))
    elsewhere = Router(name="loyalty-elsewhere")
    elsewhere.message.register(staff_only, Command("points"))
    router.include_routers(private, admin, elsewhere)
    return router
