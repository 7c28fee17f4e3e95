"""`carebot demo` without a browser: its page's API as the page calls it, over HTTP, against the
real bot polling the built-in stand-in. What a Telegram client would not let a person do is
refused politely and changes nothing; the clock only goes forward; a seeded demo has a history."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.demo.run import Demo, DemoError, DemoOptions
from bot.demo.world import FIRST_CUSTOMER, GROUP_ID, PEOPLE_FILE
from bot.standin import Call

MOSCOW = ZoneInfo("Europe/Moscow")
START = datetime(2026, 11, 23, 12, 0, tzinfo=MOSCOW)
PNG = (  # a 1×1 picture
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99"
    b"=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


def options(folder: Path, database_url: str, **more: Any) -> DemoOptions:
    return DemoOptions(folder=folder, port=0, database_url=database_url, start=START, **more)


@pytest.fixture
async def demo(database_url: str, tmp_path: Path) -> AsyncIterator[Demo]:
    running = Demo(options(tmp_path / "demo", database_url))
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def http(demo: Demo) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(demo.url) as session:
        yield session


async def post(
    http: aiohttp.ClientSession, path: str, body: Any = None, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(path, json=body, **kwargs) as response:
        return response.status, await response.json()


async def bot_said(demo: Demo, chat: int, contains: str) -> Call:
    """The bot's first message into `chat` with these words (waiting for it)."""

    def found() -> Call | None:
        return next(
            (c for c in demo.server.sent_to(chat) if contains in c.text),
            None,
        )

    await demo.server.wait_for(lambda: found() is not None, timeout=20)
    call = found()
    assert call is not None
    return call


async def test_the_page_and_its_state(demo: Demo, http: aiohttp.ClientSession) -> None:
    async with http.get("/") as response:
        assert response.status == 200 and "carebot demo" in await response.text()
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    for asset in ("demo.js", "demo.css", "icon.svg"):
        async with http.get(f"/static/{asset}") as response:
            assert response.status == 200
    for missing in ("/static/nothing.js", "/static/.hidden.js", "/static/%2e%2e%2fweb.py"):
        async with http.get(missing) as response:
            assert response.status == 404
    for master in demo.world.masters:  # each master linked themselves
        await bot_said(demo, master.user_id, "мастер")
    async with http.get("/api/state") as response:
        state = await response.json()
    async with http.get("/healthz") as response:  # the bot's own, as carebot run --http has it
        assert response.status == 200, await response.text()
    assert [c["name"] for c in state["customers"]] == ["Мария"]
    assert all(m["linked"] for m in state["masters"]) and state["group"]["id"] == GROUP_ID
    assert state["clock"]["local"].startswith("2026-11-23T12:0")


