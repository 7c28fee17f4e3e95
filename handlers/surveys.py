"""Surveys: the customer's score and comment; a low score alerts the staff, who resolve it;
/complaints and /csat in the admin chat."""

from __future__ import annotations

import re
from typing import Any

from aiogram import Bot, F, Router, flags
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, ReplyParameters
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.business import Business
from bot.rendering import Renderer
from bot.services.care import CareService, Inbound
from bot.services.surveys import SurveyOutcome, SurveyService, SurveyView
from handlers.admin_chat import AdminChat
from handlers.callbacks import ComplaintAct, ComplaintCallback, SurveyCallback, SurveySkip
from handlers.filters import admin_chat_router
from handlers.fsm_storage import SqlStorage

DEFAULT_PERIOD_DAYS = 30
_PERIOD = re.compile(r"^(\d{1,4})\s*([dwmдннм]?)", re.IGNORECASE)


class SurveyComment(StatesGroup):
    text = State()


def _alert_keyboard(render: Renderer, lang: str, survey: SurveyView) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=render.label(lang, "complaint_answer"),
        callback_data=ComplaintCallback(action=ComplaintAct.ANSWER, id=survey.id),
    )
    if survey.resolved_at is None:
        builder.button(
            text=render.label(lang, "complaint_resolve"),
            callback_data=ComplaintCallback(action=ComplaintAct.RESOLVE, id=survey.id),
        )
    return builder.as_markup()


async def _tell_staff(
    bot: Bot,
    admin_chat: AdminChat,
    care: CareService,
    surveys: SurveyService,
    render: Renderer,
    staff_lang: str,
    survey: SurveyView,
) -> None:
    """A low score alerts the admin chat at once (a reply to the alert answers the customer);
    a happy comment is shared there too. Later, the comment is added to the same alert; a
    comment longer than one message goes on in replies to it (replies to those answer too)."""
    if admin_chat.chat_id is None or survey.tg_user_id is None:
        return
    first, *rest = surveys.alert_texts(survey, staff_lang)
    markup = _alert_keyboard(render, staff_lang, survey) if survey.low else None
    if survey.alert_message_id is not None:
        alert_id = survey.alert_message_id
        await bot.edit_message_text(
            first, chat_id=admin_chat.chat_id, message_id=alert_id, reply_markup=markup
        )
    else:
        alert_id = (
            await bot.send_message(admin_chat.chat_id, first, reply_markup=markup)
        ).message_id
        await surveys.set_alert(survey.id, alert_id)
        await care.record_inbound(Inbound(survey.tg_user_id, "survey", survey.comment, (alert_id,)))
    more = [
        (
            await bot.send_message(
                admin_chat.chat_id,
                text,
                reply_parameters=ReplyParameters(
                    message_id=alert_id, allow_sending_without_reply=True
                ),
            )
        ).message_id
        for text in rest
    ]
    if more:
        await care.record_inbound(Inbound(survey.tg_user_id, "survey", None, tuple(more)))


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def score(
    callback: CallbackQuery,
    callback_data: SurveyCallback,
    state: FSMContext,
    bot: Bot,
    surveys: SurveyService,
    admin_chat: AdminChat,
    care: CareService,
    render: Renderer,
    lang: str,
    staff_lang: str,
    business: Business,
) -> None:
    stored = await state.get_state(), await state.get_data()
    # The next step is set first, so that the answer's own transaction stores it (one write per
    # tap); a tap that records nothing stores neither, and the conversation stays where it was.
    # The question for the comment is sent once both are stored: its message id is remembered
    # by this process, not stored (`SurveyService.comment_prompts`). Should the bot stop in
    # between, the score is kept and the customer's next words are taken as the comment (which
    # reaches the staff, as every comment does).
    await state.set_state(SurveyComment.text)
    await state.set_data({"survey_id": callback_data.id})
    try:
        outcome, survey = await surveys.answer(
            callback.from_user.id, callback_data.id, callback_data.score
        )
    except BaseException:
        await _back(state, *stored)
        raise
    if outcome is not SurveyOutcome.RECORDED or survey is None:
        await _back(state, *stored)
        label = {
            SurveyOutcome.ALREADY_ANSWERED: "survey_answered",
            SurveyOutcome.CLOSED: "survey_closed",
        }
        await callback.answer(
            render.label(lang, label.get(outcome, "stale_button")), show_alert=True
        )
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            render.text(lang, "survey_scored", survey=survey), reply_markup=None
        )
    if survey.low:
        await _tell_staff(bot, admin_chat, care, surveys, render, staff_lang, survey)
    builder = InlineKeyboardBuilder()
    builder.button(text=render.label(lang, "skip_birthday"), callback_data=SurveySkip(id=survey.id))
    prompt = await bot.send_message(
        callback.from_user.id,
        render.text(lang, "survey_ask_comment", survey=survey),
        reply_markup=builder.as_markup(),
    )
    surveys.prompt_sent(survey.id, prompt.message_id)
    if not isinstance(state.storage, SqlStorage):  # Redis: costs no database transaction
        await state.update_data(prompt_id=prompt.message_id)


async def _back(state: FSMContext, stored_state: str | None, data: dict[str, Any]) -> None:
    """The conversation as it was before the tap (nothing to write when it is unchanged)."""
    await state.set_state(stored_state)
    await state.set_data(data)


