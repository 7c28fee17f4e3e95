"""`carebot demo` in a real headless Chromium: the page's customer, staff group and master panes
driven by clicks and typing, against the real bot polling the built-in stand-in over HTTP.

Playwright drives the system's Chromium (Debian's `chromium` package, which .ci/run installs);
without one the module is skipped. Each test leaves a screenshot of the page in its tmp_path
(or in $CAREBOT_SCREENSHOTS when set).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.demo.run import Demo, DemoOptions
from bot.demo.world import FIRST_CUSTOMER

try:
    from playwright.async_api import FilePayload, Locator, Page, async_playwright, expect
except ImportError:  # the [test] extra brings it
    pytest.skip("playwright is not installed: pip install -e '.[test]'", allow_module_level=True)

CHROMIUM = os.environ.get("CAREBOT_CHROMIUM") or next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (apt-get install chromium), as .ci/run installs"
)

MOSCOW = ZoneInfo("Europe/Moscow")
START = datetime(2026, 11, 23, 12, 0, tzinfo=MOSCOW)  # a Monday, at noon
WAIT_MS = 20_000
CODE = re.compile(r"\b[A-Z0-9]{8}\b")
PNG = (  # a 1×1 picture
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99"
    b"=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
async def demo(database_url: str, tmp_path: Path) -> AsyncIterator[Demo]:
    running = Demo(
        DemoOptions(folder=tmp_path / "demo", port=0, database_url=database_url, start=START)
    )
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where each test leaves its screenshot."""
    folder = Path(os.environ.get("CAREBOT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def page(demo: Demo, shots: Path, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        opened = await browser.new_page(viewport={"width": 1440, "height": 900})
        opened.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        opened.on("pageerror", lambda error: errors.append(str(error)))
        await opened.goto(demo.url)
        await opened.wait_for_selector("body[data-live=true]")
        try:
            yield opened
        finally:
            name = re.sub(r"[^\w-]", "_", request.node.name)
            await opened.screenshot(path=str(shots / f"{name}.png"))
            await browser.close()
    assert not errors, f"the page's script failed: {errors}"


def pane(page: Page, kind: str) -> Locator:
    return page.locator(f"#pane-{kind}")


def messages(page: Page, kind: str, text: str) -> Locator:
    return pane(page, kind).locator(".msg", has_text=text)


async def shows(page: Page, kind: str, text: str) -> Locator:
    """The last message of the pane with this text, once it is there."""
    found = messages(page, kind, text).last
    await expect(found).to_be_visible(timeout=WAIT_MS)
    return found


async def write(page: Page, kind: str, text: str) -> None:
    box = pane(page, kind).locator("textarea")
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("", timeout=WAIT_MS)  # the demo took it


async def tap(page: Page, kind: str, button: str) -> None:
    """The inline button with this text under the pane's latest message that has one."""
    await pane(page, kind).locator(".msg .inline-keyboard button", has_text=button).last.click()


async def onboard(page: Page, name: str = "Мария") -> str:
    """The pane's customer joins by clicking, as on a phone; returns the welcome coupon's code."""
    await write(page, "customer", "/start")
    await shows(page, "customer", "Давайте познакомимся")
    await tap(page, "customer", "Согласен(на)")
    share = pane(page, "customer").locator(".keyboard button", has_text="Поделиться номером")
    await share.click()
    await shows(page, "customer", "Когда у вас день рождения?")
    await expect(pane(page, "customer").locator(".keyboard")).to_be_hidden()
    await write(page, "customer", "14.03.1990")
    await shows(page, "customer", "Как к вам обращаться?")
    await tap(page, "customer", f"Да, {name}")
    await shows(page, "customer", "присылать вам персональные предложения")
    await tap(page, "customer", "Да, присылайте")
    welcome = await shows(page, "customer", "Ваш приветственный купон")
    code = CODE.search(await welcome.locator("code").inner_text())
    assert code, "the welcome message shows the coupon's code"
    return code[0]


async def add_customer(page: Page, name: str) -> None:
    await page.get_by_role("button", name="Add a customer").click()
    await page.get_by_label("Name in Telegram").fill(name)
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#customer-select option:checked")).to_have_text(f"{name} (ru)")


async def test_a_customer_onboards_by_clicking_and_gets_the_coupon(page: Page, demo: Demo) -> None:
    code = await onboard(page)
    await expect(messages(page, "customer", "📞 contact shared: +79160100001")).to_have_count(1)
    async with demo.app.db.reading() as repos:
        customer = await repos.customers.by_tg_user(FIRST_CUSTOMER)
        assert customer is not None and customer.phone == "+79160100001"
        codes = [c.code for c in await repos.coupons.active(customer.id, demo.clock.now())]
    assert codes == [code]  # the code shown is the one stored
    # Telegram HTML is drawn as formatting, never as markup text
    assert await messages(page, "customer", "Ваш приветственный купон").locator("code").count() == 1
    await expect(messages(page, "customer", "<code>")).to_have_count(0)


async def test_staff_answer_from_the_group_pane(page: Page) -> None:
    await onboard(page)
    await write(page, "customer", "Можно перенести запись на пятницу?")
    card = await shows(page, "group", "Можно перенести запись на пятницу?")
    await card.get_by_role("button", name="Reply to this message").click()
    await expect(pane(page, "group").locator(".replying")).to_be_visible()
    await write(page, "group", "Конечно, перенесли на пятницу, 15:00")
    answer = await shows(page, "customer", "Конечно, перенесли на пятницу, 15:00")
    assert "me" not in (await answer.get_attribute("class") or "")  # it came from the bot
    photo = FilePayload(name="nails.png", mimeType="image/png", buffer=PNG)
    await pane(page, "customer").locator("textarea").fill("Вот такой дизайн")
    await pane(page, "customer").get_by_label("Send a photo as the customer").set_input_files(photo)
    relayed = await shows(page, "group", "Вот такой дизайн")
    await expect(relayed.locator("img.photo")).to_be_visible()
    assert await relayed.locator("img.photo").evaluate("i => i.naturalWidth") == 1  # drawn


async def test_topics_in_the_group_pane(page: Page) -> None:
    await page.get_by_label("Topics").check()
    await expect(page.get_by_label("Topic", exact=True)).to_be_visible()
    await onboard(page)
    await write(page, "customer", "Есть свободное время завтра?")
    await expect(page.locator("#topic-select option")).to_have_count(2)  # General, hers
    await expect(messages(page, "group", "Есть свободное время завтра?")).to_have_count(0)
    await page.get_by_label("Topic", exact=True).select_option(index=1)
    await shows(page, "group", "Есть свободное время завтра?")
    await write(page, "group", "Да, в 11:00 и в 16:00")  # in her topic: no reply needed
    await shows(page, "customer", "Да, в 11:00 и в 16:00")


async def test_the_clock_moves_a_day_and_the_survey_appears(page: Page) -> None:
    await onboard(page)
    await write(page, "group", "/sale +79160100001 2000 Маникюр Анна")
    await shows(page, "group", "Маникюр с покрытием")
    await expect(messages(page, "customer", "Оцените, пожалуйста")).to_have_count(0)
    await page.get_by_role("button", name="+1 day").click()
    await expect(page.locator("#clock-now")).to_contain_text("24 Nov 2026")
    await expect(page.locator("#clock-status")).to_contain_text("Ran the planners")
    survey = await shows(page, "customer", "Оцените, пожалуйста, от 1 до 5")
    await expect(survey.locator(".inline-keyboard button")).not_to_have_count(0)
    await expect(survey.locator(".inline-keyboard button", has_text="5")).to_have_count(1)


async def test_a_broadcast_from_the_group_pane_reaches_the_customer_panes(page: Page) -> None:
    await onboard(page)
    await add_customer(page, "Вера")
    await onboard(page, "Вера")
    await write(page, "group", "/broadcast")
    await shows(page, "group", "Пришлите")
    await expect(pane(page, "group").locator(".replying")).to_be_visible()  # force_reply
    await write(page, "group", "Скидка 15% на маникюр до конца недели!")
    await tap(page, "group", "Без кнопок")
    await tap(page, "group", "Без купона")
    await tap(page, "group", "Готово: 2")
    await tap(page, "group", "Отправить сейчас")
    await shows(page, "customer", "Скидка 15% на маникюр до конца недели!")  # Вера, shown now
    await page.locator("#customer-select").select_option(str(FIRST_CUSTOMER))
    await shows(page, "customer", "Скидка 15% на маникюр до конца недели!")  # and Мария
    await shows(page, "group", "Доставлено: 2")
