"""The Bot API test server's Telegram Business: connections, the messages of the accounts' chats,
and sends on an account's behalf refused as Telegram refuses them (over real HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Update

from tests.conftest import TOKEN
from tests.telegram_server import BOT_USER, TelegramServer
from tests.unit.conftest import FakeClock


@pytest.fixture
async def call(telegram: TelegramServer) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as http:

        async def calling(method: str, **params: Any) -> tuple[int, dict[str, Any]]:
            async with http.post(f"{telegram.url}/bot{TOKEN}/{method}", json=params) as response:
                return response.status, await response.json()

        yield calling


async def updates(telegram: TelegramServer) -> list[Update]:
    return [Update.model_validate(u) for u in await telegram._get_updates({"timeout": 0})]


async def test_connection_messages_and_replies_as_aiogram_reads_them(
    telegram: TelegramServer, call: Any, server_clock: FakeClock
) -> None:
    salon = telegram.business_account(7001, "Салон")
    anna = telegram.user(5001)
    await salon.connect()
    first = await anna.write_to(salon, "Здравствуйте")
    await salon.owner_writes(anna, "Добрый день!")
    await anna.edit_to(salon, first, "Здравствуйте!")
    await anna.delete_to(salon, first)
    connected, written, owner, edited, deleted = await updates(telegram)
    assert connected.business_connection is not None
    assert connected.business_connection.user.id == 7001
    assert connected.business_connection.is_enabled
    assert connected.business_connection.rights and connected.business_connection.rights.can_reply
    assert written.business_message and written.business_message.text == "Здравствуйте"
    assert written.business_message.business_connection_id == salon.connection_id
    assert written.business_message.chat.id == anna.id
    assert owner.business_message and owner.business_message.from_user
    assert owner.business_message.from_user.id == 7001
    assert edited.edited_business_message and edited.edited_business_message.text == "Здравствуйте!"
    assert deleted.deleted_business_messages
    assert deleted.deleted_business_messages.message_ids == [first["message_id"]]

    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    bot = Bot(TOKEN, session=session)
    try:
        got = await bot.get_business_connection(salon.connection_id)
        assert got.user.id == 7001 and got.rights and got.rights.can_reply
        sent = await bot.send_message(
            anna.id, "Ждём вас", business_connection_id=salon.connection_id
        )
        assert sent.business_connection_id == salon.connection_id
        assert sent.from_user and sent.from_user.id == 7001  # as the account, not the bot
        assert sent.sender_business_bot and sent.sender_business_bot.id == BOT_USER["id"]
        edited_text = await bot.edit_message_text(
            "Ждём вас в 15:00",
            chat_id=anna.id,
            message_id=sent.message_id,
            business_connection_id=salon.connection_id,
        )
        assert not isinstance(edited_text, bool) and edited_text.text == "Ждём вас в 15:00"
    finally:
        await session.close()
    assert [c.text for c in salon.sent_as_account(anna)] == ["Ждём вас"]


async def test_sends_refused_as_telegram_refuses_them(
    telegram: TelegramServer, call: Any, server_clock: FakeClock
) -> None:
    salon = telegram.business_account(7002, "Салон")
    anna, boris = telegram.user(5002), telegram.user(5003)
    status, body = await call("sendMessage", chat_id=anna.id, text="x", business_connection_id="no")
    assert (status, body["description"]) == (400, "Bad Request: BUSINESS_CONNECTION_INVALID")
    status, body = await call("getBusinessConnection", business_connection_id="no")
    assert status == 400

    await salon.connect()
    await anna.write_to(salon, "Вопрос")
    ok = {"chat_id": anna.id, "text": "Ответ", "business_connection_id": salon.connection_id}
    assert (await call("sendMessage", **ok))[0] == 200
    # No message from this customer: the account cannot start a chat.
    status, body = await call("sendMessage", **{**ok, "chat_id": boris.id})
    assert body["description"] == "Bad Request: BUSINESS_PEER_INVALID"
    # copyMessage takes no business_connection_id.
    status, body = await call(
        "copyMessage",
        chat_id=anna.id,
        from_chat_id=anna.id,
        message_id=1,
        business_connection_id=salon.connection_id,
    )
    assert status == 400 and "business_connection_id" in body["description"]
    # 24 hours after the customer's last message the chat is closed to the bot.
    server_clock.now += 24 * 3600 + 1
    assert (await call("sendMessage", **ok))[1]["description"].endswith("BUSINESS_PEER_INVALID")
    await anna.write_to(salon, "Ещё вопрос")
    assert (await call("sendMessage", **ok))[0] == 200
    # The owner takes away "reply to messages", then switches the bot off.
    await salon.change_rights(can_reply=False)
    assert (await call("sendMessage", **ok))[1]["description"].endswith("BOT_ACCESS_FORBIDDEN")
    await salon.change_rights(can_reply=True)
    assert (await call("sendMessage", **ok))[0] == 200
    await salon.disconnect()
    assert (await call("sendMessage", **ok))[1]["description"].endswith(
        "BUSINESS_CONNECTION_INVALID"
    )
    # Disconnected, the account's messages no longer reach the bot.
    before = telegram.pushed
    await anna.write_to(salon, "Алло?")
    assert telegram.pushed == before
    # Nothing of it landed in the customer's chat with the bot itself.
    assert all(c.params.get("business_connection_id") for c in telegram.sent_to(anna.id))
    assert not [k for k in telegram.messages if k[0] == anna.id]
