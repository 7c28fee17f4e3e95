"""A staff reply finds its customer even when it comes before the relay's link is written."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import CareMessage
from bot.db.repositories import Database
from bot.services.care import Author, CareService, Incoming

TG, ADMIN, POST = 7, -100, 501


async def test_a_reply_to_a_post_whose_link_is_not_yet_written_waits_for_it(
    db: Database, clock: FixedClock, business: Business
) -> None:
    """The relay posts the customer's message into the staff chat, then writes which customer
    that post belongs to (`relayed`) in a transaction of its own. A staff member who answers in
    between (quicker than that commit: a loaded machine, a busy writer) must not be taken for
    staff talking among themselves: the reply would be dropped, and the customer never get it."""
    care = CareService(db, clock, business)
    await care.take_incoming(
        Incoming(Author(TG, "Анна"), 11, "text", "Вопрос"), ADMIN, customer_id=None
    )
    async with db.reading() as repos:
        [care_id] = (await repos.session.scalars(select(CareMessage.id))).all()
    posted, link = asyncio.Event(), asyncio.Event()

    async def relay() -> None:
        async with care.posting():
            posted.set()  # the post is out: the staff see it as POST
            await link.wait()
            await care.relayed([care_id], POST)

    relaying = asyncio.create_task(relay())
    await asyncio.wait(
        {relaying, asyncio.ensure_future(posted.wait())},
        timeout=5,
        return_when=asyncio.FIRST_COMPLETED,
    )
    assert posted.is_set(), relaying.exception() if relaying.done() else "the relay never posted"
    answer = asyncio.create_task(care.recipient(ADMIN, POST, None))
    await asyncio.wait({answer}, timeout=0.3)
    assert not answer.done(), "the reply was routed before the post it answers was linked"
    link.set()
    assert await answer == TG
    await relaying


async def test_staff_talking_among_themselves_waits_for_nothing_when_no_post_is_on_its_way(
    db: Database, clock: FixedClock, business: Business
) -> None:
    care = CareService(db, clock, business)
    assert await asyncio.wait_for(care.recipient(ADMIN, POST, None), 5) is None