async def test_what_a_client_would_not_do_is_refused_and_changes_nothing(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    await post(http, f"/api/chats/{FIRST_CUSTOMER}/text", {"text": "/start"})
    consent = await bot_said(demo, FIRST_CUSTOMER, "Давайте познакомимся")
    pushed = demo.server.pushed
    press = {"message_id": consent.message["message_id"], "data": "forged:data"}
    status, body = await post(http, f"/api/chats/{FIRST_CUSTOMER}/press", press)
    assert status == 400 and body["error"] == "that button is no longer there"
    status, body = await post(http, f"/api/chats/{FIRST_CUSTOMER}/text", {"text": "   "})
    assert status == 400 and body["error"] == "write something first"
    status, body = await post(http, "/api/chats/555/text", {"text": "hi"})
    assert status == 400 and body["error"] == "no such chat in the demo"
    status, body = await post(http, f"/api/chats/{GROUP_ID}/contact", {})
    assert status == 400 and "only a customer" in body["error"]
    status, body = await post(http, f"/api/chats/{FIRST_CUSTOMER}/text", {"text": "x" * 4097})
    assert status == 400 and "4096" in body["error"]
    form = aiohttp.FormData()
    form.add_field("photo", b"GIF89a not a photo Telegram takes", filename="a.gif")
    async with http.post(f"/api/chats/{FIRST_CUSTOMER}/photo", data=form) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "a photo is a PNG or JPEG picture"
    status, body = await post(http, "/api/customers", {"name": " ", "lang": "ru"})
    assert status == 400 and "name" in body["error"]
    status, body = await post(http, "/api/customers", {"name": "Ян", "lang": "de"})
    assert status == 400 and body["error"] == "the language is ru or en"
    async with http.post(
        f"/api/chats/{FIRST_CUSTOMER}/text", data="{", headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
    status, body = await post(
        http,
        f"/api/chats/{FIRST_CUSTOMER}/text",
        {"text": "/stop"},
        headers={"Origin": "http://evil.example"},
    )
    assert status == 403  # another site's page cannot drive the demo
    async with http.get("/api/state", headers={"Host": "evil.example:8080"}) as response:
        assert response.status == 403  # nor one whose name was rebound to this machine
    assert demo.server.pushed == pushed  # none of it reached the bot
    assert len(demo.world.customers) == 1


async def test_a_photo_reaches_the_staff_and_the_page_can_show_it(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("photo", PNG, filename="nails.png", content_type="image/png")
    form.add_field("caption", "Вот такой дизайн хочу")
    async with http.post(f"/api/chats/{FIRST_CUSTOMER}/photo", data=form) as response:
        assert response.status == 200
    sent = demo.world.chat(FIRST_CUSTOMER)[-1]
    assert sent["text"] == "Вот такой дизайн хочу" and sent["photo"].startswith("/api/file/")
    async with http.get(sent["photo"]) as response:
        assert response.status == 200 and response.content_type == "image/png"
        assert await response.read() == PNG


async def test_the_clock_moves_forward_only_and_runs_the_planners(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    before = demo.clock.now()
    status, body = await post(http, "/api/clock", {"add": "hour"})
    assert status == 200 and "result" in body
    moved = datetime.fromisoformat(body["now"]) - before
    assert timedelta(hours=1) <= moved < timedelta(hours=1, minutes=1)
    status, body = await post(http, "/api/clock", {"to": "2026-11-20T10:00"})
    assert status == 400 and "only moves forward" in body["error"]
    status, body = await post(http, "/api/clock", {"add": "year"})
    assert status == 400
    status, body = await post(http, "/api/clock", {"to": "the day after"})
    assert status == 400 and "not a date and time" in body["error"]
    status, body = await post(http, "/api/clock", {"to": "2026-11-30T11:00"})
    assert status == 200 and body["local"].startswith("2026-11-30T11:00")


async def test_customers_added_stay_across_a_restart(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = Demo(options(folder, database_url))
    await first.start()
    try:
        async with aiohttp.ClientSession(first.url) as http:
            status, body = await post(http, "/api/customers", {"name": "Kate", "lang": "en"})
        assert status == 200 and body["id"] == FIRST_CUSTOMER + 1
    finally:
        await first.stop()
    saved = json.loads((folder / PEOPLE_FILE).read_text(encoding="utf-8"))
    assert [c["name"] for c in saved["customers"]] == ["Мария", "Kate"]
    again = Demo(options(folder, database_url))
    await again.start()
    try:
        assert [c.name for c in again.world.customers.values()] == ["Мария", "Kate"]
        await again.world.write(FIRST_CUSTOMER + 1, "/start")
        await bot_said(again, FIRST_CUSTOMER + 1, "phone number")  # in English, as her Telegram is
    finally:
        await again.stop()


async def test_a_taken_port_is_one_line(demo: Demo, database_url: str, tmp_path: Path) -> None:
    port = int(demo.url.rsplit(":", 1)[1])
    second = Demo(DemoOptions(folder=tmp_path / "other", port=port, database_url=database_url))
    with pytest.raises(DemoError, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
        await second.start()


async def test_a_seeded_demo_has_a_history_to_show(database_url: str, tmp_path: Path) -> None:
    demo = Demo(options(tmp_path / "demo", database_url, seed=True))
    await demo.start()
    try:
        assert len(demo.world.customers) == 13  # the one to start with, and a dozen seeded
        assert abs(demo.clock.now() - START) < timedelta(minutes=1)  # back to the first now
        seeded = [await demo.app.customers.find(c) for c in list(demo.world.customers)[1:]]
        assert all(c is not None and c.onboarded for c in seeded)
        await demo.world.write(GROUP_ID, "/sleeping")
        sleeping = await bot_said(demo, GROUP_ID, "Спят сейчас: ")
        asleep = re.search(r"Спят сейчас: (\d+)", sleeping.text)
        assert asleep and int(asleep[1]) >= 3
        await demo.world.write(GROUP_ID, "/stats")
        stats = await bot_said(demo, GROUP_ID, "повторные: ")
        repeat = re.search(r"повторные: (\d+)", stats.text)
        assert repeat and int(repeat[1]) > 0

        # the customers whose cycle came due, and those asleep, were written to at start
        def written() -> int:
            return sum(1 for c in demo.world.customers if demo.server.sent_to(c))

        await demo.server.wait_for(lambda: written() >= 3, timeout=30)
    finally:
        await demo.stop()


def test_the_readmes_first_command_gives_the_page(tmp_path: Path) -> None:
    """`carebot demo`, as the README's first command ends, run as the owner would from an empty
    folder: one line with the page's address, the page served, Ctrl-C stops it cleanly."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert re.search(r"pip install -e \. && \.venv/bin/carebot demo\n", readme)
    with socket.socket() as probe:  # a port free now, for the demo to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "REDIS_URL")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stdout is not None
        line = demo.stdout.readline()  # the one line, once the page is served
        url = f"http://127.0.0.1:{port}"
        assert line.startswith(f"carebot demo: open {url} in a browser"), line
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and b"carebot demo" in page.read()
        assert (tmp_path / "carebot-demo" / "carebot.sqlite3").exists()
    finally:
        demo.send_signal(signal.SIGINT)
        _, errors = demo.communicate(timeout=60)
    assert demo.returncode == 0, errors
    assert "Traceback" not in errors
