"""/import in the admin chat: a staff member sends a CSV as a document with the caption
`/import customers` or `/import visits` (or just `/import`: the kind is told from the header).

The bot answers with the dry run's report, as a reply to the document, with an "Apply" button;
pressing it fetches the same document again (the report's `reply_to_message`: no state kept)
and writes it. A report longer than a message is cut, and the rejected lines come in full as a
CSV document. Only the admin chat's members get here (`admin_chat_router`); anyone else's
document is never fetched.
"""

from __future__ import annotations

import io
import logging

from aiogram import Bot, F, Router, flags
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    Document,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.rendering import Renderer
from bot.services.importing import ImportFileError, ImportReport, ImportService, Kind
from bot.telegram_text import TEXT_LIMIT, truncate_html
from handlers.callbacks import ImportAct, ImportCallback
from handlers.filters import admin_chat_router

log = logging.getLogger("carebot.import")

DOWNLOAD_LIMIT = 20 * 1024 * 1024  # what getFile serves; a bigger base goes through the CLI
LINES_SHOWN = 30  # rejected lines in the message; all of them in the CSV document
KINDS = {
    "customers": Kind.CUSTOMERS,
    "клиенты": Kind.CUSTOMERS,
    "visits": Kind.VISITS,
    "визиты": Kind.VISITS,
}


async def _fetch(bot: Bot, document: Document) -> bytes:
    if document.file_size and document.file_size > DOWNLOAD_LIMIT:
        raise ImportFileError("too_big", "over 20 MB: import it with carebot import")
    buffer = io.BytesIO()
    try:
        await bot.download(document, destination=buffer)
    except TelegramAPIError as error:
        log.warning("cannot fetch an import file_id=%s error=%s", document.file_id, error)
        raise ImportFileError("download", str(error)) from None
    return buffer.getvalue()


def _failed(render: Renderer, lang: str, error: ImportFileError) -> str:
    return render.text(
        lang, "import_failed", code=error.code, reason=str(error), details=error.details
    )


def _report_text(render: Renderer, lang: str, report: ImportReport) -> str:
    text = render.text(
        lang, "import_report", report=report, lines=report.rejected[:LINES_SHOWN], channel="chat"
    )
    return truncate_html(text, TEXT_LIMIT)


async def import_document(
    message: Message,
    command: CommandObject,
    bot: Bot,
    importer: ImportService,
    render: Renderer,
    staff_lang: str,
) -> None:
    document = message.document
    assert document is not None  # the filter
    word = (command.args or "").strip().casefold()
    kind = KINDS.get(word)
    if word and kind is None:
        await message.reply(render.text(staff_lang, "import_usage"))
        return
    try:
        data = await _fetch(bot, document)
        report = await importer.run(io.BytesIO(data), kind, apply=False)
    except ImportFileError as error:
        await message.reply(_failed(render, staff_lang, error))
        return
    markup = None
    if report.accepted:
        apply = ImportCallback(action=ImportAct.APPLY, kind=report.kind)
        markup = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=render.label(staff_lang, "import_apply"), callback_data=apply.pack()
                    )
                ]
            ]
        )
    await message.reply(_report_text(render, staff_lang, report), reply_markup=markup)
    await _send_rejected(message, render, staff_lang, report)


async def _send_rejected(
    message: Message, render: Renderer, lang: str, report: ImportReport
) -> None:
    if not (report.rejected_count or report.warning_count):
        return
    await message.reply_document(
        BufferedInputFile(report.rejected_csv(), filename=f"rejected-{report.kind}.csv"),
        caption=render.label(lang, "import_rejected"),
    )


@flags.callback_answer(pre=False)  # answered once the file is written (it can take a while)
async def apply_import(
    callback: CallbackQuery,
    callback_data: ImportCallback,
    bot: Bot,
    importer: ImportService,
    render: Renderer,
    staff_lang: str,
) -> None:
    report_message = callback.message
    source = report_message.reply_to_message if isinstance(report_message, Message) else None
    if not isinstance(report_message, Message) or source is None or source.document is None:
        if isinstance(report_message, Message):
            await report_message.reply(render.text(staff_lang, "import_stale"))
        return
    try:
        data = await _fetch(bot, source.document)
        report = await importer.run(io.BytesIO(data), callback_data.kind, apply=True)
    except ImportFileError as error:
        await report_message.reply(_failed(render, staff_lang, error))
        return
    log.info(
        "imported kind=%s by=%s customers_new=%s visits_new=%s rejected=%s",
        report.kind,
        callback.from_user.id,
        report.customers_new,
        report.visits_new,
        report.rejected_count,
    )
    await report_message.edit_text(_report_text(render, staff_lang, report), reply_markup=None)


async def usage(message: Message, render: Renderer, staff_lang: str) -> None:
    await message.reply(render.text(staff_lang, "import_usage"))


def create_router() -> Router:
    router = admin_chat_router("import")
    router.message.register(import_document, Command("import"), F.document)
    router.message.register(usage, Command("import"))
    router.callback_query.register(apply_import, ImportCallback.filter(F.action == ImportAct.APPLY))
    return router
