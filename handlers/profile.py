"""What we store and the customer's control over it: /profile, /stop, /resume, /forget, /privacy."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.business import Business
from bot.db.models import ConsentVia
from bot.rendering import Renderer
from bot.services.certificates import CertificateService
from bot.services.customers import CustomerService, CustomerView
from handlers.callbacks import ForgetCallback, MenuAct, MenuCallback
from handlers.keyboards import main_menu


async def _send_profile(
    message: Message,
    tg_user_id: int,
    customers: CustomerService,
    certificates: CertificateService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    profile = await customers.profile(tg_user_id)
    gifts = await certificates.of_customer(tg_user_id) if profile else []
    await message.answer(
        render.text(lang, "profile", profile=profile, certificates=gifts, business=business)
    )


async def profile(
    message: Message,
    customers: CustomerService,
    certificates: CertificateService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    assert message.from_user is not None
    await _send_profile(
        message, message.from_user.id, customers, certificates, render, lang, business
    )


async def profile_button(
    callback: CallbackQuery,
    customers: CustomerService,
    certificates: CertificateService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    if isinstance(callback.message, Message):
        await _send_profile(
            callback.message, callback.from_user.id, customers, certificates, render, lang, business
        )


async def privacy(message: Message, render: Renderer, lang: str, business: Business) -> None:
    await message.answer(render.text(lang, "privacy", business=business))


async def marketing(
    message: Message,
    customer: CustomerView | None,
    customers: CustomerService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    assert message.from_user is not None and message.text is not None
    allowed = message.text.split()[0].lstrip("/").split("@")[0] == "resume"
    if customer is None:
        await message.answer(render.text(lang, "not_registered"))
        return
    # /resume is the command's own "yes" (a button in the sense of 38-FZ: a deliberate act)
    if not allowed:
        changed = await customers.set_marketing(message.from_user.id, False, ConsentVia.STOP)
        await message.answer(render.text(lang, "marketing_off", changed=changed))
        return
    change = await customers.allow_offers(message.from_user.id, ConsentVia.BUTTON)
    await message.answer(render.text(lang, "marketing_on", changed=change.changed))
    if change.welcome is not None:  # the welcome gift that waited for offers
        await message.answer(
            render.text(
                lang, "welcome_coupon", name=customer.name, coupon=change.welcome, business=business
            ),
            reply_markup=main_menu(render, lang, coupon_id=change.welcome.id),
        )


async def forget(
    message: Message, customer: CustomerView | None, render: Renderer, lang: str
) -> None:
    if customer is None:
        await message.answer(render.text(lang, "not_registered"))
        return
    builder = InlineKeyboardBuilder()
    builder.button(
        text=render.label(lang, "forget_yes"), callback_data=ForgetCallback(confirm=True)
    )
    builder.button(
        text=render.label(lang, "forget_no"), callback_data=ForgetCallback(confirm=False)
    )
    builder.adjust(1)
    await message.answer(render.text(lang, "forget_confirm"), reply_markup=builder.as_markup())


async def forget_answer(
    callback: CallbackQuery,
    callback_data: ForgetCallback,
    state: FSMContext,
    customers: CustomerService,
    render: Renderer,
    lang: str,
) -> None:
    if not isinstance(callback.message, Message):
        return
    if not callback_data.confirm:
        await callback.message.edit_text(render.text(lang, "forget_cancelled"))
        return
    erased = await customers.forget(callback.from_user.id)
    await state.clear()
    await callback.message.edit_text(
        render.text(lang, "forget_done" if erased else "not_registered")
    )


def create_router() -> Router:
    router = Router(name="profile")
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(profile, Command("profile"))
    router.callback_query.register(profile_button, MenuCallback.filter(F.action == MenuAct.PROFILE))
    router.message.register(privacy, Command("privacy"))
    router.message.register(marketing, Command("stop", "resume"))
    router.message.register(forget, Command("forget"))
    router.callback_query.register(forget_answer, ForgetCallback.filter())
    return router
