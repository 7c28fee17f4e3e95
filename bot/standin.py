"""The Bot API stand-in: Telegram over real HTTP on this machine, and the people who talk to the
bot through it. The end-to-end tests run the bot against it (tests/telegram_server.py re-exports
it), and so does `carebot demo` (bot/demo/), which shows its chats in a browser.

Written by hand: no maintained library provides a Bot API server a real bot can long-poll
(aiogram's own tests replace the session with a mock instead), and we want the bot's real
HTTP client, serialisation and polling loop under test. It implements only the methods
carebot calls and answers anything else with 400 so a new call is noticed at once.

It is as strict as Telegram where a bot can get things wrong unnoticed in the happy path:
lengths in UTF-16 code units after HTML parsing (and HTML Telegram cannot parse), callback
data in bytes, 20 new messages a minute per group (on by default), and 429s, 5xx, latency or
a server that never answers when a test asks for them. Every refusal is recorded
(`refused`), so a test can assert that the bot kept to the limits.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Carebot", "username": "carebot_test_bot"}
# The fake senders Telegram puts in `from` when a message is sent on behalf of a chat:
GROUP_ANONYMOUS_BOT = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
TELEGRAM_SERVICE = {"id": 777000, "is_bot": False, "first_name": "Telegram"}  # automatic forwards
LINKED_CHANNEL = -1009876543210

# Telegram's limits (core.telegram.org/bots/api, /bots/faq "broadcasting").
TEXT_LIMIT = 4096  # UTF-16 code units of a message text, after entity parsing
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64  # bytes, UTF-8
CALLBACK_ANSWER_LIMIT = 200  # answerCallbackQuery text
GROUP_PER_MINUTE = 20
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # bytes getFile serves (a bigger file: "file is too big")
UPLOAD_LIMIT = 50 * 1024 * 1024  # bytes a bot may upload in one call (a bigger request: 413)
UPLOADS = "_uploads"  # the parameter under which a call keeps the files it uploaded (Call.upload)
ALBUM_MIN, ALBUM_MAX = 2, 10  # sendMediaGroup: items in one album
PHOTO_LIMIT = 10 * 1024 * 1024  # bytes of an uploaded photo
# What Telegram takes as a photo: PNG and JPEG (by their first bytes).
PHOTO_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
# Payments (core.telegram.org/bots/api#sendinvoice, /bots/payments): the limits of an invoice,
# the provider token a test bot is given in @BotFather (any other: PAYMENT_PROVIDER_INVALID),
# and the currencies it knows (ISO 4217; XTR, Telegram Stars, takes no provider token).
INVOICE_TITLE_LIMIT = 32
INVOICE_DESCRIPTION_LIMIT = 255
INVOICE_PAYLOAD_LIMIT = 128  # bytes, UTF-8
PROVIDER_TOKEN = "381764678:TEST:carebot-test-provider"
CURRENCIES = frozenset({"RUB", "USD", "EUR", "GBP", "KZT", "UAH", "BYN", "UZS", "GEL", "AMD"})
PRE_CHECKOUT_SECONDS = 10  # a pre_checkout_query must be answered within this

_JSON_PARAMS = {
    "reply_markup",
    "entities",
    "allowed_updates",
    "commands",
    "scope",
    "link_preview_options",
    "reply_parameters",
    "caption_entities",
    "media",
    "reaction",
    "prices",
    "suggested_tip_amounts",
}
_INT_PARAMS = {
    "chat_id",
    "message_id",
    "offset",
    "limit",
    "timeout",
    "from_chat_id",
    "user_id",
    "message_thread_id",
    "reply_to_message_id",
}
_SEND_METHODS = {
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "sendVoice",
    "sendVideo",
    "sendSticker",
    "sendAudio",
    "sendAnimation",
    "sendLocation",
}
# Methods that post a new message into a chat: Telegram's flood limits count these (an album
# counts as many messages as it has items).
_CREATING = _SEND_METHODS | {"copyMessage", "forwardMessage", "sendMediaGroup", "sendInvoice"}
# What a message carries, as opposed to where it is: copied by copyMessage.
_CONTENT = {
    "text",
    "entities",
    "caption",
    "caption_entities",
    "photo",
    "voice",
    "video",
    "document",
    "sticker",
    "audio",
    "animation",
    "location",
    "video_note",
    "contact",
    "invoice",
}
# Sample content of each kind, as a Telegram client would send it.
MEDIA: dict[str, Any] = {
    "photo": [{"file_id": "photo-1", "file_unique_id": "p1", "width": 90, "height": 90}],
    "voice": {"file_id": "voice-1", "file_unique_id": "v1", "duration": 3},
    "video": {
        "file_id": "video-1",
        "file_unique_id": "vd1",
        "width": 640,
        "height": 480,
        "duration": 5,
    },
    "document": {"file_id": "doc-1", "file_unique_id": "d1", "file_name": "price.pdf"},
    "audio": {"file_id": "audio-1", "file_unique_id": "a1", "duration": 60},
    "animation": {
        "file_id": "gif-1",
        "file_unique_id": "g1",
        "width": 90,
        "height": 90,
        "duration": 2,
    },
    "sticker": {
        "file_id": "sticker-1",
        "file_unique_id": "s1",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    },
    "video_note": {"file_id": "note-1", "file_unique_id": "n1", "length": 240, "duration": 4},
    "location": {"latitude": 55.75, "longitude": 37.62},
}


# Methods that take business_connection_id (Bot API 7.2+; copyMessage and forwardMessage do not),
# and how long after the customer's last message a connected bot may still write (BusinessBotRights
# can_reply: "private chats that had incoming messages in the last 24 hours").
BUSINESS_METHODS = frozenset(
    {
        *_SEND_METHODS,
        "sendMediaGroup",
        "sendChatAction",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
    }
)
BUSINESS_REPLY_WINDOW = 24 * 3600.0

# Calls that change nothing a person sees in the chat; skipped when a test waits for another method.
_LOOKUPS = {"getChat", "getChatMember", "setMessageReaction", "getBusinessConnection"}
_BOOKKEEPING = _LOOKUPS | {"answerCallbackQuery"}


class BadRequest(Exception):
    """What the test server answers with 400, as Telegram would."""


# ---- text as Telegram measures it ---------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of every Telegram text limit and entity offset."""
    return len(text.encode("utf-16-le")) // 2


