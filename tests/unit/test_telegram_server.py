"""The Bot API test server is as strict as Telegram: each rule the e2e tests rely on, proved
over real HTTP (a raw client for exact answers, aiogram where its parsing of them matters)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.types import BufferedInputFile, InputMediaDocument, InputMediaPhoto, MediaUnion, Update

from tests.conftest import TOKEN
from tests.telegram_server import LINKED_CHANNEL, PROVIDER_TOKEN, TelegramServer
from tests.unit.conftest import FakeClock

GROUP = -1001234567890
OTHER_GROUP = -1005555
ANNA = 5001


class Api:
    """A bare HTTP client: what the server answers, exactly."""

    def __init__(self, server: TelegramServer, http: aiohttp.ClientSession) -> None:
        self.server, self.http = server, http

    async def __call__(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"{self.server.url}/bot{TOKEN}/{method}", json=params
        ) as response:
            return response.status, await response.json()

    async def ok(self, method: str, **params: Any) -> Any:
        status, body = await self(method, **params)
        assert status == 200 and body["ok"], body
        return body["result"]

    async def refused(self, method: str, **params: Any) -> dict[str, Any]:
        status, body = await self(method, **params)
        assert status == body.get("error_code") and not body["ok"], body
        return body


@pytest.fixture
async def api(telegram: TelegramServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(telegram, http)


@pytest.fixture
async def bot(telegram: TelegramServer) -> AsyncIterator[Bot]:
    """aiogram as carebot builds it: HTML by default."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    yield bot
    await session.close()


# ---- lengths, after HTML parsing, in UTF-16 units ---------------------------------------------


async def test_text_is_counted_in_utf16_units(api: Api) -> None:
    await api.ok("sendMessage", chat_id=ANNA, text="a" * 4096)
    assert await api.refused("sendMessage", chat_id=ANNA, text="a" * 4097) == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message is too long",
    }
    await api.ok("sendMessage", chat_id=ANNA, text="😀" * 2048)  # 2,048 characters, 4,096 units
    body = await api.refused(
        "sendMessage", chat_id=ANNA, text="😀" * 2048 + "a"
    )  # 2,049 characters
    assert body["description"] == "Bad Request: message is too long"


async def test_html_is_measured_after_parsing(api: Api) -> None:
    # 4,096 ampersands escaped are 20,480 characters sent and 4,096 shown: Telegram takes them.
    await api.ok("sendMessage", chat_id=ANNA, text="&amp;" * 4096, parse_mode="HTML")
    await api.ok(
        "sendMessage",
        chat_id=ANNA,
        text="<b>" + "a" * 4000 + "</b><i>" + "b" * 96 + "</i>",
        parse_mode="HTML",
    )
    assert (await api.refused("sendMessage", chat_id=ANNA, text="&lt;" * 4097, parse_mode="HTML"))[
        "description"
    ] == "Bad Request: message is too long"
    # Without parse_mode the same text is what is shown, and too long.
    await api.refused("sendMessage", chat_id=ANNA, text="&amp;" * 1000)
    # Numeric entities count as the character they stand for.
    await api.ok("sendMessage", chat_id=ANNA, text="&#128512;" * 2048, parse_mode="HTML")
    await api.refused("sendMessage", chat_id=ANNA, text="&#x1F600;" * 2049, parse_mode="HTML")


async def test_entities_as_a_parameter_count_the_raw_text(api: Api) -> None:
    entities = [{"type": "bold", "offset": 0, "length": 4}]
    await api.ok("sendMessage", chat_id=ANNA, text="<b>" + "a" * 4093, entities=entities)
    await api.refused("sendMessage", chat_id=ANNA, text="<b>" + "a" * 4094, entities=entities)


@pytest.mark.parametrize("text", ["", " \n ", "<b></b>", "<b> </b>"])
async def test_empty_text(api: Api, text: str) -> None:
    body = await api.refused("sendMessage", chat_id=ANNA, text=text, parse_mode="HTML")
    assert body["description"] == "Bad Request: message text is empty"