async def _close(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    render: Renderer,
    lang: str,
    business: Business,
    survey: SurveyView,
) -> None:
    await state.clear()
    markup = None
    if not survey.low and business.reviews:
        builder = InlineKeyboardBuilder()
        for link in business.reviews:
            builder.button(text=link.title, url=link.url)
        builder.adjust(1)
        markup = builder.as_markup()
    await bot.send_message(
        chat_id,
        render.text(lang, "survey_thanks", survey=survey, business=business),
        reply_markup=markup,
    )


async def _comment(
    state: FSMContext, surveys: SurveyService, tg_user_id: int, survey_id: int, text: str
) -> SurveyView | None:
    """The comment stored (empty: skipped), the conversation over: cleared first, so that the
    comment's own transaction stores that too (one write per message); should that transaction
    fail, the conversation stays where it was."""
    stored = await state.get_state(), await state.get_data()
    await state.clear()
    try:
        return await surveys.comment(tg_user_id, survey_id, text)
    except BaseException:
        await _back(state, *stored)
        raise


async def comment(
    message: Message,
    state: FSMContext,
    bot: Bot,
    surveys: SurveyService,
    admin_chat: AdminChat,
    care: CareService,
    render: Renderer,
    lang: str,
    staff_lang: str,
    business: Business,
) -> None:
    assert message.from_user is not None and message.text is not None
    data = await state.get_data()
    survey = await _comment(
        state, surveys, message.from_user.id, int(data["survey_id"]), message.text
    )
    if survey is None:
        return
    if survey.comment:
        await _tell_staff(bot, admin_chat, care, surveys, render, staff_lang, survey)
    # Its question's Skip button goes (stored in the conversation by an earlier version, or on
    # Redis; else remembered by this process: after a restart the button stays, answered as stale).
    remembered = surveys.take_prompt(survey.id)
    prompt_id = data.get("prompt_id", remembered)
    if prompt_id is not None:
        await bot.edit_message_reply_markup(
            chat_id=message.chat.id, message_id=prompt_id, reply_markup=None
        )
    await _close(bot, message.chat.id, state, render, lang, business, survey)


async def comment_expected(message: Message, render: Renderer, lang: str) -> None:
    await message.answer(render.text(lang, "survey_comment_text"))


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def skip(
    callback: CallbackQuery,
    callback_data: SurveySkip,
    state: FSMContext,
    bot: Bot,
    surveys: SurveyService,
    render: Renderer,
    lang: str,
    business: Business,
) -> None:
    data = await state.get_data()
    if data.get("survey_id") != callback_data.id:
        await callback.answer(render.label(lang, "stale_button"), show_alert=True)
        return
    survey = await _comment(state, surveys, callback.from_user.id, callback_data.id, "")
    surveys.take_prompt(callback_data.id)  # this is it
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)
    if survey is not None:
        await _close(bot, callback.from_user.id, state, render, lang, business, survey)


# ---- the staff's side -----------------------------------------------------------------------


@flags.callback_answer(disabled=True)  # answers the press itself (an alert, or before its edits)
async def complaint_button(
    callback: CallbackQuery,
    callback_data: ComplaintCallback,
    surveys: SurveyService,
    admin_chat: AdminChat,
    render: Renderer,
    staff_lang: str,
) -> None:
    if callback_data.action is ComplaintAct.ANSWER:
        await callback.answer(render.label(staff_lang, "complaint_how_to_answer"), show_alert=True)
        return
    done, survey = await surveys.resolve(admin_chat.staff_of(callback.from_user), callback_data.id)
    if survey is None:
        await callback.answer(render.label(staff_lang, "stale_button"), show_alert=True)
        return
    if not done:
        await callback.answer(
            render.label(staff_lang, "complaint_already", survey=survey), show_alert=True
        )
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            surveys.alert_texts(survey, staff_lang)[0],
            reply_markup=_alert_keyboard(render, staff_lang, survey),
        )


async def complaints(message: Message, surveys: SurveyService, staff_lang: str) -> None:
    await message.answer(surveys.complaints_text(staff_lang, await surveys.open_complaints()))


def period_days(text: str | None) -> int | None:
    """`/csat 7d`, `2w`, `3m` (30-day months), `90`; None when it does not parse."""
    if not text:
        return DEFAULT_PERIOD_DAYS
    match = _PERIOD.match(text.strip())
    if not match or match.end() != len(text.strip()):
        return None
    number, unit = int(match[1]), match[2].lower()
    days = number * {"w": 7, "н": 7, "m": 30, "м": 30}.get(unit, 1)
    return days if 1 <= days <= 3660 else None


async def csat(
    message: Message,
    command: CommandObject,
    surveys: SurveyService,
    render: Renderer,
    staff_lang: str,
) -> None:
    days = period_days(command.args)
    if days is None:
        await message.reply(render.text(staff_lang, "csat_usage", value=command.args))
        return
    await message.answer(surveys.csat_text(staff_lang, await surveys.csat(days), days))


def create_router() -> Router:
    router = Router(name="surveys")
    customer = Router(name="surveys-customer")
    customer.message.filter(F.chat.type == ChatType.PRIVATE)
    customer.callback_query.register(score, SurveyCallback.filter())
    customer.callback_query.register(skip, SurveyComment.text, SurveySkip.filter())
    customer.message.register(comment, SurveyComment.text, F.text, ~F.text.startswith("/"))
    customer.message.register(comment_expected, SurveyComment.text, ~F.text.startswith("/"))
    staff = admin_chat_router("surveys-staff")
    staff.message.register(complaints, Command("complaints"))
    staff.message.register(csat, Command("csat"))
    staff.callback_query.register(complaint_button, ComplaintCallback.filter())
    router.include_routers(customer, staff)
    return router