_HTML_TAGS = {
    "a",
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "tg-emoji",
    "code",
    "pre",
    "blockquote",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACE = " \t\r\n\v\f"
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = frozenset("0123456789abcdefABCDEF")
_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def _html_entity(text: str, start: int) -> tuple[str, int] | None:
    """The character an entity at `start` (an '&') stands for and where it ends, or None when
    it is no entity: Telegram then keeps the '&' as a literal character (TDLib parse_html)."""
    end, value = start + 1, 0
    if text[end : end + 1] == "#":
        end += 1
        if text[end : end + 1] == "x":
            end += 1
            while end < len(text) and text[end] in _HEX:
                value = value * 16 + int(text[end], 16)
                end += 1
        else:
            while end < len(text) and text[end].isascii() and text[end].isdigit():
                value = value * 10 + int(text[end])
                end += 1
        if value == 0 or value >= 0x10FFFF or end - start >= 10:
            return None
        char = chr(value)
    else:
        while end < len(text) and text[end] in _ASCII_LETTERS:
            end += 1
        named = _NAMED_ENTITIES.get(text[start + 1 : end])
        if named is None:
            return None
        char = named
    if text[end : end + 1] == ";":
        end += 1
    return char, end


def parse_html(text: str) -> str:
    """The text a chat shows for `text` sent with parse_mode HTML: tags removed, entities decoded.

    Raises BadRequest with Telegram's "can't parse entities: …" for what it refuses: an unknown
    tag, a bare '<', unclosed or unmatched tags, a span without class="tg-spoiler". Follows
    TDLib's parse_html (td/telegram/MessageEntity.cpp); offsets in messages are UTF-8 bytes.
    """
    out: list[str] = []
    open_tags: list[tuple[str, str, int]] = []  # tag, argument, length of `out` when it opened
    n, i = len(text), 0

    def fail(message: str) -> BadRequest:
        return BadRequest(f"can't parse entities: {message}")

    def at(pos: int) -> int:
        return len(text[:pos].encode())

    while i < n:
        char = text[i]
        if char == "&":
            decoded = _html_entity(text, i)
            if decoded is not None:
                out.append(decoded[0])
                i = decoded[1]
                continue
        if char != "<":
            out.append(char)
            i += 1
            continue
        begin, i = i, i + 1
        if text[i : i + 1] != "/":  # a start tag
            while i < n and text[i] not in _SPACE and text[i] != ">":
                i += 1
            if i >= n:
                raise fail(f"Unclosed start tag at byte offset {at(begin)}")
            tag = text[begin + 1 : i].lower()
            if tag not in _HTML_TAGS:
                raise fail(f'Unsupported start tag "{tag}" at byte offset {at(begin)}')
            argument = ""
            while i < n and text[i] != ">":
                while i < n and text[i] in _SPACE:
                    i += 1
                if i < n and text[i] == ">":
                    break
                name_start = i
                while i < n and text[i] not in _SPACE and text[i] not in "=>/\"'":
                    i += 1
                name = text[name_start:i]
                if not name:
                    raise fail(
                        f'Empty attribute name in the tag "{tag}" at byte offset {at(begin)}'
                    )
                while i < n and text[i] in _SPACE:
                    i += 1
                if i >= n:
                    raise fail(f'Unclosed start tag "{tag}" at byte offset {at(begin)}')
                if text[i] != "=":
                    if tag == "blockquote" and name == "expandable":
                        argument = "1"
                    continue
                i += 1
                while i < n and text[i] in _SPACE:
                    i += 1
                if i >= n:
                    raise fail(f'Unclosed start tag "{tag}" at byte offset {at(begin)}')
                if text[i] not in "\"'":
                    token_start = i
                    while i < n and text[i] in _TOKEN:
                        i += 1
                    value = text[token_start:i].lower()
                    if i < n and text[i] not in _SPACE and text[i] != ">":
                        raise fail(f"Unexpected end of name token at byte offset {at(token_start)}")
                else:
                    quote, i = text[i], i + 1
                    chars: list[str] = []
                    while i < n and text[i] != quote:
                        decoded = _html_entity(text, i) if text[i] == "&" else None
                        if decoded is not None:
                            chars.append(decoded[0])
                            i = decoded[1]
                        else:
                            chars.append(text[i])
                            i += 1
                    value = "".join(chars)
                    if i < n:
                        i += 1
                if i >= n:
                    raise fail(f"Unclosed start tag at byte offset {at(begin)}")
                if (tag, name) in {("a", "href"), ("tg-emoji", "emoji-id")}:
                    argument = value
                elif tag == "code" and name == "class" and value.startswith("language-"):
                    argument = value.removeprefix("language-")
                elif tag == "span" and name == "class" and value.startswith("tg-"):
                    argument = value.removeprefix("tg-")
                elif tag == "blockquote" and name == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {at(begin)}')
            open_tags.append((tag, argument, len(out)))
            i += 1  # past '>'
        else:  # an end tag
            if not open_tags:
                raise fail(f"Unexpected end tag at byte offset {at(begin)}")
            i += 1
            name_start = i
            while i < n and text[i] not in _SPACE and text[i] != ">":
                i += 1
            end_tag = text[name_start:i].lower()
            while i < n and text[i] in _SPACE:
                i += 1
            if i >= n or text[i] != ">":
                raise fail(f"Unclosed end tag at byte offset {at(begin)}")
            tag, argument, opened_at = open_tags[-1]
            if end_tag and end_tag != tag:
                raise fail(
                    f'Unmatched end tag at byte offset {at(begin)}, expected "</{tag}>", found "</{end_tag}>"'
                )
            if (
                tag == "tg-emoji"
                and len(out) > opened_at
                and not (argument.isdigit() and int(argument))
            ):
                raise fail("Invalid custom emoji identifier specified")
            open_tags.pop()
            i += 1
    if open_tags:
        raise fail(f"Can't find end tag corresponding to start tag {open_tags[-1][0]}")
    shown = "".join(out)
    if any("\ud800" <= c <= "\udfff" for c in shown):
        raise fail(
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units"
        )
    return shown


def visible_text(text: str, parse_mode: str | None) -> str:
    """What the chat shows for `text` (entities given as a parameter leave the text as it is;
    parse_mode, when present, wins over them, as in the Bot API server)."""
    mode = (parse_mode or "").lower()
    if mode in ("", "none"):
        return text
    if mode == "html":
        return parse_html(text)
    if mode in ("markdown", "markdownv2"):
        raise BadRequest(f"test server: parse_mode {parse_mode} not supported (carebot sends HTML)")
    raise BadRequest("unsupported parse_mode")


# ---- what the bot's calls were --------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A file the bot uploaded with a call (multipart/form-data), as the server received it."""

    filename: str
    data: bytes


@dataclass
class Call:
    """One request the bot made, with its parsed parameters."""

    method: str
    params: dict[str, Any]
    chat_id: int | None  # the chat it was sent to (None for answers to button presses)
    user_id: int | None = None  # for answerCallbackQuery: who pressed the button
    result: Any = None
    at: float = field(default_factory=time.monotonic)  # when the server received it
    error_code: int | None = None  # when refused: 400, 403, 429, 500, 502
    description: str | None = None  # when refused, Telegram's words
    retry_after: int | None = None  # with a 429
    template: str | None = None  # the template (or label key) that rendered `text`, when known
    labels: list[str | None] = field(default_factory=list)  # label keys of `buttons`, when known

    @property
    def ok(self) -> bool:
        return self.error_code is None

    @property
    def message(self) -> dict[str, Any]:
        """What the chat shows for the message this call created (after copies, with content)."""
        return self.result if isinstance(self.result, dict) else {}

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

    def upload(self, param: str = "document") -> Upload:
        """The file this call uploaded as `param` (sent as `attach://<name>` plus a file part)."""
        reference = str(self.params.get(param) or "").removeprefix("attach://")
        return self.params[UPLOADS][reference]

    @property
    def album(self) -> list[dict[str, Any]]:
        """sendMediaGroup: its items as sent (`type`, `media`, `caption`, …), in order."""
        return list(self.params.get("media") or [])

    def album_uploads(self) -> list[Upload]:
        """sendMediaGroup: the file each item uploaded (`attach://<name>`), in order."""
        uploads = self.params.get(UPLOADS) or {}
        return [uploads[str(item["media"]).removeprefix("attach://")] for item in self.album]

    @property
    def markup(self) -> dict[str, Any]:
        return self.params.get("reply_markup") or {}

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Inline buttons, row after row, flattened."""
        return [b for row in self.markup.get("inline_keyboard", []) for b in row]

    @property
    def button_texts(self) -> list[str]:
        return [b["text"] for b in self.buttons]

    @property
    def keyboard(self) -> list[dict[str, Any]]:
        """Reply keyboard buttons, flattened."""
        return [b for row in self.markup.get("keyboard", []) for b in row]

    def button(self, contains: str) -> dict[str, Any]:
        found = [b for b in self.buttons if contains in b["text"]]
        assert len(found) == 1, f"no single button with {contains!r} in {self.button_texts}"
        return found[0]


class _Refusal(Exception):
    """An error answer decided before the method runs."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


@dataclass
class PreCheckout:
    """A customer's "Pay" on an invoice: the pre_checkout_query Telegram sent the bot, and the
    bot's answer (`answered` None until answerPreCheckoutQuery came)."""

    id: str
    user_id: int
    invoice: dict[str, Any]  # the sendInvoice parameters of the invoice being paid
    at: float
    answered: bool | None = None
    error_message: str | None = None
    paid: bool = False  # the successful_payment message went to the bot


@dataclass
class TelegramServer:
    token: str
    calls: list[Call] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)  # chats whose sends answer 403
    url: str = ""
    # Telegram's limits and faults; each can also be set on a running server.
    group_per_minute: int | None = (
        GROUP_PER_MINUTE  # new messages per group (chat id < 0) per 60 s; None: off
    )
    rate_limit: int | None = None  # sends per second across all chats; beyond it 429
    # Sends into one private chat closer together than this many seconds answer 429 (Telegram:
    # about one a second); None: off.
    chat_gap: float | None = None
    # Sends with allow_paid_broadcast: their own sliding second, up to this many (Telegram: 1,000,
    # paid in Stars); they are counted in `paid_sent` and not in `rate_limit`'s second.
    paid_rate_limit: int = 1000
    fail_ratio: float = 0.0  # share of sends answered with 500
    fail_every: int | None = None  # every Nth send answers 500, then 502, alternately
    latency: float = (
        0.0  # seconds before answering any method but getUpdates (after it took effect)
    )
    hang: bool = False  # accept requests and never answer them (getUpdates too)
    require_started: bool = False  # sends to a private chat whose person never wrote answer 403
    clock: Callable[[], float] = time.monotonic  # for the rate windows; a test may move it

    def __post_init__(self) -> None:
        self.scripted: list[
            tuple[int, str, int | None]
        ] = []  # (code, description, retry_after) for the next sends
        self.throttled = 0  # 429s answered
        self.throttled_per_chat: collections.Counter[int] = collections.Counter()
        self._throttles: dict[int, list[int]] = {}  # chat id → retry_after of its next 429s
        self._recent_sends: collections.deque[float] = collections.deque()
        self._recent_paid: collections.deque[float] = collections.deque()
        self._chat_last: dict[int, float] = {}  # private chat → its last accepted send
        self.paid_sent = 0  # sends accepted with allow_paid_broadcast
        self._group_sends: dict[int, collections.deque[float]] = {}
        self._sends_seen = 0
        self._random = random.Random(7)
        self.forum_chats: set[int] = set()  # groups with topics
        self.members: dict[int, set[int]] = {}  # group id → member user ids
        self.statuses: dict[
            int, dict[int, str]
        ] = {}  # group id → user id → "administrator" or "creator"
        self.anonymous_admins: dict[int, set[int]] = {}  # group id → admins who post as the group
        self.channels: dict[int, str] = {LINKED_CHANNEL: "Канал салона"}  # channel id → title
        self.started: set[int] = set()  # users who wrote to the bot in private
        self.topics: dict[int, dict[int, str]] = {}  # group id → thread id → name
        self.files: dict[str, bytes] = {}  # file_id → content, for getFile and its download
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._changed = asyncio.Condition()
        self.messages: dict[
            tuple[Any, Any], dict[str, Any]
        ] = {}  # (chat id, message id) → what the chat shows now
        self._callback_authors: dict[str, int] = {}
        self.presses: list[str] = []  # callback_query ids, in the order pressed
        self._presses_answered: set[str] = set()
        self.delivered = 0  # highest update_id handed to the bot
        self.hung = 0  # requests left unanswered while `hang` was on
        self.pushed = 0  # highest update_id pushed
        self.polls = 0  # getUpdates requests received
        # The in-process harness (tests/harness.py) sets these: `feed` takes each update at once
        # instead of getUpdates, `settle` returns once the bot is idle (Person.quiet).
        self.feed: Callable[[dict[str, Any]], None] | None = None
        self.settle: Callable[[], Awaitable[None]] | None = None
        self.templates: dict[
            str, str
        ] = {}  # rendered text → template name, when the harness records it
        self._runner: web.AppRunner | None = None
        # Payments: the provider tokens connected in @BotFather, each "Pay" (pre_checkout_query)
        # by id, and the charge ids of every successful payment.
        self.provider_tokens: set[str] = {PROVIDER_TOKEN}
        self.pre_checkouts: dict[str, PreCheckout] = {}
        self._charges = itertools.count(1)
        # Telegram Business: connections by id (as getBusinessConnection answers), the messages of
        # the accounts' chats (the bot is no member there: copyMessage cannot reach them), and
        # when each (connection, chat) last had a message from the customer (the 24 hours).
        self.business_connections: dict[str, dict[str, Any]] = {}
        self.business_messages: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.business_last_in: dict[tuple[str, int], float] = {}

    async def start(self) -> None:
        app = web.Application(client_max_size=UPLOAD_LIMIT + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._download)
        # A bot that stops polling drops its long poll; cancel that getUpdates at once.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    # ---- what tests arrange and read ----------------------------------------------------------

    def throttle(self, chat_id: int, retry_after: int, times: int = 1) -> None:
        """The next `times` sends into `chat_id` answer 429 with this retry_after; other chats don't."""
        self._throttles.setdefault(chat_id, []).extend([retry_after] * times)

    def sent_to(self, chat_id: int) -> list[Call]:
        """Messages the bot made appear in `chat_id` (sends, copies, forwards that succeeded)."""
        return [c for c in self.calls if c.chat_id == chat_id and c.method in _CREATING and c.ok]

    @property
    def refused(self) -> list[Call]:
        """Every call answered with an error (see Call.error_code, .description, .retry_after)."""
        return [c for c in self.calls if not c.ok]

    # ---- the bot's side -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if self.hang:
            self.hung += 1
            await asyncio.Event().wait()  # until the client gives up or the server stops
        if request.match_info["token"] != self.token:
            status, body = self._error(401, "Unauthorized")
            return web.json_response(body, status=status)
        method = request.match_info["method"]
        params = await self._params(request)
        if method == "getUpdates":
            return web.json_response(self._ok(await self._get_updates(params))[1])
        status, body = await self.call(method, params)
        return web.json_response(body, status=status)

    async def _download(self, request: web.Request) -> web.Response:
        """A file's content at the path getFile gave (`/file/bot<token>/<file_path>`)."""
        data = (
            self.file_content(request.match_info["path"])
            if (request.match_info["token"] == self.token)
            else None
        )
        if data is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=data, content_type="application/octet-stream")

    def file_content(self, file_path: str) -> bytes | None:
        """What a download of getFile's `file_path` gets (None: no such file)."""
        return self.files.get(file_path.rsplit("/", 1)[-1])

    def host_file(self, data: bytes) -> str:
        """A file a person sends: its file_id, which getFile and a download then serve."""
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = data
        return file_id

    async def call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One Bot API call with its parameters as the server reads them (`decode`): the HTTP
        status and the JSON body Telegram would answer with. The in-process harness
        (tests/harness.py) calls this directly instead of going over HTTP."""
        answer = await self._answer(method, params)
        if self.latency:
            await asyncio.sleep(
                self.latency
            )  # it took effect; the answer is late (a kill now repeats it)
        return answer

    async def _answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        handler = getattr(self, f"_m_{method}", None)
        chat_id = params.get("chat_id") if isinstance(params.get("chat_id"), int) else None
        call = Call(
            method,
            params,
            chat_id,
            self._callback_authors.get(
                str(params.get("callback_query_id") or params.get("pre_checkout_query_id"))
            ),
        )
        if handler is None and method not in _SEND_METHODS:
            return await self._refuse(call, 400, f"test server: {method} not supported")
        # Everything here up to the record is synchronous: no other request runs in between,
        # so a limit checked is a limit kept.
        try:
            self._validate(method, params)
            self._check_business(method, params)
            if method in _CREATING:
                self._limits(
                    chat_id,
                    len(params.get("media") or [1]),
                    paid=str(params.get("allow_paid_broadcast", "")).lower() in ("true", "1"),
                )
            if chat_id in self.blocked:
                raise _Refusal(
                    403,
                    "Forbidden: bot was blocked by the user"
                    if chat_id > 0
                    else "Forbidden: bot was kicked from the supergroup chat",
                )
            if (
                self.require_started
                and chat_id is not None
                and chat_id > 0
                and method in _CREATING
                and chat_id not in self.started
                and not params.get("business_connection_id")  # the account's chat, not the bot's
            ):
                raise _Refusal(403, "Forbidden: bot can't initiate conversation with a user")
            call.result = handler(params) if handler else self._send(method, params)
            self._as_business(params, call.result)
        except BadRequest as error:
            return await self._refuse(call, 400, f"Bad Request: {error}")
        except _Refusal as refusal:
            return await self._refuse(call, refusal.code, refusal.description, refusal.retry_after)
        if method in _CREATING and chat_id is not None and chat_id < 0:
            self._group_sends.setdefault(chat_id, collections.deque()).extend(
                [self.clock()] * len(params.get("media") or [1])
            )
        await self._record(call)
        return self._ok(call.result)

    async def _refuse(
        self, call: Call, code: int, description: str, retry_after: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        call.error_code, call.description, call.retry_after = code, description, retry_after
        if code == 429:
            self.throttled += 1
            if call.chat_id is not None:
                self.throttled_per_chat[call.chat_id] += 1
        await self._record(call)
        return self._error(code, description, retry_after)

    def _limits(self, chat_id: int | None, messages: int = 1, paid: bool = False) -> None:
        """Scripted errors, per-chat 429s, the global rate (sliding second), the group limit
        (sliding minute; an album of `messages` items needs room for all of them), and injected
        5xx, in that order; raises the refusal."""
        if self.scripted:
            code, description, retry_after = self.scripted.pop(0)
            raise _Refusal(code, description, retry_after)
        queued = self._throttles.get(chat_id) if chat_id is not None else None
        if queued:
            retry_after = queued.pop(0)
            raise _Refusal(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        now = self.clock()
        recent = self._recent_paid if paid else self._recent_sends
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        limit = self.paid_rate_limit if paid else self.rate_limit
        if limit is not None and len(recent) >= limit:
            raise _Refusal(429, "Too Many Requests: retry after 1", 1)
        if (
            self.chat_gap is not None
            and chat_id is not None
            and chat_id > 0
            and now - self._chat_last.get(chat_id, float("-inf")) < self.chat_gap
        ):
            raise _Refusal(429, "Too Many Requests: retry after 1", 1)
        if self.group_per_minute is not None and chat_id is not None and chat_id < 0:
            window = self._group_sends.setdefault(chat_id, collections.deque())
            while window and now - window[0] >= 60.0:
                window.popleft()
            if len(window) + messages > self.group_per_minute:
                oldest = (
                    window[min(len(window) - 1, len(window) + messages - 1 - self.group_per_minute)]
                    if window
                    else now
                )
                retry_after = max(1, math.ceil(oldest + 60.0 - now))
                raise _Refusal(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        self._sends_seen += 1
        if self.fail_every and self._sends_seen % self.fail_every == 0:
            if (self._sends_seen // self.fail_every) % 2:
                raise _Refusal(500, "Internal Server Error")
            raise _Refusal(502, "Bad Gateway")
        if self.fail_ratio and self._random.random() < self.fail_ratio:
            raise _Refusal(500, "Internal Server Error")
        recent.append(now)
        self.paid_sent += paid
        if chat_id is not None and chat_id > 0:
            self._chat_last[chat_id] = now

    # ---- what Telegram refuses before sending anything ----------------------------------------

    def _validate(self, method: str, params: dict[str, Any]) -> None:
        if method == "sendMediaGroup":
            self._check_album(params)
        elif method == "sendPhoto" and UPLOADS in params:
            reference = str(params.get("photo") or "").removeprefix("attach://")
            self._check_photo(params[UPLOADS].get(reference))
        if method == "sendInvoice":
            self._check_invoice(params)
        if method in ("sendMessage", "editMessageText"):
            self._check_text(params, "text", TEXT_LIMIT)
        elif method in _SEND_METHODS or method in ("copyMessage", "editMessageCaption"):
            self._check_text(params, "caption", CAPTION_LIMIT)
        elif method == "answerCallbackQuery":
            if utf16_len(str(params.get("text") or "")) > CALLBACK_ANSWER_LIMIT:
                raise BadRequest("MESSAGE_TOO_LONG")
        self._check_markup(params.get("reply_markup"))

    @classmethod
    def _check_album(cls, params: dict[str, Any]) -> None:
        """2 to 10 items; photos and videos mix, documents or audio only with their own kind;
        each caption within the caption limit; each uploaded file present (and a photo an image)."""
        media = params.get("media")
        if not isinstance(media, list) or not media:
            raise BadRequest("media must be a non-empty array")
        if not ALBUM_MIN <= len(media) <= ALBUM_MAX:
            raise BadRequest("wrong number of media: must include 2-10 items")
        kinds = {item.get("type") if isinstance(item, dict) else None for item in media}
        if not kinds <= {"photo", "video", "document", "audio"}:
            raise BadRequest("unsupported media type in a media group")
        if len(kinds) > 1 and not kinds <= {"photo", "video"}:
            raise BadRequest("documents and audio can't be mixed with other media types")
        uploads = params.get(UPLOADS) or {}
        for item in media:
            cls._check_text(item, "caption", CAPTION_LIMIT)
            reference = str(item.get("media") or "")
            if reference.startswith("attach://"):
                upload = uploads.get(reference.removeprefix("attach://"))
                if upload is None:
                    raise BadRequest("wrong file identifier/HTTP URL specified")
                if item["type"] == "photo":
                    cls._check_photo(upload)
            elif not reference:
                raise BadRequest("MEDIA_EMPTY")

    def _check_invoice(self, params: dict[str, Any]) -> None:
        """An invoice as Telegram checks it: title 1-32 characters, description 1-255, payload
        1-128 bytes, a currency it knows, prices a non-empty list of labelled positive amounts
        (integers in the currency's smallest units), and a provider token connected to the bot
        (none for XTR)."""
        title, description = str(params.get("title") or ""), str(params.get("description") or "")
        if not title.strip() or utf16_len(title) > INVOICE_TITLE_LIMIT:
            raise BadRequest("INVOICE_TITLE_INVALID" if title.strip() else "title is empty")
        if not description.strip() or utf16_len(description) > INVOICE_DESCRIPTION_LIMIT:
            raise BadRequest(
                "INVOICE_DESCRIPTION_INVALID" if description.strip() else "description is empty"
            )
        payload = str(params.get("payload") or "")
        if not payload or len(payload.encode()) > INVOICE_PAYLOAD_LIMIT:
            raise BadRequest("INVOICE_PAYLOAD_INVALID")
        currency = str(params.get("currency") or "")
        if currency != "XTR" and currency not in CURRENCIES:
            raise BadRequest("CURRENCY_INVALID")
        prices = params.get("prices")
        if not isinstance(prices, list) or not prices:
            raise BadRequest("prices must be a non-empty array")
        for price in prices:
            label = price.get("label") if isinstance(price, dict) else None
            amount = price.get("amount") if isinstance(price, dict) else None
            if not label or not str(label).strip():
                raise BadRequest("LABEL_INVALID")
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                raise BadRequest("CURRENCY_TOTAL_AMOUNT_INVALID")
        token = str(params.get("provider_token") or "")
        if currency == "XTR":
            if token or len(prices) != 1:
                raise BadRequest("STARS_INVOICE_INVALID")
        elif token not in self.provider_tokens:
            raise BadRequest("PAYMENT_PROVIDER_INVALID")

    @staticmethod
    def _check_photo(upload: Upload | None) -> None:
        """An uploaded photo is a PNG or JPEG of at most 10 MB (anything else: Telegram cannot
        process it)."""
        if upload is None:
            return
        if len(upload.data) > PHOTO_LIMIT:
            raise BadRequest("PHOTO_SAVE_FILE_INVALID")
        if not upload.data.startswith(PHOTO_SIGNATURES):
            raise BadRequest("IMAGE_PROCESS_FAILED")

    @staticmethod
    def _check_text(params: dict[str, Any], key: str, limit: int) -> None:
        """Without parse_mode the text is measured as sent (entities given as a parameter change
        nothing that is counted); with HTML, what remains after parsing."""
        raw = params.get(key)
        if key == "text" and not raw:
            raise BadRequest("message text is empty")
        if raw is None or raw == "":
            return  # no caption
        shown = visible_text(str(raw), params.get("parse_mode")).strip()
        if key == "text" and not shown:
            raise BadRequest("message text is empty")
        if utf16_len(shown) > limit:
            raise BadRequest(
                "message is too long" if key == "text" else "message caption is too long"
            )

    @staticmethod
    def _check_markup(markup: Any) -> None:
        if not isinstance(markup, dict):
            return
        for row in markup.get("inline_keyboard") or []:
            for button in row:
                if not str(button.get("text") or ""):
                    raise BadRequest("BUTTON_TEXT_INVALID")
                data = button.get("callback_data")
                if data is not None and len(str(data).encode()) > CALLBACK_DATA_LIMIT:
                    raise BadRequest("BUTTON_DATA_INVALID")
                actions = {k for k, v in button.items() if k != "text" and v not in (None, "")}
                if not actions:
                    raise BadRequest(
                        "can't parse inline keyboard button: Text buttons are not allowed in the "
                        "inline keyboard"
                    )
        for row in markup.get("keyboard") or []:
            for button in row:
                text = button if isinstance(button, str) else button.get("text")
                if not text:
                    raise BadRequest("BUTTON_TEXT_INVALID")

    @staticmethod
    def _error(
        code: int, description: str, retry_after: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return code, body

    @classmethod
    async def _params(cls, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            raw: dict[str, Any] = await request.json()
        else:
            raw = dict((await request.post()).items())
        return cls.decode(raw)

    @staticmethod
    def decode(raw: dict[str, Any]) -> dict[str, Any]:
        """Form fields as a bot sends them (JSON-encoded objects, numbers as text) → parameters."""
        params: dict[str, Any] = {}
        uploads: dict[str, Upload] = {}
        for key, value in raw.items():
            if isinstance(value, str) and key in _JSON_PARAMS:
                value = json.loads(value)
            elif isinstance(value, str) and key in _INT_PARAMS and value.lstrip("-").isdigit():
                value = int(value)
            elif isinstance(value, Upload):  # the in-process harness read the file already
                uploads[key] = value
                value = f"<file {value.filename}>"
            elif not isinstance(value, (str, int, float, bool, dict, list)) and value is not None:
                if hasattr(value, "file"):  # aiohttp's FileField: keep what was uploaded
                    uploads[key] = Upload(value.filename or key, value.file.read())
                value = f"<file {getattr(value, 'filename', '')}>"
            params[key] = value
        if uploads:
            params[UPLOADS] = uploads
        return params

    @staticmethod
    def _ok(result: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"ok": True, "result": result}

    def template_of(self, text: str) -> str | None:
        """The template (or label key) that rendered `text`, or else its beginning up to a blank
        line (a care card above the customer's own words)."""
        head = text.strip()
        while head not in self.templates and "\n\n" in head:
            head = head.rsplit("\n\n", 1)[0]
        return self.templates.get(head)

    async def _record(self, call: Call) -> None:
        if call.text:
            call.template = self.template_of(call.text)
        call.labels = [self.templates.get(text.strip()) for text in call.button_texts]
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        async with self._changed:
            self.polls += 1
            self._changed.notify_all()
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: bool(self._updates)), timeout)
            except TimeoutError:
                pass
            batch = list(self._updates[: int(params.get("limit") or 100)])
            if batch:
                self.delivered = max(self.delivered, batch[-1]["update_id"])
                self._changed.notify_all()
            return batch

    def _chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "someone"}
        if chat_id in self.channels:
            return {"id": chat_id, "type": "channel", "title": self.channels[chat_id]}
        return {
            "id": chat_id,
            "type": "supergroup",
            "title": "Staff",
            "is_forum": chat_id in self.forum_chats,
        }

    def _new_message(self, chat_id: int, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        thread_id = params.get("message_thread_id")
        if thread_id is not None:
            if thread_id not in self.topics.get(chat_id, {}):
                raise BadRequest("message thread not found")
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": BOT_USER,
            **content,
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        replied_id = (params.get("reply_parameters") or {}).get("message_id") or params.get(
            "reply_to_message_id"
        )
        replied = self.messages.get((chat_id, replied_id)) if replied_id else None
        if replied is not None:  # as Telegram shows it: the message replied to, one level deep
            message["reply_to_message"] = {
                k: v for k, v in replied.items() if k != "reply_to_message"
            }
        if (params.get("reply_markup") or {}).get("inline_keyboard"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[(chat_id, message["message_id"])] = message
        return message

    def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        content: dict[str, Any] = {k: params[k] for k in ("text", "caption") if k in params}
        if method != "sendMessage":
            kind = method.removeprefix("send").lower()
            sample = MEDIA.get(kind)
            if (
                isinstance(sample, dict) and "file_id" in sample
            ):  # the file it was given, as Telegram shows it
                content[kind] = {**sample, "file_id": params.get(kind, sample["file_id"])}
            elif isinstance(sample, list):
                content[kind] = [
                    {**size, "file_id": params.get(kind, size["file_id"])} for size in sample
                ]
            else:
                content[kind] = sample or params.get(kind, "<file>")
        return self._new_message(params["chat_id"], params, **content)

    def _m_copyMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        source = self.messages.get((params["from_chat_id"], params["message_id"]))
        if source is None:
            raise BadRequest("message to copy not found")
        content = {k: v for k, v in source.items() if k in _CONTENT}
        if "caption" in params:
            content.pop("caption", None)
            if params["caption"]:
                content["caption"] = params["caption"]
        copied = self._new_message(params["chat_id"], params, **content)
        return copied  # Telegram answers with {"message_id": …} only; the extra keys are for tests

    def _m_sendMediaGroup(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """One message per item, sharing a media_group_id; a caption shows under its own item."""
        group_id = str(next(self._message_ids))
        messages = []
        for item in params["media"]:
            kind = item["type"]
            sample = MEDIA.get(kind)
            file_id = str(item["media"])
            content: dict[str, Any] = {"media_group_id": group_id}
            if isinstance(sample, list):
                content[kind] = [{**size, "file_id": file_id} for size in sample]
            else:
                content[kind] = {**(sample or {"file_unique_id": "x"}), "file_id": file_id}
            if item.get("caption"):
                content["caption"] = item["caption"]
            messages.append(self._new_message(params["chat_id"], params, **content))
        return messages

    def _m_forwardMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        source = self.messages.get((params["from_chat_id"], params["message_id"]))
        if source is None:
            raise BadRequest("message to forward not found")
        content = {k: v for k, v in source.items() if k in _CONTENT}
        origin: dict[str, Any] = {
            "type": "hidden_user",
            "sender_user_name": "someone",
            "date": source["date"],
        }
        if "from" in source:
            origin = {"type": "user", "sender_user": source["from"], "date": source["date"]}
        return self._new_message(params["chat_id"], params, forward_origin=origin, **content)

    def _m_createForumTopic(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params["chat_id"]
        if chat_id not in self.forum_chats:
            raise BadRequest("the chat is not a forum")
        thread_id = next(self._message_ids)
        self.topics.setdefault(chat_id, {})[thread_id] = params["name"]
        self.messages[(chat_id, thread_id)] = {
            "message_id": thread_id,
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": BOT_USER,
            "message_thread_id": thread_id,
            "is_topic_message": True,
            "forum_topic_created": {"name": params["name"], "icon_color": 7322096},
        }
        return {"message_thread_id": thread_id, "name": params["name"], "icon_color": 7322096}

    def _m_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params.get("file_id") or "")
        data = self.files.get(file_id)
        if data is None:
            raise BadRequest("invalid file_id")
        if len(data) > DOWNLOAD_LIMIT:
            raise BadRequest("file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data),
            "file_path": f"documents/{file_id}",
        }

    def _m_getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._chat(params["chat_id"]),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _m_getChatMember(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, user_id = params["chat_id"], params["user_id"]
        user = {"id": user_id, "is_bot": False, "first_name": "someone"}
        if user_id not in self.members.get(chat_id, set()):
            return {"status": "left", "user": user}
        status = self.statuses.get(chat_id, {}).get(user_id, "member")
        anonymous = user_id in self.anonymous_admins.get(chat_id, set())
        if status == "creator":
            return {"status": "creator", "user": user, "is_anonymous": anonymous}
        if status == "administrator":
            rights = (
                "can_manage_chat",
                "can_delete_messages",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_promote_members",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
                "can_send_welcome_messages",
                "can_pin_messages",
                "can_manage_topics",
            )
            return {
                "status": "administrator",
                "user": user,
                "can_be_edited": False,
                "is_anonymous": anonymous,
                **{right: True for right in rights},
            }
        return {"status": "member", "user": user}

    def _m_setMessageReaction(self, params: dict[str, Any]) -> bool:
        return True

    def _edit(self, params: dict[str, Any], **changes: Any) -> dict[str, Any]:
        message = self._stored(params)
        if message is None:
            raise BadRequest("message to edit not found")
        if message.get("from") != BOT_USER and message.get("sender_business_bot") != BOT_USER:
            raise BadRequest("message can't be edited")
        markup = params.get("reply_markup")
        new_markup = markup if markup and markup.get("inline_keyboard") else None
        if (
            all(message.get(k) == v for k, v in changes.items())
            and message.get("reply_markup") == new_markup
        ):
            raise BadRequest(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        if new_markup:
            message["reply_markup"] = new_markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return message

    def _m_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    def _m_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        if "text" not in (self._stored(params) or {"text": ""}):
            raise BadRequest(
                "there is no text in the message to edit"
            )  # a photo, a voice…: edit its caption
        return self._edit(params, text=params["text"])

    def _m_editMessageCaption(self, params: dict[str, Any]) -> dict[str, Any]:
        if "text" in (self._stored(params) or {}):
            raise BadRequest("there is no caption in the message to edit")
        return self._edit(params, caption=params.get("caption") or None)

    def _m_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._edit(params)

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        """Once per press, as Telegram: a second answer, or one for a press never made, is
        refused (a handler that answers and lets aiogram's middleware answer too is a bug)."""
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self.presses or query_id in self._presses_answered:
            raise BadRequest("query is too old and response timeout expired or query ID is invalid")
        self._presses_answered.add(query_id)
        return True

    def unanswered_presses(self) -> list[str]:
        """Button presses the bot never answered (the user's button spins until Telegram gives
        up): their callback_query ids."""
        return [q for q in self.presses if q not in self._presses_answered]

    def _m_sendInvoice(self, params: dict[str, Any]) -> dict[str, Any]:
        """The invoice message, as the chat shows it (its Pay button is Telegram's own)."""
        invoice = {
            "title": params["title"],
            "description": params["description"],
            "start_parameter": params.get("start_parameter") or "",
            "currency": params["currency"],
            "total_amount": sum(int(p["amount"]) for p in params["prices"]),
        }
        return self._new_message(params["chat_id"], params, invoice=invoice)

    def _m_answerPreCheckoutQuery(self, params: dict[str, Any]) -> bool:
        """The bot's answer to a "Pay": once, in time; a refusal needs an error_message."""
        query = self.pre_checkouts.get(str(params.get("pre_checkout_query_id") or ""))
        if query is None or query.answered is not None:
            raise BadRequest("QUERY_ID_INVALID")
        if self.clock() - query.at > PRE_CHECKOUT_SECONDS:
            raise BadRequest("query is too old and response timeout expired or query ID is invalid")
        ok = params.get("ok")
        ok = ok if isinstance(ok, bool) else str(ok).lower() == "true"
        message = str(params.get("error_message") or "")
        if not ok and not message.strip():
            raise BadRequest("ERROR_MESSAGE_EMPTY")  # a refusal must say why
        query.answered, query.error_message = ok, message or None
        return True

    @property
    def unanswered_pre_checkouts(self) -> list[PreCheckout]:
        """Every "Pay" the bot has not answered (Telegram fails the payment after 10 s)."""
        return [q for q in self.pre_checkouts.values() if q.answered is None]

    def _m_setMyCommands(self, params: dict[str, Any]) -> bool:
        return True

    def _m_deleteWebhook(self, params: dict[str, Any]) -> bool:
        return True

    def _m_setWebhook(self, params: dict[str, Any]) -> bool:
        return True

    # ---- Telegram Business: sends on behalf of a connected account ---------------------------

    def _stored(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """The message an edit names: in the bot's chats, or in a connected account's chat."""
        chat_id, message_id = params.get("chat_id"), params.get("message_id")
        connection = params.get("business_connection_id")
        if connection:
            return self.business_messages.get((str(connection), chat_id, message_id))  # type: ignore[arg-type]
        return self.messages.get((chat_id, message_id))

    def _check_business(self, method: str, params: dict[str, Any]) -> None:
        """A call on behalf of a business account, refused as Telegram refuses it: a method that
        takes no business_connection_id, a connection unknown or switched off, one without the
        right to reply, or a chat with no message from its customer in the last 24 hours."""
        connection_id = params.get("business_connection_id")
        if not connection_id or method == "getBusinessConnection":
            return
        if method not in BUSINESS_METHODS:
            raise BadRequest(f"{method} can't be used with business_connection_id")
        connection = self.business_connections.get(str(connection_id))
        if connection is None or not connection["is_enabled"]:
            raise BadRequest("BUSINESS_CONNECTION_INVALID")
        if not (connection.get("rights") or {}).get("can_reply"):
            raise BadRequest("BOT_ACCESS_FORBIDDEN")
        chat_id = params.get("chat_id")
        last = (
            self.business_last_in.get((str(connection_id), chat_id))
            if isinstance(chat_id, int)
            else None
        )
        if last is None or self.clock() - last > BUSINESS_REPLY_WINDOW:
            raise BadRequest("BUSINESS_PEER_INVALID")

    def _as_business(self, params: dict[str, Any], result: Any) -> None:
        """A message sent on behalf of an account: in the account's chat, from its owner, sent by
        the bot (`sender_business_bot`); kept apart from the bot's own chats."""
        connection_id = params.get("business_connection_id")
        if not connection_id or not isinstance(result, dict) or "message_id" not in result:
            return
        connection = self.business_connections[str(connection_id)]
        key = (result["chat"]["id"], result["message_id"])
        if self.messages.get(key) is result:
            del self.messages[key]
        result["from"] = connection["user"]
        result["sender_business_bot"] = BOT_USER
        result["business_connection_id"] = str(connection_id)
        self.business_messages[(str(connection_id), *key)] = result

    def _m_getBusinessConnection(self, params: dict[str, Any]) -> dict[str, Any]:
        connection = self.business_connections.get(str(params.get("business_connection_id")))
        if connection is None:
            raise BadRequest("BUSINESS_CONNECTION_INVALID")
        return dict(connection)

    def business_account(
        self, owner_id: int, first_name: str, *, last_name: str | None = None
    ) -> BusinessAccount:
        """A Telegram Business account (a salon's, a master's) that can connect the bot."""
        return BusinessAccount(self, self.user(owner_id, first_name, last_name=last_name))

    # ---- the people's side ----------------------------------------------------------------

    async def push(self, update: dict[str, Any]) -> int:
        message = update.get("message")
        if message and message.get("chat", {}).get("type") == "private":
            self.started.add(message["chat"]["id"])
        async with self._changed:
            update["update_id"] = self.pushed = next(self._update_ids)
            if self.feed is not None:
                self.delivered = self.pushed
                self.feed(update)
            else:
                self._updates.append(update)
            self._changed.notify_all()
        return update["update_id"]

    def user(
        self,
        user_id: int,
        first_name: str = "Анна",
        *,
        language_code: str = "ru",
        username: str | None = None,
        last_name: str | None = None,
    ) -> Person:
        return Person(self, user_id, first_name, language_code, username, last_name)

    def staff(
        self,
        user_id: int,
        first_name: str,
        chat_id: int,
        *,
        username: str | None = None,
        status: str = "member",
        anonymous: bool = False,
    ) -> Person:
        """A member of the group `chat_id`, writing there; `status` "administrator" or "creator"
        makes getChatMember say so, and `anonymous` makes them an admin who posts as the group."""
        self.members.setdefault(chat_id, set()).add(user_id)
        if status != "member":
            self.statuses.setdefault(chat_id, {})[user_id] = status
        if anonymous:
            self.anonymous_admins.setdefault(chat_id, set()).add(user_id)
        return Person(self, user_id, first_name, "ru", username, None, chat_id=chat_id)

    async def channel_post(self, channel_id: int, text: str, *, title: str | None = None) -> int:
        """A post in a channel: a `channel_post` update, sender_chat the channel, no `from`."""
        self.channels.setdefault(channel_id, title or "Канал")
        post = {
            "message_id": self.new_message_id(),
            "date": int(time.time()),
            "chat": self._chat(channel_id),
            "sender_chat": self._chat(channel_id),
            "text": text,
        }
        self.messages[(channel_id, post["message_id"])] = post
        return await self.push({"channel_post": post})

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        self.topics.get(chat_id, {}).pop(thread_id, None)

    def new_message_id(self) -> int:
        return next(self._message_ids)

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)


@dataclass
class Person:
    """Someone writing to the bot in a private chat; reads what the bot sends them, in order."""

    server: TelegramServer
    id: int
    first_name: str
    language_code: str = "ru"
    username: str | None = None
    last_name: str | None = None
    chat_id: int = 0  # 0: their private chat with the bot
    _cursor: int = 0

    def __post_init__(self) -> None:
        if not self.chat_id:
            self.chat_id = self.id
        self._cursor = len(self._mine())  # someone who just joined reads only what comes next

    def as_user(self) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }
        if self.username:
            user["username"] = self.username
        if self.last_name:
            user["last_name"] = self.last_name
        return user

    def _message(
        self, reply_to: Call | None = None, thread_id: int | None = None, **content: Any
    ) -> dict[str, Any]:
        chat = (
            {"id": self.id, "type": "private", "first_name": self.first_name}
            if self.chat_id == self.id
            else self.server._chat(self.chat_id)
        )
        message = {
            "message_id": self.server.new_message_id(),
            "date": int(time.time()),
            "chat": chat,
            "from": self.as_user(),
            **content,
        }
        if (
            thread_id is not None
        ):  # in a topic, Telegram points reply_to at the topic's first message
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
            message["reply_to_message"] = self.server.messages[(self.chat_id, thread_id)]
        if reply_to is not None:
            message["reply_to_message"] = self.server.messages[
                (self.chat_id, reply_to.message["message_id"])
            ]
        self.server.messages[(self.chat_id, message["message_id"])] = message
        return message

    @staticmethod
    def _text(text: str, entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(text.split()[0])}
            ]
        if entities:
            content["entities"] = entities
        return content

    async def send(
        self,
        text: str,
        *,
        reply_to: Call | None = None,
        thread_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
    ) -> int:
        return await self.server.push(
            {"message": self._message(reply_to, thread_id, **self._text(text, entities))}
        )

    async def send_as_group(
        self,
        text: str,
        *,
        signature: str | None = None,
        reply_to: Call | None = None,
        thread_id: int | None = None,
    ) -> int:
        """An anonymous admin's message in this person's group: sent on behalf of the group itself
        (sender_chat the group, from GroupAnonymousBot, the admin's custom title as signature)."""
        assert self.chat_id < 0, "only in a group"
        message = self._message(reply_to, thread_id, **self._text(text))
        message["from"] = GROUP_ANONYMOUS_BOT
        message["sender_chat"] = self.server._chat(self.chat_id)
        if signature:
            message["author_signature"] = signature
        return await self.server.push({"message": message})

    async def send_as_channel(
        self,
        text: str,
        *,
        channel_id: int = LINKED_CHANNEL,
        title: str | None = None,
        automatic_forward: bool = True,
        reply_to: Call | None = None,
    ) -> int:
        """A message in this person's group on behalf of a channel: the linked channel's post forwarded
        there automatically (from Telegram 777000, is_automatic_forward), or, with
        automatic_forward=False, someone writing "as the channel" (from Channel_Bot)."""
        assert self.chat_id < 0, "only in a group"
        if title:
            self.server.channels[channel_id] = title
        self.server.channels.setdefault(channel_id, "Канал")
        channel = self.server._chat(channel_id)
        message = self._message(reply_to, None, **self._text(text))
        message["sender_chat"] = channel
        if automatic_forward:
            message["from"] = TELEGRAM_SERVICE
            message["is_automatic_forward"] = True
            message["forward_origin"] = {
                "type": "channel",
                "chat": channel,
                "message_id": self.server.new_message_id(),
                "date": message["date"],
            }
        else:
            message["from"] = CHANNEL_BOT
        return await self.server.push({"message": message})

    async def send_without_from(self, text: str, *, reply_to: Call | None = None) -> int:
        """A message in this person's chat with no `from` at all (as channel posts come)."""
        message = self._message(reply_to, None, **self._text(text))
        del message["from"]
        return await self.server.push({"message": message})

    async def send_media(
        self,
        kind: str,
        caption: str | None = None,
        *,
        reply_to: Call | None = None,
        thread_id: int | None = None,
    ) -> int:
        """A photo, voice, video, document, audio, animation, sticker, video_note or location."""
        content: dict[str, Any] = {kind: MEDIA[kind]}
        if caption:
            content["caption"] = caption
        return await self.server.push({"message": self._message(reply_to, thread_id, **content)})

    async def send_document(
        self,
        data: bytes,
        file_name: str,
        caption: str | None = None,
        *,
        reply_to: Call | None = None,
        thread_id: int | None = None,
    ) -> int:
        """A file (a CSV to import, say), which the bot can then fetch with getFile."""
        document = {
            "file_id": self.server.host_file(data),
            "file_unique_id": f"d{len(self.server.files)}",
            "file_name": file_name,
            "mime_type": "text/csv" if file_name.endswith(".csv") else "application/octet-stream",
            "file_size": len(data),
        }
        content: dict[str, Any] = {"document": document}
        if caption:
            content["caption"] = caption
            if caption.startswith("/"):
                content["caption_entities"] = [
                    {"type": "bot_command", "offset": 0, "length": utf16_len(caption.split()[0])}
                ]
        return await self.server.push({"message": self._message(reply_to, thread_id, **content)})

    async def send_contact(
        self, phone: str, *, user_id: int | None = None, first_name: str | None = None
    ) -> int:
        contact = {
            "phone_number": phone,
            "first_name": first_name or self.first_name,
            "user_id": self.id if user_id is None else user_id,
        }
        if user_id == 0:
            contact.pop("user_id")
        return await self.server.push({"message": self._message(contact=contact)})

    async def send_photo(self, caption: str | None = None) -> int:
        return await self.send_media("photo", caption)

    async def send_sticker(self) -> int:
        return await self.send_media("sticker")

    async def press(self, message: Call, button: str) -> int:
        """Tap the inline button whose text contains `button` on a message the bot sent."""
        return await self.press_data(message, message.button(button)["callback_data"])

    async def press_data(self, message: Call, data: str) -> int:
        """Send a button press with any callback data, as a forged client could."""
        query_id = uuid.uuid4().hex
        self.server._callback_authors[query_id] = self.id
        self.server.presses.append(query_id)
        current = self.server.messages[(self.chat_id, message.message["message_id"])]
        return await self.server.push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self.as_user(),
                    "chat_instance": str(self.id),
                    "message": dict(current),
                    "data": data,
                }
            }
        )

    async def checkout(self, invoice: Call) -> PreCheckout:
        """Tap "Pay" on an invoice the bot sent and fill in the card: Telegram asks the bot with a
        pre_checkout_query; returns it once the bot answered (`answered`, `error_message`).
        The answer is read from this person's calls (`next`), as any other."""
        assert invoice.method == "sendInvoice" and invoice.ok, "not an invoice the chat shows"
        query = PreCheckout(uuid.uuid4().hex, self.id, invoice.params, self.server.clock())
        self.server.pre_checkouts[query.id] = query
        self.server._callback_authors[query.id] = self.id
        await self.server.push(
            {
                "pre_checkout_query": {
                    "id": query.id,
                    "from": self.as_user(),
                    "currency": invoice.params["currency"],
                    "total_amount": invoice.message["invoice"]["total_amount"],
                    "invoice_payload": invoice.params["payload"],
                }
            }
        )
        answer = await self.next("answerPreCheckoutQuery")
        assert answer.params.get("pre_checkout_query_id") == query.id
        return query

    async def complete_payment(self, query: PreCheckout) -> dict[str, Any]:
        """The provider charged the card: Telegram sends the bot the successful_payment message
        (only ever after a pre_checkout_query answered ok, once). Returns what it carried."""
        assert query.answered is True, "Telegram charges only after the bot approved the checkout"
        assert not query.paid, "one checkout, one payment"
        query.paid = True
        number = next(self.server._charges)
        payment = {
            "currency": query.invoice["currency"],
            "total_amount": sum(int(p["amount"]) for p in query.invoice["prices"]),
            "invoice_payload": query.invoice["payload"],
            "telegram_payment_charge_id": f"tg-charge-{number}",
            "provider_payment_charge_id": f"provider-charge-{number}",
        }
        await self.server.push({"message": self._message(successful_payment=payment)})
        return payment

    async def pay(self, invoice: Call) -> dict[str, Any]:
        """Pay this invoice end to end ("customer pays this invoice"): the checkout, approved by
        the bot, then the payment. Fails if the bot refused the checkout."""
        query = await self.checkout(invoice)
        assert query.answered, f"the bot refused the checkout: {query.error_message}"
        return await self.complete_payment(query)

    def _mine(self) -> list[Call]:
        """Calls into this person's chat, and answers to the buttons they pressed; a call Telegram
        refused (a 429, a 500) is nothing the person ever saw."""
        return [
            c
            for c in self.server.calls
            if c.ok
            and (
                (c.chat_id == self.chat_id and c.method != "answerCallbackQuery")
                or c.user_id == self.id
            )
        ]

    async def next(self, method: str | None = None, timeout: float = 10.0) -> Call:
        """The next call the bot made concerning this person (optionally of one method)."""

        def ready() -> bool:
            return len(self._mine()) > self._cursor

        while True:
            try:
                await self.server.wait_for(ready, timeout)
            except TimeoutError:
                raise AssertionError(
                    f"the bot sent {self.id} nothing more (wanted {method})"
                ) from None
            call = self._mine()[self._cursor]
            self._cursor += 1
            if call.method in _LOOKUPS and method != call.method:
                continue
            if method is None or call.method == method:
                return call
            if call.method in _BOOKKEEPING:
                continue  # a test asking for something else skips look-ups, answers and reactions
            raise AssertionError(f"expected {method}, the bot called {call.method} {call.params}")

    async def reply(self, timeout: float = 10.0) -> Call:
        return await self.next("sendMessage", timeout)

    async def quiet(self, seconds: float | None = None) -> None:
        """Assert the bot sends this person nothing more: once the bot is idle (every update
        handled, no call in flight, nothing due in the outbox: `TelegramServer.settle`), or, with
        `seconds`, after that much real time (for what must not come before a delay is over)."""
        if seconds is None and self.server.settle is not None:
            await self.server.settle()
        else:
            await asyncio.sleep(0.3 if seconds is None else seconds)
        extra = [c for c in self._mine()[self._cursor :] if c.method not in _LOOKUPS]
        assert not extra, f"unexpected calls: {[(c.method, c.text or c.params) for c in extra]}"

    # ---- writing to a business account (Telegram Business) -----------------------------------

    def _business_message(self, account: BusinessAccount, **content: Any) -> dict[str, Any]:
        """A message in this person's chat with the account (chat id: the customer's)."""
        message = {
            "message_id": self.server.new_message_id(),
            "date": int(time.time()),
            "chat": {"id": self.id, "type": "private", "first_name": self.first_name},
            "from": self.as_user(),
            "business_connection_id": account.connection_id,
            **content,
        }
        self.server.business_messages[(account.connection_id, self.id, message["message_id"])] = (
            message
        )
        self.server.business_last_in[(account.connection_id, self.id)] = self.server.clock()
        return message

    async def write_to(
        self,
        account: BusinessAccount,
        text: str | None = None,
        *,
        kind: str | None = None,
        caption: str | None = None,
        contact: str | None = None,
    ) -> dict[str, Any]:
        """The customer writes to the account (not to the bot): a `business_message`, which
        reaches the bot while the account has it connected; returns the message."""
        content: dict[str, Any] = self._text(text) if text is not None else {}
        if kind is not None:
            content[kind] = MEDIA[kind]
            if caption:
                content["caption"] = caption
        if contact is not None:
            content["contact"] = {
                "phone_number": contact,
                "first_name": self.first_name,
                "user_id": self.id,
            }
        message = self._business_message(account, **content)
        if account.delivers:
            await self.server.push({"business_message": dict(message)})
        return message

    async def edit_to(self, account: BusinessAccount, message: dict[str, Any], text: str) -> int:
        """The customer edits what they wrote to the account: `edited_business_message`."""
        edited = {**message, "text": text, "edit_date": int(time.time())}
        self.server.business_messages[(account.connection_id, self.id, message["message_id"])] = (
            edited
        )
        if not account.delivers:
            return 0
        return await self.server.push({"edited_business_message": edited})

    async def delete_to(self, account: BusinessAccount, *messages: dict[str, Any]) -> int:
        """The customer deletes messages of their chat with the account:
        `deleted_business_messages` (the chat and the ids only, no author)."""
        for message in messages:
            self.server.business_messages.pop(
                (account.connection_id, self.id, message["message_id"]), None
            )
        if not account.delivers:
            return 0
        return await self.server.push(
            {
                "deleted_business_messages": {
                    "business_connection_id": account.connection_id,
                    "chat": {"id": self.id, "type": "private", "first_name": self.first_name},
                    "message_ids": [m["message_id"] for m in messages],
                }
            }
        )