async def test_captions_up_to_1024_units(api: Api) -> None:
    await api.ok("sendPhoto", chat_id=ANNA, photo="photo-1", caption="😀" * 512)
    assert (
        await api.refused("sendPhoto", chat_id=ANNA, photo="photo-1", caption="😀" * 512 + "a")
    )["description"] == "Bad Request: message caption is too long"
    await api.ok(
        "sendDocument", chat_id=ANNA, document="doc-1", caption="&amp;" * 1024, parse_mode="HTML"
    )
    photo = await api.ok("sendPhoto", chat_id=ANNA, photo="photo-1")
    await api.ok(
        "copyMessage",
        chat_id=GROUP,
        from_chat_id=ANNA,
        message_id=photo["message_id"],
        caption="a" * 1024,
    )
    assert (
        await api.refused(
            "copyMessage",
            chat_id=GROUP,
            from_chat_id=ANNA,
            message_id=photo["message_id"],
            caption="a" * 1025,
        )
    )["description"] == "Bad Request: message caption is too long"
    await api.ok(
        "editMessageCaption", chat_id=ANNA, message_id=photo["message_id"], caption="b" * 1024
    )
    assert (
        await api.refused(
            "editMessageCaption", chat_id=ANNA, message_id=photo["message_id"], caption="b" * 1025
        )
    )["description"] == "Bad Request: message caption is too long"


async def test_edits_keep_the_text_limit(api: Api) -> None:
    sent = await api.ok("sendMessage", chat_id=ANNA, text="first")
    await api.ok("editMessageText", chat_id=ANNA, message_id=sent["message_id"], text="😀" * 2048)
    assert (
        await api.refused(
            "editMessageText", chat_id=ANNA, message_id=sent["message_id"], text="😀" * 2049
        )
    )["description"] == "Bad Request: message is too long"
    assert (
        await api.refused(
            "editMessageText", chat_id=ANNA, message_id=sent["message_id"], text="😀" * 2048
        )
    )["description"].startswith("Bad Request: message is not modified")
    assert (await api.refused("editMessageText", chat_id=ANNA, message_id=999999, text="x"))[
        "description"
    ] == "Bad Request: message to edit not found"


async def test_what_cannot_be_edited(telegram: TelegramServer, api: Api) -> None:
    photo = await api.ok("sendPhoto", chat_id=ANNA, photo="photo-1", caption="before")
    assert (
        await api.refused("editMessageText", chat_id=ANNA, message_id=photo["message_id"], text="x")
    )["description"] == "Bad Request: there is no text in the message to edit"
    text = await api.ok("sendMessage", chat_id=ANNA, text="x")
    assert (
        await api.refused(
            "editMessageCaption", chat_id=ANNA, message_id=text["message_id"], caption="y"
        )
    )["description"] == "Bad Request: there is no caption in the message to edit"
    await telegram.user(ANNA).send("hello")  # hers, not the bot's
    [(chat, mine)] = [key for key, m in telegram.messages.items() if m.get("text") == "hello"]
    assert (await api.refused("editMessageText", chat_id=chat, message_id=mine, text="changed"))[
        "description"
    ] == "Bad Request: message can't be edited"
    await api.ok("editMessageCaption", chat_id=ANNA, message_id=photo["message_id"], caption="")
    assert "caption" not in telegram.messages[(ANNA, photo["message_id"])]


# ---- HTML Telegram cannot parse --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("Цена <100", "Unclosed start tag at byte offset 9"),
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("<b>x", "Can't find end tag corresponding to start tag b"),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
    ],
)
async def test_html_that_telegram_cannot_parse(api: Api, text: str, reason: str) -> None:
    body = await api.refused("sendMessage", chat_id=ANNA, text=text, parse_mode="HTML")
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": f"Bad Request: can't parse entities: {reason}",
    }


@pytest.mark.parametrize(
    "text",
    [
        "<b>b</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u> <ins>n</ins> <s>s</s> <strike>k</strike> <del>d</del>",
        '<span class="tg-spoiler">x</span> <tg-spoiler>y</tg-spoiler> <a href="https://x.ru/?a=1&amp;b=2">l</a>',
        '<code>c</code> <pre><code class="language-python">p</code></pre> <blockquote expandable>q</blockquote>',
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji> &lt;b&gt; &quot;q&quot; &#60; &#x3C;',
        "Tom & Jerry &copy; &nbsp; AT&T",  # not an entity: Telegram keeps the '&' as it is
    ],
)
async def test_html_that_telegram_takes(api: Api, text: str) -> None:
    await api.ok("sendMessage", chat_id=ANNA, text=text, parse_mode="HTML")


