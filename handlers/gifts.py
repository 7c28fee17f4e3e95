"""Gift certificates at the edge: /gift in the admin chat answers with the certificate's code and
link to forward; whoever opens the link first claims it (a newcomer after the data consent, see
handlers/onboarding.py); /redeem CODE AMOUNT spends it (handlers/staff.py hands it here). A
customer's /gift says how to buy one."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.deep_linking import create_start_link

from bot.business import Business
from bot.rendering import Renderer
from bot.services.certificates import (
    GIFT_PREFIX,
    CertificateResult,
    CertificateService,
    parse_gift,
)
from bot.services.staff import Staff, UsageError, parse_amount
from handlers.admin_chat import AdminChat
from handlers.filters import admin_chat_router


async def gift(
    message: Message,
    command: CommandObject,
    bot: Bot,
    certificates: CertificateService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    assert message.from_user is not None
    parsed = parse_gift(command.args or "")  # a UsageError is answered by staff's `usage_error`
    staff = admin_chat.staff_of(message.from_user, message.sender_chat, message.author_signature)
    certificate = await certificates.issue(staff, parsed)
    link = await create_start_link(bot, GIFT_PREFIX + certificate.code)
    await message.reply(
        render.text(
            staff_lang, "gift_issued", certificate=certificate, link=link, business=business
        )
    )


def certificate_redemption(args: str) -> tuple[str, int] | None:
    """ "K7QM3XPA 1000" → the code and the amount in minor units; None when the last word is not
    an amount (then it is a coupon's /redeem)."""
    words = args.split()
    if len(words) < 2:
        return None
    try:
        return " ".join(words[:-1]), parse_amount(words[-1])
    except UsageError:
        return None


async def redeem_certificate(
    message: Message,
    staff: Staff,
    code: str,
    amount_minor: int,
    certificates: CertificateService,
    render: Renderer,
    staff_lang: str,
    business: Business,
) -> None:
    result = await certificates.redeem(staff, code, amount_minor)
    await message.reply(
        render.text(staff_lang, "staff_certificate", result=result, business=business)
    )


async def answer_claim(
    message: Message, result: CertificateResult, render: Renderer, lang: str, business: Business
) -> None:
    await message.answer(render.text(lang, "gift_claim", result=result, business=business))


async def ask_for_gift(
    message: Message,
    certificates: CertificateService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    """A customer's /gift: how to buy one. They write the amount and for whom in this chat (the care
    chat takes it to the staff), pay, and the staff issue it with /gift and send them the link."""
    await message.answer(
        render.text(lang, "gift_ask", enabled=certificates.enabled, business=business)
    )


def create_router() -> Router:
    router = Router(name="gifts")
    admin = admin_chat_router("gifts-admin-chat")
    admin.message.register(gift, Command("gift"))
    private = Router(name="gifts-private")
    private.message.register(ask_for_gift, Command("gift"), F.chat.type == ChatType.PRIVATE)
    router.include_routers(admin, private)
    return router