@dataclass
class BusinessAccount:
    """A Telegram Business account (`owner`) and its connection to the bot: the owner connects
    the bot in Settings → Telegram Business → Chatbots, gives or takes rights, switches it off;
    each is a `business_connection` update. The owner also writes in their customers' chats from
    their own phone (`owner_writes`)."""

    server: TelegramServer
    owner: Person
    connection_id: str = ""
    rights: dict[str, bool] = field(default_factory=dict)
    enabled: bool = False

    def __post_init__(self) -> None:
        self.connection_id = self.connection_id or f"biz-{self.owner.id}-{uuid.uuid4().hex[:8]}"

    @property
    def delivers(self) -> bool:
        """Whether Telegram hands the bot this account's messages now."""
        return self.enabled

    def _connection(self) -> dict[str, Any]:
        rights = {k: v for k, v in self.rights.items() if v}
        return {
            "id": self.connection_id,
            "user": {k: v for k, v in self.owner.as_user().items() if k != "language_code"},
            "user_chat_id": self.owner.id,
            "date": int(time.time()),
            "can_reply": bool(rights.get("can_reply")),  # deprecated since 9.0, still sent
            "rights": rights,
            "is_enabled": self.enabled,
        }

    async def _push(self, announce: bool = True) -> int:
        connection = self._connection()
        self.server.business_connections[self.connection_id] = connection
        if not announce:  # the update was lost to the bot (it was down): getBusinessConnection
            return 0
        return await self.server.push({"business_connection": dict(connection)})

    async def connect(
        self, *, can_reply: bool = True, announce: bool = True, **rights: bool
    ) -> int:
        """The owner connects the bot (can_reply: "manage messages" on); `announce` False: the
        bot never got the update (only getBusinessConnection tells it)."""
        self.enabled = True
        self.rights = {"can_reply": can_reply, "can_read_messages": True, **rights}
        return await self._push(announce)

    async def change_rights(self, **rights: bool) -> int:
        self.rights = {**self.rights, **rights}
        return await self._push()

    async def disconnect(self) -> int:
        self.enabled = False
        return await self._push()

    def quiet_for(self, customer: Person, hours: float) -> None:
        """The customer's last message to the account was `hours` earlier than it was."""
        key = (self.connection_id, customer.id)
        self.server.business_last_in[key] = self.server.business_last_in[key] - hours * 3600

    async def owner_writes(self, customer: Person, text: str) -> dict[str, Any]:
        """The owner answers the customer from their own phone: a `business_message` whose
        `from` is the owner (the bot gets it too)."""
        message_id = self.server.new_message_id()
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": customer.id, "type": "private", "first_name": customer.first_name},
            "from": self.owner.as_user(),
            "business_connection_id": self.connection_id,
            "text": text,
        }
        self.server.business_messages[(self.connection_id, customer.id, message_id)] = message
        if self.delivers:
            await self.server.push({"business_message": dict(message)})
        return message

    def sent_as_account(self, customer: Person) -> list[Call]:
        """The messages the bot sent the customer on the account's behalf."""
        return [
            c
            for c in self.server.calls
            if c.ok
            and c.method in _CREATING
            and c.chat_id == customer.id
            and c.params.get("business_connection_id") == self.connection_id
        ]
