"""The demo's people and what their chats show: the stand-in as the page sees it.

Everyone the page acts as is a `Person` of the stand-in (a customer, the staff group's owner, each
master), so what they do reaches the bot as Telegram's updates would, over the same HTTP long poll
`carebot run` uses. What the bot sends is read back from the stand-in's own record of the chats
(`TelegramServer.messages`, edited in place by edits) and pushed to the page as it happens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.standin import (
    BOT_USER,
    PHOTO_LIMIT,
    PHOTO_SIGNATURES,
    UPLOADS,
    BadRequest,
    Call,
    Person,
    TelegramServer,
    visible_text,
)

log = logging.getLogger("carebot.demo")

DEMO_TOKEN = "1000000001:DEMO-carebot-demo-stand-in-token"  # known only to the stand-in
GROUP_ID = -1001000000001  # the staff group (ADMIN_CHAT_ID of the demo)
OWNER_ID = 700001  # the staff member the group pane writes as
FIRST_CUSTOMER = 100001
FIRST_MASTER = 800001
PEOPLE_FILE = "people.json"  # the demo's customers, kept across restarts with the database
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
NAME_LIMIT = 64
LANGUAGES = ("ru", "en")
START_LINK = re.compile(r"^https://t\.me/(?P<bot>\w+)\?start=(?P<payload>[\w-]{1,64})$")


class Refused(Exception):
    """Something the page asked that Telegram's client would not let a person do: a polite
    answer on the page, nothing sent."""


@dataclass(frozen=True)
class DemoCustomer:
    id: int
    name: str
    lang: str
    phone: str


@dataclass(frozen=True)
class DemoMaster:
    id: str  # the business file's master id
    name: str
    user_id: int


class Hub:
    """The page's live updates: every event goes to every open page (server-sent events)."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a page that stopped reading: it reloads the state
                self._queues.discard(queue)


class DemoServer(TelegramServer):
    """The stand-in, telling the demo about each call it answered; a file the bot uploads (a
    chart, an export) is kept under a file id, as Telegram keeps it, so the page can show it."""

    observer: Callable[[Call], None] | None = None

    async def _record(self, call: Call) -> None:
        if call.ok and UPLOADS in call.params:
            self._keep_uploads(call)
        await super()._record(call)
        if self.observer is not None:
            try:
                self.observer(call)
            except Exception:  # the page's bookkeeping never breaks the bot's call
                log.exception("demo: could not show call %s", call.method)

    def _keep_uploads(self, call: Call) -> None:
        uploads = call.params[UPLOADS]
        messages = call.result if isinstance(call.result, list) else [call.result]
        for message in messages:
            if not isinstance(message, dict):
                continue
            for kind in ("photo", "document", "video", "audio", "animation", "voice"):
                shown = message.get(kind)
                reference = str(call.params.get(kind) or "").removeprefix("attach://")
                if call.method == "sendMediaGroup":
                    item = next(
                        (m for m in call.params.get("media") or [] if m["type"] == kind), None
                    )
                    reference = str((item or {}).get("media") or "").removeprefix("attach://")
                upload = uploads.get(reference)
                if shown is None or upload is None:
                    continue
                file_id = self.host_file(upload.data)
                if isinstance(shown, list):
                    message[kind] = [{**size, "file_id": file_id} for size in shown]
                else:
                    message[kind] = {**shown, "file_id": file_id, "file_name": upload.filename}


