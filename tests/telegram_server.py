"""A Bot API test server over real HTTP, and the people who talk to the bot through it.

Written by hand: no maintained library provides a Bot API server a real bot can long-poll
(aiogram's own tests replace the session with a mock instead), and we want the bot's real
HTTP client, serialisation and polling loop under test. It implements only the methods
carebot calls and answers anything else with 400 so a new call is noticed at once.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Carebot", "username": "carebot_test_bot"}

_JSON_PARAMS = {
    "reply_markup", "entities", "allowed_updates", "commands", "scope", "link_preview_options",
    "reply_parameters", "caption_entities", "media", "reaction",
}
_INT_PARAMS = {"chat_id", "message_id", "offset", "limit", "timeout", "from_chat_id", "user_id",
               "message_thread_id", "reply_to_message_id"}
_SEND_METHODS = {"sendMessage", "sendPhoto", "sendDocument", "sendVoice", "sendVideo", "sendSticker",
                 "sendAudio", "sendAnimation", "sendLocation"}
# What a message carries, as opposed to where it is: copied by copyMessage.
_CONTENT = {"text", "entities", "caption", "caption_entities", "photo", "voice", "video", "document",
            "sticker", "audio", "animation", "location", "video_note", "contact"}
# Sample content of each kind, as a Telegram client would send it.
MEDIA: dict[str, Any] = {
    "photo": [{"file_id": "photo-1", "file_unique_id": "p1", "width": 90, "height": 90}],
    "voice": {"file_id": "voice-1", "file_unique_id": "v1", "duration": 3},
    "video": {"file_id": "video-1", "file_unique_id": "vd1", "width": 640, "height": 480, "duration": 5},
    "document": {"file_id": "doc-1", "file_unique_id": "d1", "file_name": "price.pdf"},
    "audio": {"file_id": "audio-1", "file_unique_id": "a1", "duration": 60},
    "animation": {"file_id": "gif-1", "file_unique_id": "g1", "width": 90, "height": 90, "duration": 2},
    "sticker": {"file_id": "sticker-1", "file_unique_id": "s1", "type": "regular", "width": 512,
                "height": 512, "is_animated": False, "is_video": False},
    "video_note": {"file_id": "note-1", "file_unique_id": "n1", "length": 240, "duration": 4},
    "location": {"latitude": 55.75, "longitude": 37.62},
}


# Calls that change nothing a person sees in the chat; skipped when a test waits for another method.
_LOOKUPS = {"getChat", "getChatMember", "setMessageReaction"}
_BOOKKEEPING = _LOOKUPS | {"answerCallbackQuery"}


class BadRequest(Exception):
    """What the test server answers with 400, as Telegram would."""


@dataclass
class Call:
    """One request the bot made, with its parsed parameters."""

    method: str
    params: dict[str, Any]
    chat_id: int | None  # the chat it was sent to (None for answers to button presses)
    user_id: int | None = None  # for answerCallbackQuery: who pressed the button
    result: Any = None
    at: float = field(default_factory=time.monotonic)  # when the server received it

    @property
    def message(self) -> dict[str, Any]:
        """What the chat shows for the message this call created (after copies, with content)."""
        return self.result if isinstance(self.result, dict) else {}

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

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


@dataclass
class TelegramServer:
    token: str
    calls: list[Call] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)
    url: str = ""

    def __post_init__(self) -> None:
        # Telegram's limits, when a test or a benchmark wants them enforced:
        self.rate_limit: int | None = None  # sends per second across all chats; beyond it 429
        self.fail_ratio = 0.0  # share of sends answered with 500
        self.scripted: list[tuple[int, str, int | None]] = []  # (code, description, retry_after) for the next sends
        self.throttled = 0  # 429s answered
        self._recent_sends: collections.deque[float] = collections.deque()
        self._random = random.Random(7)
        self.forum_chats: set[int] = set()  # groups with topics
        self.members: dict[int, set[int]] = {}  # group id → member user ids
        self.topics: dict[int, dict[int, str]] = {}  # group id → thread id → name
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._changed = asyncio.Condition()
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}  # what each chat shows now
        self._callback_authors: dict[str, int] = {}
        self.delivered = 0  # highest update_id handed to the bot
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
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

    # ---- the bot's side -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        if method == "getUpdates":
            return self._ok(await self._get_updates(params))
        handler = getattr(self, f"_m_{method}", None)
        if handler is None and method not in _SEND_METHODS:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": f"test server: {method} not supported"},
                status=400,
            )
        chat_id = params.get("chat_id") if isinstance(params.get("chat_id"), int) else None
        author = self._callback_authors.get(str(params.get("callback_query_id")))
        if method in _SEND_METHODS or method == "copyMessage":
            refusal = self._limits()
            if refusal is not None:
                await self._record(Call(method, params, chat_id, author))
                return refusal
        if chat_id in self.blocked:
            await self._record(Call(method, params, chat_id, author))
            return self._error(403, "Forbidden: bot was blocked by the user")
        try:
            result = handler(params) if handler else self._send(method, params)
        except BadRequest as error:
            await self._record(Call(method, params, chat_id, author))
            return self._error(400, f"Bad Request: {error}")
        await self._record(Call(method, params, chat_id, author, result))
        return self._ok(result)

    def _limits(self) -> web.Response | None:
        """429 beyond the rate (sliding one-second window), scripted errors, random 500s."""
        if self.scripted:
            code, description, retry_after = self.scripted.pop(0)
            if code == 429:
                self.throttled += 1
            return self._error(code, description, retry_after)
        now = time.monotonic()
        while self._recent_sends and now - self._recent_sends[0] >= 1.0:
            self._recent_sends.popleft()
        if self.rate_limit is not None and len(self._recent_sends) >= self.rate_limit:
            self.throttled += 1
            return self._error(429, "Too Many Requests: retry after 1", 1)
        if self.fail_ratio and self._random.random() < self.fail_ratio:
            return self._error(500, "Internal Server Error")
        self._recent_sends.append(now)
        return None

    @staticmethod
    def _error(code: int, description: str, retry_after: int | None = None) -> web.Response:
        if retry_after is not None:
            return web.json_response({"ok": False, "error_code": code, "description": description,
                                      "parameters": {"retry_after": retry_after}}, status=code)
        return web.json_response({"ok": False, "error_code": code, "description": description}, status=code)

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            raw: dict[str, Any] = await request.json()
        else:
            raw = dict((await request.post()).items())
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(value, str) and key in _JSON_PARAMS:
                value = json.loads(value)
            elif isinstance(value, str) and key in _INT_PARAMS and value.lstrip("-").isdigit():
                value = int(value)
            elif not isinstance(value, (str, int, float, bool, dict, list)) and value is not None:
                value = f"<file {getattr(value, 'filename', '')}>"
            params[key] = value
        return params

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        async with self._changed:
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
        return {"id": chat_id, "type": "supergroup", "title": "Staff", "is_forum": chat_id in self.forum_chats}

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
        if params.get("reply_markup", {}).get("inline_keyboard"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[(chat_id, message["message_id"])] = message
        return message

    def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        content = {k: params[k] for k in ("text", "caption") if k in params}
        if method != "sendMessage":
            kind = method.removeprefix("send").lower()
            sample = MEDIA.get(kind)
            if isinstance(sample, dict) and "file_id" in sample:  # the file it was given, as Telegram shows it
                content[kind] = {**sample, "file_id": params.get(kind, sample["file_id"])}
            elif isinstance(sample, list):
                content[kind] = [{**size, "file_id": params.get(kind, size["file_id"])} for size in sample]
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

    def _m_createForumTopic(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params["chat_id"]
        if chat_id not in self.forum_chats:
            raise BadRequest("the chat is not a forum")
        thread_id = next(self._message_ids)
        self.topics.setdefault(chat_id, {})[thread_id] = params["name"]
        self.messages[(chat_id, thread_id)] = {
            "message_id": thread_id, "date": int(time.time()), "chat": self._chat(chat_id), "from": BOT_USER,
            "message_thread_id": thread_id, "is_topic_message": True,
            "forum_topic_created": {"name": params["name"], "icon_color": 7322096},
        }
        return {"message_thread_id": thread_id, "name": params["name"], "icon_color": 7322096}

    def _m_getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self._chat(params["chat_id"]), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False,
                                        "unique_gifts": False, "premium_subscription": False,
                                        "gifts_from_channels": False}}

    def _m_getChatMember(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params["user_id"]
        member = user_id in self.members.get(params["chat_id"], set())
        return {"status": "member" if member else "left",
                "user": {"id": user_id, "is_bot": False, "first_name": "someone"}}

    def _m_setMessageReaction(self, params: dict[str, Any]) -> bool:
        return True

    def _edit(self, params: dict[str, Any], **changes: Any) -> dict[str, Any]:
        message = self.messages[(params["chat_id"], params["message_id"])]
        message.update(changes)
        markup = params.get("reply_markup")
        if markup and markup.get("inline_keyboard"):
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return message

    def _m_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    def _m_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._edit(params, text=params["text"])

    def _m_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._edit(params)

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        return True

    def _m_setMyCommands(self, params: dict[str, Any]) -> bool:
        return True

    def _m_deleteWebhook(self, params: dict[str, Any]) -> bool:
        return True

    def _m_setWebhook(self, params: dict[str, Any]) -> bool:
        return True

    # ---- the people's side ----------------------------------------------------------------

    async def push(self, update: dict[str, Any]) -> int:
        async with self._changed:
            update["update_id"] = next(self._update_ids)
            self._updates.append(update)
            self._changed.notify_all()
        return update["update_id"]

    def user(self, user_id: int, first_name: str = "Анна", *, language_code: str = "ru",
             username: str | None = None, last_name: str | None = None) -> Person:
        return Person(self, user_id, first_name, language_code, username, last_name)

    def staff(self, user_id: int, first_name: str, chat_id: int, *, username: str | None = None) -> Person:
        """A member of the group `chat_id`, writing there."""
        self.members.setdefault(chat_id, set()).add(user_id)
        return Person(self, user_id, first_name, "ru", username, None, chat_id=chat_id)

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
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name,
                                "language_code": self.language_code}
        if self.username:
            user["username"] = self.username
        if self.last_name:
            user["last_name"] = self.last_name
        return user

    def _message(self, reply_to: Call | None = None, thread_id: int | None = None, **content: Any) -> dict[str, Any]:
        chat = ({"id": self.id, "type": "private", "first_name": self.first_name} if self.chat_id == self.id
                else self.server._chat(self.chat_id))
        message = {
            "message_id": self.server.new_message_id(),
            "date": int(time.time()),
            "chat": chat,
            "from": self.as_user(),
            **content,
        }
        if thread_id is not None:  # in a topic, Telegram points reply_to at the topic's first message
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
            message["reply_to_message"] = self.server.messages[(self.chat_id, thread_id)]
        if reply_to is not None:
            message["reply_to_message"] = self.server.messages[(self.chat_id, reply_to.message["message_id"])]
        self.server.messages[(self.chat_id, message["message_id"])] = message
        return message

    async def send(self, text: str, *, reply_to: Call | None = None, thread_id: int | None = None,
                   entities: list[dict[str, Any]] | None = None) -> int:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if entities:
            content["entities"] = entities
        return await self.server.push({"message": self._message(reply_to, thread_id, **content)})

    async def send_media(self, kind: str, caption: str | None = None, *, reply_to: Call | None = None,
                         thread_id: int | None = None) -> int:
        """A photo, voice, video, document, audio, animation, sticker, video_note or location."""
        content: dict[str, Any] = {kind: MEDIA[kind]}
        if caption:
            content["caption"] = caption
        return await self.server.push({"message": self._message(reply_to, thread_id, **content)})

    async def send_contact(self, phone: str, *, user_id: int | None = None, first_name: str | None = None) -> int:
        contact = {"phone_number": phone, "first_name": first_name or self.first_name,
                   "user_id": self.id if user_id is None else user_id}
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
        current = self.server.messages[(self.chat_id, message.message["message_id"])]
        return await self.server.push({"callback_query": {
            "id": query_id, "from": self.as_user(), "chat_instance": str(self.id),
            "message": dict(current), "data": data,
        }})

    def _mine(self) -> list[Call]:
        """Calls into this person's chat, and answers to the buttons they pressed."""
        return [c for c in self.server.calls
                if (c.chat_id == self.chat_id and c.method != "answerCallbackQuery") or c.user_id == self.id]

    async def next(self, method: str | None = None, timeout: float = 10.0) -> Call:
        """The next call the bot made concerning this person (optionally of one method)."""
        def ready() -> bool:
            return len(self._mine()) > self._cursor

        while True:
            try:
                await self.server.wait_for(ready, timeout)
            except TimeoutError:
                raise AssertionError(f"the bot sent {self.id} nothing more (wanted {method})") from None
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

    async def quiet(self, seconds: float = 0.3) -> None:
        """Assert the bot sends this person nothing more (for a short while)."""
        await asyncio.sleep(seconds)
        extra = [c for c in self._mine()[self._cursor:] if c.method not in _LOOKUPS]
        assert not extra, f"unexpected calls: {[(c.method, c.text or c.params) for c in extra]}"