async def test_captions_and_edits_are_parsed_too(api: Api) -> None:
    await api.refused(
        "sendPhoto", chat_id=ANNA, photo="photo-1", caption="a < b", parse_mode="HTML"
    )
    sent = await api.ok("sendMessage", chat_id=ANNA, text="x")
    await api.refused(
        "editMessageText",
        chat_id=ANNA,
        message_id=sent["message_id"],
        text="<x>",
        parse_mode="HTML",
    )
    await api.ok(
        "sendPhoto", chat_id=ANNA, photo="photo-1", caption="a < b"
    )  # no parse_mode: plain


async def test_aiogram_sends_the_default_parse_mode(telegram: TelegramServer, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(ANNA, "1 < 2")
    await bot.send_message(ANNA, "1 &lt; 2")
    assert [c.params.get("parse_mode") for c in telegram.calls] == ["HTML", "HTML"]
    await bot.send_message(ANNA, "1 < 2", parse_mode=None)


# ---- keyboards ---------------------------------------------------------------------------------


def _button(text: str, data: str) -> dict[str, Any]:
    return {"inline_keyboard": [[{"text": text, "callback_data": data}]]}


async def test_callback_data_up_to_64_bytes(api: Api) -> None:
    await api.ok("sendMessage", chat_id=ANNA, text="x", reply_markup=_button("ok", "a" * 64))
    await api.ok(
        "sendMessage", chat_id=ANNA, text="x", reply_markup=_button("ok", "я" * 32)
    )  # 64 bytes
    for data in ("a" * 65, "я" * 33):  # 33 characters, 66 bytes
        body = await api.refused(
            "sendMessage", chat_id=ANNA, text="x", reply_markup=_button("ok", data)
        )
        assert body["description"] == "Bad Request: BUTTON_DATA_INVALID"
    sent = await api.ok("sendMessage", chat_id=ANNA, text="x")
    await api.refused(
        "editMessageReplyMarkup",
        chat_id=ANNA,
        message_id=sent["message_id"],
        reply_markup=_button("ok", "a" * 65),
    )


async def test_buttons_need_text_and_an_action(api: Api) -> None:
    body = await api.refused("sendMessage", chat_id=ANNA, text="x", reply_markup=_button("", "d"))
    assert body["description"] == "Bad Request: BUTTON_TEXT_INVALID"
    body = await api.refused("sendMessage", chat_id=ANNA, text="x", reply_markup=_button("ok", ""))
    assert "Text buttons are not allowed" in body["description"]
    await api.refused(
        "sendMessage", chat_id=ANNA, text="x", reply_markup={"keyboard": [[{"text": ""}]]}
    )


@pytest.mark.stand_in_refusals
async def test_a_press_is_answered_once_in_up_to_200_characters(
    telegram: TelegramServer, api: Api
) -> None:
    telegram.presses.append("q")  # a press the user made (Person.press records them so)
    await api.refused("answerCallbackQuery", callback_query_id="q", text="a" * 201)
    assert telegram.unanswered_presses() == ["q"]
    await api.ok("answerCallbackQuery", callback_query_id="q", text="a" * 200)
    assert telegram.unanswered_presses() == []
    body = await api.refused("answerCallbackQuery", callback_query_id="q")  # a second answer
    assert "query ID is invalid" in body["description"]
    await api.refused("answerCallbackQuery", callback_query_id="never-pressed")


# ---- 20 new messages a minute per group --------------------------------------------------------


async def test_twenty_messages_a_minute_per_group(
    telegram: TelegramServer, api: Api, server_clock: FakeClock
) -> None:
    for i in range(20):
        await api.ok("sendMessage", chat_id=GROUP, text=f"{i}")
        server_clock.now += 1
    body = await api.refused("sendMessage", chat_id=GROUP, text="21st")
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 40",
        "parameters": {"retry_after": 40},
    }  # the first of the 20 leaves the window in 40 s
    server_clock.now += 39.5
    assert (await api.refused("sendMessage", chat_id=GROUP, text="21st"))["parameters"] == {
        "retry_after": 1
    }
    await api.ok("sendMessage", chat_id=OTHER_GROUP, text="another group has its own minute")
    await api.ok("sendMessage", chat_id=ANNA, text="private chats are not counted")
    server_clock.now += 0.5
    await api.ok("sendMessage", chat_id=GROUP, text="21st")  # one left the window, one came in
    await api.refused("sendMessage", chat_id=GROUP, text="22nd")
    assert telegram.throttled == 3 and telegram.throttled_per_chat == {GROUP: 3}
    assert len(telegram.sent_to(GROUP)) == 21