class World:
    """The people of the demo and the chats the page shows."""

    def __init__(
        self,
        server: DemoServer,
        folder: Path,
        masters: list[tuple[str, str]],
        staff_name: str,
        now: Callable[[], datetime],
    ) -> None:
        self.server = server
        self.folder = folder
        self.now = now
        self.hub = Hub()
        self.customers: dict[int, DemoCustomer] = {}
        self.masters = [
            DemoMaster(master_id, name, FIRST_MASTER + number)
            for number, (master_id, name) in enumerate(masters)
        ]
        self.staff = server.staff(OWNER_ID, staff_name, GROUP_ID, status="creator")
        self._people: dict[int, Person] = {self.staff.id: self.staff}
        for master in self.masters:
            self._people[master.user_id] = server.user(master.user_id, master.name)
        self.html: set[tuple[int, int]] = set()  # messages whose text is Telegram HTML
        self.sent_at: dict[tuple[int, int], str] = {}  # the demo's time each message appeared
        self.keyboards: dict[int, dict[str, Any]] = {}  # reply keyboards shown, per chat
        self._load()
        server.observer = self._observe

    # ---- the people --------------------------------------------------------------------------

    def _load(self) -> None:
        path = self.folder / PEOPLE_FILE
        if not path.exists():
            return
        for row in json.loads(path.read_text(encoding="utf-8")).get("customers", []):
            self._register(DemoCustomer(**row))

    def save(self) -> None:
        rows = [asdict(c) for c in self.customers.values()]
        path = self.folder / PEOPLE_FILE
        path.write_text(json.dumps({"customers": rows}, ensure_ascii=False, indent=1), "utf-8")

    def _register(self, customer: DemoCustomer) -> None:
        self.customers[customer.id] = customer
        self._people[customer.id] = self.server.user(
            customer.id, customer.name, language_code=customer.lang
        )

    def add_customer(self, name: str, lang: str, *, save: bool = True) -> DemoCustomer:
        name = " ".join(name.split())
        if not name or len(name) > NAME_LIMIT:
            raise Refused(f"a name of 1 to {NAME_LIMIT} characters, please")
        if lang not in LANGUAGES:
            raise Refused("the language is ru or en")
        number = max(self.customers, default=FIRST_CUSTOMER - 1) + 1
        customer = DemoCustomer(number, name, lang, f"+7916{number % 10_000_000:07d}")
        self._register(customer)
        if save:
            self.save()
            self.hub.publish({"type": "customers", "customers": self.customer_list()})
        return customer

    def customer_list(self) -> list[dict[str, Any]]:
        return [asdict(c) for c in self.customers.values()]

    def person(self, chat_id: int) -> Person:
        """Who writes in this chat: its customer or master, or in the group its staff member."""
        found = self.staff if chat_id == GROUP_ID else self._people.get(chat_id)
        if found is None:
            raise Refused("no such chat in the demo")
        return found

    # ---- what the people do --------------------------------------------------------------------

    async def write(
        self, chat_id: int, text: str, reply_to: int | None = None, thread: int | None = None
    ) -> dict[str, Any]:
        text = text.strip()
        if not text:
            raise Refused("write something first")
        if len(text.encode("utf-16-le")) // 2 > TEXT_LIMIT:
            raise Refused(f"Telegram takes at most {TEXT_LIMIT} characters in a message")
        person = self.person(chat_id)
        return await self._post(person, reply_to, thread, **Person._text(text))

    async def share_contact(self, chat_id: int) -> dict[str, Any]:
        customer = self.customers.get(chat_id)
        if customer is None:
            raise Refused("only a customer shares their number here")
        contact = {
            "phone_number": customer.phone,
            "first_name": customer.name,
            "user_id": customer.id,
        }
        return await self._post(self.person(chat_id), None, None, contact=contact)

    async def send_photo(
        self,
        chat_id: int,
        data: bytes,
        caption: str = "",
        reply_to: int | None = None,
        thread: int | None = None,
    ) -> dict[str, Any]:
        if len(data) > PHOTO_LIMIT:
            raise Refused("a photo of at most 10 MB, please")
        if not data.startswith(PHOTO_SIGNATURES):
            raise Refused("a photo is a PNG or JPEG picture")
        caption = caption.strip()
        if len(caption.encode("utf-16-le")) // 2 > CAPTION_LIMIT:
            raise Refused(f"a caption of at most {CAPTION_LIMIT} characters, please")
        file_id = self.server.host_file(data)
        sizes = [{"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 800, "height": 600}]
        content: dict[str, Any] = {"photo": sizes}
        if caption:
            content["caption"] = caption
        return await self._post(self.person(chat_id), reply_to, thread, **content)

    async def press(self, chat_id: int, message_id: int, data: str) -> None:
        """A tap on an inline button the message shows now (no other data: the page is a
        Telegram client, not a forger)."""
        person = self.person(chat_id)
        message = self.server.messages.get((chat_id, message_id))
        rows = ((message or {}).get("reply_markup") or {}).get("inline_keyboard") or []
        if not any(b.get("callback_data") == data for row in rows for b in row):
            raise Refused("that button is no longer there")
        await person.press_data(Call("sendMessage", {}, chat_id, result=message), data)

    async def open_link(self, chat_id: int, url: str) -> dict[str, Any]:
        """A t.me link to the bot with a start parameter, opened in this chat: /start <payload>."""
        match = START_LINK.match(url)
        if match is None or match["bot"] != BOT_USER["username"]:
            raise Refused("only links to this bot open inside the demo")
        if chat_id == GROUP_ID:
            raise Refused("open it as a customer or a master")
        return await self.write(chat_id, f"/start {match['payload']}")

    async def _post(
        self, person: Person, reply_to: int | None, thread: int | None, **content: Any
    ) -> dict[str, Any]:
        chat_id = person.chat_id
        replied = None
        if reply_to is not None:
            stored = self.server.messages.get((chat_id, reply_to))
            if stored is None:
                raise Refused("the message to reply to is gone")
            replied = Call("sendMessage", {}, chat_id, result=stored)
        if thread is not None and thread not in self.server.topics.get(chat_id, {}):
            raise Refused("no such topic")
        message = person._message(replied, thread, **content)
        self._show(chat_id, message)
        keyboard = self.keyboards.get(chat_id)
        if keyboard and keyboard.get("one_time"):
            self._set_keyboard(chat_id, None)
        await self.server.push({"message": message})
        return message

    def set_topics(self, on: bool) -> None:
        """Topics switched on or off in the group's settings, as its admin can."""
        if on:
            self.server.forum_chats.add(GROUP_ID)
        else:
            self.server.forum_chats.discard(GROUP_ID)
        self.hub.publish({"type": "topics", "on": on})

    # ---- what the chats show -----------------------------------------------------------------

    def chat(self, chat_id: int) -> list[dict[str, Any]]:
        keys = sorted(k for k in self.server.messages if k[0] == chat_id)
        return [self.view(chat_id, self.server.messages[k]) for k in keys]

    def view(self, chat_id: int, message: dict[str, Any]) -> dict[str, Any]:
        """A message as the page draws it: text (HTML only where the bot sent HTML), buttons,
        media as links to the file, what it replies to."""
        key = (chat_id, message["message_id"])
        author = message.get("from") or {}
        shown: dict[str, Any] = {
            "chat": chat_id,
            "id": message["message_id"],
            "thread": message.get("message_thread_id"),
            "bot": author.get("id") == BOT_USER["id"],
            "author": author.get("first_name") or "",
            "text": message.get("text") or message.get("caption") or "",
            "html": key in self.html,
            "edited": "edit_date" in message,
            "at": self.sent_at.get(key, ""),
        }
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        shown["buttons"] = [
            [
                {"text": b.get("text", ""), "data": b.get("callback_data"), "url": b.get("url")}
                for b in row
            ]
            for row in rows
        ]
        if message.get("photo"):
            shown["photo"] = f"/api/file/{message['photo'][-1]['file_id']}"
        document = message.get("document")
        if isinstance(document, dict):
            shown["document"] = {
                "name": document.get("file_name") or "file",
                "url": f"/api/file/{document.get('file_id')}",
            }
        for kind in ("voice", "video", "audio", "animation", "sticker", "video_note", "location"):
            if kind in message:
                shown["media"] = kind
        if "contact" in message:
            shown["contact"] = message["contact"].get("phone_number")
        if "invoice" in message:
            invoice = message["invoice"]
            shown["invoice"] = {
                "title": invoice.get("title"),
                "description": invoice.get("description"),
                "amount": invoice.get("total_amount"),
                "currency": invoice.get("currency"),
            }
        if "forum_topic_created" in message:
            shown["topic"] = message["forum_topic_created"].get("name")
        replied = message.get("reply_to_message")
        if replied and replied.get("message_id") != message.get("message_thread_id"):
            quoted = str(replied.get("text") or replied.get("caption") or "")
            if (chat_id, replied.get("message_id")) in self.html:
                try:
                    quoted = visible_text(quoted, "HTML")  # the words, as the chat shows them
                except BadRequest:
                    pass
            shown["reply_to"] = {"id": replied.get("message_id"), "text": quoted[:80]}
        return shown

    def topics(self) -> dict[int, str]:
        return dict(self.server.topics.get(GROUP_ID, {}))

    def _show(self, chat_id: int, message: dict[str, Any]) -> None:
        key = (chat_id, message["message_id"])
        self.sent_at.setdefault(key, self.now().isoformat())
        self.hub.publish({"type": "message", "message": self.view(chat_id, message)})

    def _set_keyboard(self, chat_id: int, keyboard: dict[str, Any] | None) -> None:
        if keyboard is None:
            self.keyboards.pop(chat_id, None)
        else:
            self.keyboards[chat_id] = keyboard
        self.hub.publish({"type": "keyboard", "chat": chat_id, "keyboard": keyboard})

    def _observe(self, call: Call) -> None:
        """What the bot just did, as the chats show it."""
        if not call.ok:
            return
        if call.method == "answerCallbackQuery":
            text = str(call.params.get("text") or "")
            if text and call.user_id is not None:
                chat = GROUP_ID if call.user_id == self.staff.id else call.user_id
                self.hub.publish({"type": "toast", "chat": chat, "text": text})
            return
        if call.method == "createForumTopic":
            thread = call.result["message_thread_id"]
            self.hub.publish({"type": "topic", "thread": thread, "name": call.params["name"]})
            self._show(call.chat_id or GROUP_ID, self.server.messages[(GROUP_ID, thread)])
            return
        if call.method in ("deleteMessage", "deleteMessages"):
            ids = call.params.get("message_ids") or [call.params.get("message_id")]
            for message_id in ids if isinstance(ids, list) else json.loads(ids):
                self.hub.publish({"type": "deleted", "chat": call.chat_id, "id": int(message_id)})
            return
        results = call.result if isinstance(call.result, list) else [call.result]
        for message in results:
            if not isinstance(message, dict) or "message_id" not in message:
                continue
            chat_id = message["chat"]["id"]
            key = (chat_id, message["message_id"])
            if self.server.messages.get(key) is not message:
                continue  # sent on a business account's behalf: not a chat of the bot's
            html = call.params.get("parse_mode") == "HTML"
            if call.method == "copyMessage" and "caption" not in call.params:
                html = (call.params.get("from_chat_id"), call.params.get("message_id")) in self.html
            if call.method == "editMessageReplyMarkup":
                html = key in self.html
            (self.html.add if html else self.html.discard)(key)
            self._show(chat_id, message)
        markup = call.params.get("reply_markup")
        if isinstance(markup, dict) and call.chat_id is not None:
            if markup.get("keyboard"):
                rows = [
                    [b if isinstance(b, dict) else {"text": b} for b in row]
                    for row in markup["keyboard"]
                ]
                keyboard = {"rows": rows, "one_time": bool(markup.get("one_time_keyboard"))}
                self._set_keyboard(call.chat_id, keyboard)
            elif markup.get("remove_keyboard"):
                self._set_keyboard(call.chat_id, None)
            elif markup.get("force_reply") and isinstance(call.result, dict):
                # as a Telegram client does: the next message is a reply to this one
                self.hub.publish(
                    {"type": "force_reply", "chat": call.chat_id, "id": call.result["message_id"]}
                )
