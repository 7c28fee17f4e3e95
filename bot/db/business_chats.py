"""Telegram Business: the connected accounts, the customers' chats with them and the messages of
those chats (`business_connections`, `business_chats`, `business_messages`): all their SQL."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import BusinessChat, BusinessConnection, BusinessMessage


class BusinessRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def connection(
        self, connection_id: str, *, for_update: bool = False
    ) -> BusinessConnection | None:
        return await self.session.get(BusinessConnection, connection_id, with_for_update=for_update)

    async def connections(self) -> list[BusinessConnection]:
        """Every account that ever connected the bot, those switched on first."""
        query = select(BusinessConnection).order_by(
            BusinessConnection.enabled.desc(), BusinessConnection.owner_name, BusinessConnection.id
        )
        return list(await self.session.scalars(query))

    def add(self, row: BusinessConnection | BusinessMessage) -> None:
        self.session.add(row)

    async def chat(self, tg_user_id: int, *, for_update: bool = False) -> BusinessChat | None:
        return await self.session.get(BusinessChat, tg_user_id, with_for_update=for_update)

    async def save_chat(self, chat: BusinessChat) -> None:
        await self.session.merge(chat)

    async def message(
        self, connection_id: str, tg_user_id: int, message_id: int
    ) -> BusinessMessage | None:
        query = select(BusinessMessage).where(
            BusinessMessage.connection_id == connection_id,
            BusinessMessage.tg_user_id == tg_user_id,
            BusinessMessage.message_id == message_id,
        )
        return (await self.session.scalars(query)).one_or_none()

    async def messages(
        self, connection_id: str, tg_user_id: int, message_ids: Iterable[int]
    ) -> list[BusinessMessage]:
        query = select(BusinessMessage).where(
            BusinessMessage.connection_id == connection_id,
            BusinessMessage.tg_user_id == tg_user_id,
            BusinessMessage.message_id.in_(list(message_ids)),
        )
        return list(await self.session.scalars(query.order_by(BusinessMessage.id)))

    async def of_person(
        self, customer_id: int, tg_user_id: int | None
    ) -> tuple[list[BusinessChat], list[BusinessMessage]]:
        """/mydata: a customer's chats with the accounts and the messages of them."""
        chats = select(BusinessChat).where(self._theirs(BusinessChat, customer_id, tg_user_id))
        messages = select(BusinessMessage).where(
            self._theirs(BusinessMessage, customer_id, tg_user_id)
        )
        return (
            list(await self.session.scalars(chats)),
            list(await self.session.scalars(messages.order_by(BusinessMessage.id))),
        )

    async def erase(self, customer_id: int, tg_user_id: int | None) -> None:
        """/forget: their chats with the accounts and the messages' numbers (the words are in
        the care history, which is erased with it)."""
        for model in (BusinessMessage, BusinessChat):
            await self.session.execute(
                delete(model).where(self._theirs(model, customer_id, tg_user_id))
            )

    @staticmethod
    def _theirs(
        model: type[BusinessChat] | type[BusinessMessage], customer_id: int, tg_user_id: int | None
    ):  # type: ignore[no-untyped-def]
        if tg_user_id is None:
            return model.customer_id == customer_id
        return or_(model.customer_id == customer_id, model.tg_user_id == tg_user_id)