async def test_copies_and_forwards_count_and_edits_and_refusals_do_not(
    api: Api, server_clock: FakeClock
) -> None:
    source = await api.ok("sendMessage", chat_id=ANNA, text="hello")
    first = await api.ok("sendMessage", chat_id=GROUP, text="0")
    for _ in range(9):
        await api.ok(
            "copyMessage", chat_id=GROUP, from_chat_id=ANNA, message_id=source["message_id"]
        )
        await api.ok(
            "forwardMessage", chat_id=GROUP, from_chat_id=ANNA, message_id=source["message_id"]
        )
        await api.refused(
            "sendMessage", chat_id=GROUP, text="a < b", parse_mode="HTML"
        )  # 400s are not sent
    await api.ok("sendPhoto", chat_id=GROUP, photo="photo-1")
    for i in range(5):
        await api.ok(
            "editMessageText", chat_id=GROUP, message_id=first["message_id"], text=f"edited {i}"
        )
    body = await api.refused(
        "copyMessage", chat_id=GROUP, from_chat_id=ANNA, message_id=source["message_id"]
    )
    assert body["error_code"] == 429 and body["parameters"]["retry_after"] == 60
    await api.ok(
        "editMessageText", chat_id=GROUP, message_id=first["message_id"], text="edits still go"
    )


async def test_the_group_limit_can_be_turned_off(telegram: TelegramServer, api: Api) -> None:
    telegram.group_per_minute = None
    for i in range(25):
        await api.ok("sendMessage", chat_id=GROUP, text=f"{i}")
    assert TelegramServer(TOKEN).group_per_minute == 20  # on unless a test says otherwise
    assert TelegramServer(TOKEN, group_per_minute=None).group_per_minute is None


async def test_aiogram_reads_the_group_429(bot: Bot, telegram: TelegramServer) -> None:
    telegram.group_per_minute = 2
    await bot.send_message(GROUP, "1")
    await bot.send_message(GROUP, "2")
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(GROUP, "3")
    assert raised.value.retry_after in (59, 60)


# ---- injected 429s and faults --------------------------------------------------------------------


async def test_a_429_for_one_chat_only(telegram: TelegramServer, api: Api) -> None:
    telegram.throttle(ANNA, 7, times=2)
    for _ in range(2):
        assert await api.refused("sendMessage", chat_id=ANNA, text="x") == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        }
        await api.ok("sendMessage", chat_id=ANNA + 1, text="another chat is not held")
    await api.ok("sendMessage", chat_id=ANNA, text="x")
    telegram.throttle(GROUP, 3)
    assert (await api.refused("copyMessage", chat_id=GROUP, from_chat_id=ANNA, message_id=1))[
        "error_code"
    ] == 429
    assert telegram.throttled == 3 and telegram.throttled_per_chat == {ANNA: 2, GROUP: 1}
    assert [(c.chat_id, c.error_code, c.retry_after) for c in telegram.refused] == [
        (ANNA, 429, 7),
        (ANNA, 429, 7),
        (GROUP, 429, 3),
    ]


async def test_scripted_answers_for_the_next_sends(telegram: TelegramServer, api: Api) -> None:
    telegram.scripted = [
        (429, "Too Many Requests: retry after 2", 2),
        (500, "Internal Server Error", None),
    ]
    assert (await api.refused("sendMessage", chat_id=ANNA, text="x"))["parameters"] == {
        "retry_after": 2
    }
    assert await api.refused("sendMessage", chat_id=ANNA + 1, text="x") == {
        "ok": False,
        "error_code": 500,
        "description": "Internal Server Error",
    }
    await api.ok("sendMessage", chat_id=ANNA, text="x")
    assert telegram.throttled == 1


async def test_every_third_send_fails(telegram: TelegramServer, api: Api) -> None:
    telegram.fail_every = 3
    codes = []
    for i in range(7):
        status, body = await api("sendMessage", chat_id=ANNA, text=f"{i}")
        codes.append(status)
        if status != 200:
            assert body == {
                "ok": False,
                "error_code": status,
                "description": {500: "Internal Server Error", 502: "Bad Gateway"}[status],
            }
    assert codes == [200, 200, 500, 200, 200, 502, 200]
    await api.ok("getChat", chat_id=ANNA)  # look-ups are not sends
    assert [c.text for c in telegram.sent_to(ANNA)] == ["0", "1", "3", "4", "6"]


async def test_a_share_of_sends_fails(telegram: TelegramServer, api: Api) -> None:
    telegram.fail_ratio = 0.5
    statuses = [(await api("sendMessage", chat_id=ANNA, text="x"))[0] for _ in range(40)]
    assert {200, 500} == set(statuses)


async def test_latency_before_every_answer_but_long_polls(
    telegram: TelegramServer, api: Api
) -> None:
    telegram.latency = 0.2
    started = time.monotonic()
    await api.ok("sendMessage", chat_id=ANNA, text="x")
    assert time.monotonic() - started >= 0.2
    assert len(telegram.sent_to(ANNA)) == 1  # it took effect before the answer came
    started = time.monotonic()
    await api.ok("getUpdates", timeout=0)
    assert time.monotonic() - started < 0.15


async def test_a_server_that_never_answers(telegram: TelegramServer) -> None:
    telegram.hang = True
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as http:
        for method in ("getMe", "getUpdates"):
            with pytest.raises(TimeoutError):
                await http.post(f"{telegram.url}/bot{TOKEN}/{method}", json={})
    assert telegram.hung == 2 and telegram.calls == []
    telegram.hang = False
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{telegram.url}/bot{TOKEN}/getMe") as response:
            assert response.status == 200


# ---- who is who ------------------------------------------------------------------------------


async def test_chat_member_statuses(telegram: TelegramServer, bot: Bot) -> None:
    telegram.staff(1, "Ольга", GROUP)
    telegram.staff(2, "Ирина", GROUP, status="administrator")
    telegram.staff(3, "Вера", GROUP, status="creator", anonymous=True)
    statuses = [
        (await bot.get_chat_member(GROUP, user)) for user in (1, 2, 3, 4)
    ]  # aiogram parses each
    assert [m.status for m in statuses] == ["member", "administrator", "creator", "left"]
    assert statuses[2].is_anonymous is True  # type: ignore[union-attr]
    telegram.members[GROUP].discard(2)  # she left
    assert (await bot.get_chat_member(GROUP, 2)).status == "left"


async def _updates(api: Api) -> list[Update]:
    """What the bot would get, parsed by aiogram as the bot parses it."""
    return [Update.model_validate(u) for u in await api.ok("getUpdates", timeout=0)]


async def test_messages_on_behalf_of_a_chat(telegram: TelegramServer, api: Api) -> None:
    owner = telegram.staff(3, "Вера", GROUP, status="creator", anonymous=True)
    await owner.send_as_group("/find 4567", signature="Владелец")
    await owner.send_as_channel("Акция недели")
    await owner.send_as_channel("Пишу как канал", automatic_forward=False)
    await owner.send_without_from("ничей текст")
    await telegram.channel_post(LINKED_CHANNEL, "пост в канале")
    as_group, forwarded, as_channel, nobody, post = await _updates(api)

    message = as_group.message
    assert message and message.sender_chat and message.sender_chat.id == GROUP
    assert (
        message.from_user
        and message.from_user.id == 1087968824
        and message.author_signature == "Владелец"
    )
    assert (
        message.text == "/find 4567"
        and message.entities
        and message.entities[0].type == "bot_command"
    )

    message = forwarded.message
    assert message and message.sender_chat and message.sender_chat.id == LINKED_CHANNEL
    assert message.sender_chat.type == "channel" and message.is_automatic_forward
    assert message.from_user and message.from_user.id == 777000

    message = as_channel.message
    assert message and message.sender_chat and message.sender_chat.id == LINKED_CHANNEL
    assert (
        message.from_user and message.from_user.id == 136817688 and not message.is_automatic_forward
    )

    assert nobody.message and nobody.message.from_user is None and nobody.message.chat.id == GROUP
    assert (
        post.channel_post
        and post.channel_post.from_user is None
        and post.channel_post.chat.type == "channel"
    )


# ---- what each chat saw --------------------------------------------------------------------------


async def test_sent_to_and_refused(telegram: TelegramServer, api: Api) -> None:
    telegram.blocked.update({ANNA + 1, OTHER_GROUP})
    await api.ok("sendMessage", chat_id=ANNA, text="one")
    await api.refused("sendMessage", chat_id=ANNA, text="")
    sent = await api.ok("sendMessage", chat_id=ANNA, text="two")
    await api.ok("editMessageText", chat_id=ANNA, message_id=sent["message_id"], text="two, edited")
    await api.ok("copyMessage", chat_id=ANNA, from_chat_id=ANNA, message_id=sent["message_id"])
    assert (await api.refused("sendMessage", chat_id=ANNA + 1, text="x"))["description"] == (
        "Forbidden: bot was blocked by the user"
    )
    assert (await api.refused("sendMessage", chat_id=OTHER_GROUP, text="x"))["description"] == (
        "Forbidden: bot was kicked from the supergroup chat"
    )
    assert [(c.method, c.text) for c in telegram.sent_to(ANNA)] == [
        ("sendMessage", "one"),
        ("sendMessage", "two"),
        ("copyMessage", ""),
    ]
    assert [(c.error_code, c.description) for c in telegram.refused] == [
        (400, "Bad Request: message text is empty"),
        (403, "Forbidden: bot was blocked by the user"),
        (403, "Forbidden: bot was kicked from the supergroup chat"),
    ]


async def test_a_bot_cannot_start_a_conversation(telegram: TelegramServer, api: Api) -> None:
    telegram.require_started = True
    assert (await api.refused("sendMessage", chat_id=ANNA, text="x"))["description"] == (
        "Forbidden: bot can't initiate conversation with a user"
    )
    await telegram.user(ANNA).send("/start")
    await api.ok("sendMessage", chat_id=ANNA, text="x")
    await api.ok("sendMessage", chat_id=GROUP, text="groups are not private chats")


async def test_unknown_methods_and_tokens(telegram: TelegramServer, api: Api) -> None:
    assert (await api.refused("sendPoll", chat_id=ANNA))[
        "description"
    ] == "test server: sendPoll not supported"
    assert [(c.method, c.error_code) for c in telegram.refused] == [
        ("sendPoll", 400)
    ]  # noticed at once
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{telegram.url}/bot1:wrong/getMe") as response:
            assert await response.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }


async def test_the_limits_hold_under_concurrent_sends(telegram: TelegramServer, api: Api) -> None:
    results = await asyncio.gather(
        *(api("sendMessage", chat_id=GROUP, text=f"{i}") for i in range(30))
    )
    assert sorted(status for status, _ in results) == [200] * 20 + [429] * 10
    assert len(telegram.sent_to(GROUP)) == 20


async def test_an_uploaded_document_is_kept(telegram: TelegramServer, bot: Bot) -> None:
    """sendDocument as multipart/form-data: the test reads back the file and its name."""
    sent = await bot.send_document(
        GROUP, BufferedInputFile("имя,phone\r\n".encode("utf-8-sig"), "export.csv")
    )
    assert sent.document is not None
    [call] = [c for c in telegram.calls if c.method == "sendDocument"]
    upload = call.upload()
    assert upload.filename == "export.csv"
    assert upload.data.decode("utf-8-sig") == "имя,phone\r\n"


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64  # what the server checks of a photo: its signature


def _photos(count: int, caption: str | None = None) -> list[MediaUnion]:
    return [
        InputMediaPhoto(
            media=BufferedInputFile(PNG, f"chart{i}.png"), caption=caption if i == 0 else None
        )
        for i in range(count)
    ]


async def test_an_album_of_uploaded_photos(telegram: TelegramServer, bot: Bot) -> None:
    """sendMediaGroup as multipart/form-data: one message per item, the files read back in order,
    the caption under its own item."""
    sent = await bot.send_media_group(GROUP, _photos(3, caption="<b>Итоги</b>"))
    assert len(sent) == 3 and len({m.media_group_id for m in sent}) == 1
    assert sent[0].caption == "<b>Итоги</b>" and sent[1].caption is None
    [call] = [c for c in telegram.calls if c.method == "sendMediaGroup"]
    assert [u.filename for u in call.album_uploads()] == ["chart0.png", "chart1.png", "chart2.png"]
    assert all(u.data == PNG for u in call.album_uploads())
    assert [item["type"] for item in call.album] == ["photo"] * 3
    assert telegram.sent_to(GROUP) == [call]


@pytest.mark.parametrize("count", [1, 11])
async def test_an_album_has_two_to_ten_items(
    telegram: TelegramServer, bot: Bot, count: int
) -> None:
    with pytest.raises(TelegramBadRequest, match="2-10 items"):
        await bot.send_media_group(GROUP, _photos(count))
    assert telegram.sent_to(GROUP) == []


async def test_an_album_caption_is_measured_after_html(bot: Bot) -> None:
    await bot.send_media_group(GROUP, _photos(2, caption="&amp;" * 1024))
    with pytest.raises(TelegramBadRequest, match="caption is too long"):
        await bot.send_media_group(GROUP, _photos(2, caption="я" * 1025))


async def test_an_uploaded_photo_must_be_an_image(telegram: TelegramServer, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(GROUP, BufferedInputFile(b"not a picture", "chart.png"))
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_media_group(
            GROUP,
            [
                InputMediaPhoto(media=BufferedInputFile(PNG, "a.png")),
                InputMediaPhoto(media=BufferedInputFile(b"GIF89a", "b.gif")),
            ],
        )
    await bot.send_photo(GROUP, BufferedInputFile(PNG, "chart.png"))
    assert len(telegram.sent_to(GROUP)) == 1


async def test_documents_do_not_mix_with_photos(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="can't be mixed"):
        await bot.send_media_group(
            GROUP,
            [
                InputMediaPhoto(media=BufferedInputFile(PNG, "a.png")),
                InputMediaDocument(media=BufferedInputFile(b"a;b\r\n", "a.csv")),
            ],
        )


async def test_each_album_item_counts_toward_the_group_limit(
    telegram: TelegramServer, bot: Bot, server_clock: FakeClock
) -> None:
    """Telegram counts an album's items one by one in a group's 20 a minute: 4 albums of 4 and
    then an album of 5 does not fit (16 + 5 > 20) while one of 4 does, and then nothing more."""
    for _ in range(4):
        await bot.send_media_group(GROUP, _photos(4))
    with pytest.raises(TelegramRetryAfter):
        await bot.send_media_group(GROUP, _photos(5))
    await bot.send_media_group(GROUP, _photos(4))
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(GROUP, "one more")
    server_clock.now += 60
    await bot.send_message(GROUP, "a minute later")
    assert len(telegram.sent_to(GROUP)) == 6


# ---- payments ---------------------------------------------------------------------------------

INVOICE: dict[str, Any] = {
    "chat_id": ANNA,
    "title": "Предоплата",
    "description": "Маникюр, пн 23.11 в 15:00",
    "payload": "dep:1:abc",
    "currency": "RUB",
    "prices": [{"label": "Предоплата", "amount": 50000}],
    "provider_token": PROVIDER_TOKEN,
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"title": ""}, "title is empty"),
        ({"title": "x" * 33}, "INVOICE_TITLE_INVALID"),
        ({"description": "x" * 256}, "INVOICE_DESCRIPTION_INVALID"),
        ({"description": " "}, "description is empty"),
        ({"payload": "я" * 65}, "INVOICE_PAYLOAD_INVALID"),  # 130 bytes
        ({"payload": ""}, "INVOICE_PAYLOAD_INVALID"),
        ({"currency": "₽"}, "CURRENCY_INVALID"),
        ({"prices": []}, "prices must be a non-empty array"),
        ({"prices": [{"label": "x", "amount": 0}]}, "CURRENCY_TOTAL_AMOUNT_INVALID"),
        ({"prices": [{"label": "x", "amount": 10.5}]}, "CURRENCY_TOTAL_AMOUNT_INVALID"),
        ({"prices": [{"label": "", "amount": 100}]}, "LABEL_INVALID"),
        ({"provider_token": "1:LIVE:someone-else"}, "PAYMENT_PROVIDER_INVALID"),
        ({"provider_token": ""}, "PAYMENT_PROVIDER_INVALID"),
    ],
)
async def test_an_invoice_is_checked_as_telegram_does(
    api: Api, change: dict[str, Any], reason: str
) -> None:
    body = await api.refused("sendInvoice", **{**INVOICE, **change})
    assert body["error_code"] == 400 and body["description"] == f"Bad Request: {reason}"


async def test_an_invoice_paid_through_a_checkout(telegram: TelegramServer, api: Api) -> None:
    """The customer's "Pay" reaches the bot as a pre_checkout_query; only after an ok answer
    does Telegram send the successful_payment message; every checkout is answered once."""
    anna = telegram.user(ANNA)
    sent = await api.ok("sendInvoice", **INVOICE)
    assert sent["invoice"] == {
        "title": "Предоплата",
        "description": "Маникюр, пн 23.11 в 15:00",
        "start_parameter": "",
        "currency": "RUB",
        "total_amount": 50000,
    }
    invoice = await anna.next("sendInvoice")
    paying = asyncio.create_task(anna.pay(invoice))
    await telegram.wait_for(lambda: bool(telegram._updates))
    (update,) = telegram._updates
    query = update["pre_checkout_query"]
    assert query["from"]["id"] == ANNA and query["invoice_payload"] == "dep:1:abc"
    assert query["total_amount"] == 50000 and query["currency"] == "RUB"
    assert [q.id for q in telegram.unanswered_pre_checkouts] == [query["id"]]
    # a refusal must say why; then the answer, once
    no_reason = await api.refused(
        "answerPreCheckoutQuery", pre_checkout_query_id=query["id"], ok=False
    )
    assert no_reason["description"] == "Bad Request: ERROR_MESSAGE_EMPTY"
    assert await api.ok("answerPreCheckoutQuery", pre_checkout_query_id=query["id"], ok=True)
    again = await api.refused("answerPreCheckoutQuery", pre_checkout_query_id=query["id"], ok=True)
    assert again["description"] == "Bad Request: QUERY_ID_INVALID"
    payment = await paying
    assert not telegram.unanswered_pre_checkouts
    message = telegram._updates[-1]["message"]
    assert message["successful_payment"] == payment
    assert payment["telegram_payment_charge_id"] and payment["provider_payment_charge_id"]
    assert payment["total_amount"] == 50000 and payment["invoice_payload"] == "dep:1:abc"


async def test_a_refused_checkout_is_never_charged(telegram: TelegramServer, api: Api) -> None:
    anna = telegram.user(ANNA)
    await api.ok("sendInvoice", **INVOICE)
    invoice = await anna.next("sendInvoice")
    checking = asyncio.create_task(anna.checkout(invoice))
    await telegram.wait_for(lambda: bool(telegram._updates))
    query_id = telegram._updates[-1]["pre_checkout_query"]["id"]
    await api.ok(
        "answerPreCheckoutQuery",
        pre_checkout_query_id=query_id,
        ok=False,
        error_message="Время брони истекло",
    )
    query = await checking
    assert query.answered is False and query.error_message == "Время брони истекло"
    with pytest.raises(AssertionError, match="approved"):
        await anna.complete_payment(query)
    assert len(telegram._updates) == 1  # no successful_payment


async def test_a_checkout_answered_too_late(telegram: TelegramServer, api: Api) -> None:
    clock = FakeClock()
    telegram.clock = clock
    anna = telegram.user(ANNA)
    await api.ok("sendInvoice", **INVOICE)
    checking = asyncio.create_task(anna.checkout(await anna.next("sendInvoice")))
    await telegram.wait_for(lambda: bool(telegram._updates))
    clock.now += 11
    late = await api.refused(
        "answerPreCheckoutQuery",
        pre_checkout_query_id=telegram._updates[-1]["pre_checkout_query"]["id"],
        ok=True,
    )
    assert "response timeout expired" in late["description"]
    checking.cancel()
