"""Importing the owner's base: `carebot import` as the owner runs it, and a CSV sent to the
admin chat (dry run, the "Apply" button, the rejected lines as a file), on both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db.models import Customer, Purchase
from bot.telegram_text import TEXT_LIMIT, visible_len
from tests import PROJECT_ROOT
from tests.conftest import BUSINESS_FILE, TOKEN
from tests.e2e.helpers import count
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process


def _example(name: str) -> bytes:
    return (resources.files("bot.data") / "examples" / name).read_bytes()


async def test_a_csv_in_the_admin_chat_is_checked_then_applied_once(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await olga.send_document(_example("yclients_customers.csv"), "clients.csv", "/import customers")
    report = await olga.reply()
    assert report.template == "import_report"
    assert "Импорт клиентов: проверка" in report.text and "новых 983" in report.text
    assert "неверный телефон: 12" in report.text
    assert visible_len(report.text) <= TEXT_LIMIT
    rejected = await olga.next("sendDocument")
    lines = rejected.upload().data.decode("utf-8-sig").splitlines()
    assert lines[0] == "line;reason;value" and len(lines) == 1 + 17 + 9
    assert await count(carebot.db, Customer) == 0  # nothing written yet

    await olga.press(report, "Применить")
    applied = await olga.next("editMessageText")
    assert "Импорт клиентов: записано" in applied.text and applied.buttons == []
    assert await count(carebot.db, Customer) == 983

    await olga.press(report, "Применить")  # pressed again: the same file adds nothing
    again = await olga.next("editMessageText")
    assert "новых 0" in again.text and "без изменений 983" in again.text
    assert await count(carebot.db, Customer) == 983


async def test_the_kind_is_told_from_the_header_and_nothing_is_sent_for_old_visits(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await olga.send_document(_example("visits_template.csv"), "visits.csv", "/import")
    report = await olga.reply()
    assert "Импорт визитов: проверка" in report.text
    await olga.press(report, "Применить")
    assert "Визиты: новых 4" in (await olga.next("editMessageText")).text
    assert await count(carebot.db, Purchase) == 4
    await carebot.settle()
    customers = [c for c in telegram.calls if c.chat_id and c.chat_id > 0]
    assert customers == []  # no survey, no thank-you offer: nobody has Telegram, nothing queued


async def test_a_file_that_is_no_import_and_a_wrong_word(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await olga.send_document(b"PK\x03\x04 an xlsx", "base.xlsx", "/import customers")
    failed = await olga.reply()
    assert failed.template == "import_failed" and "это не CSV" in failed.text
    await olga.send_document("Имя;Город\nАнна;Москва\n".encode(), "c.csv", "/import customers")
    failed = await olga.reply()
    assert "нет заголовка с телефоном" in failed.text and "name, phone" in failed.text
    await olga.send_document(b"phone\n+79161234567\n", "c.csv", "/import everything")
    assert (await olga.reply()).template == "import_usage"
    await olga.send("/import")
    assert (await olga.reply()).template == "import_usage"
    assert await count(carebot.db, Customer) == 0


async def test_someone_who_is_not_staff_imports_nothing(carebot, telegram: TelegramServer) -> None:
    stranger = telegram.user(5001, "Пётр")
    await stranger.send_document(_example("customers_template.csv"), "c.csv", "/import customers")
    answer = await stranger.reply()
    assert answer.template == "staff_only"
    await stranger.quiet()
    assert not [c for c in telegram.calls if c.method == "getFile"]
    assert await count(carebot.db, Customer) == 0


# ---- the command line --------------------------------------------------------------------------


def _carebot(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BOT_TOKEN": TOKEN,
        "DATABASE_URL": database_url,
        "BUSINESS_FILE": str(BUSINESS_FILE),
        "SECRET_KEY": "carebot-tests-secret-key",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
        timeout=300,
    )


async def test_the_command_line_dry_run_apply_and_again(database_url: str, tmp_path: Path) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_bytes(_example("customers_template.csv"))
    visits = tmp_path / "visits.csv"
    visits.write_bytes(_example("visits_template.csv"))

    dry = _carebot(database_url, "import", "customers", str(customers))
    assert dry.returncode == 0, dry.stderr
    assert "проверка (ничего не записано)" in dry.stdout and "--apply" in dry.stdout
    done = _carebot(database_url, "import", "customers", str(customers), "--apply", "--lang", "en")
    assert done.returncode == 0, done.stderr
    assert "Import of customers: written" in done.stdout and "Customers: new 3" in done.stdout
    done = _carebot(database_url, "import", "visits", str(visits), "--apply")
    assert "Визиты: новых 4, уже были 0" in done.stdout
    again = _carebot(database_url, "import", "visits", str(visits), "--apply")
    assert "Визиты: новых 0, уже были 4" in again.stdout

    rejected = tmp_path / "rejected.csv"
    bad = tmp_path / "bad.csv"
    bad.write_text("Имя;Телефон\nАнна;12345\n", encoding="cp1251")
    report = _carebot(database_url, "import", "customers", str(bad), "--rejected", str(rejected))
    assert "строка 2: неверный телефон «12345»" in report.stdout
    assert rejected.read_bytes().decode("utf-8-sig").splitlines()[1] == "2;bad_phone;12345"

    missing = _carebot(database_url, "import", "customers", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().startswith("carebot: cannot open")
    wrong = _carebot(database_url, "import", "visits", str(customers))
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "no header" in wrong.stderr


async def test_imported_rows_are_as_the_cli_wrote_them(database_url: str, tmp_path: Path) -> None:
    from bot.db.engine import create_engine
    from bot.db.repositories import Database

    visits = tmp_path / "visits.csv"
    visits.write_bytes(_example("visits_template.csv"))
    assert _carebot(database_url, "import", "visits", str(visits), "--apply").returncode == 0
    engine = create_engine(database_url)
    try:
        async with Database(engine).transaction() as repos:
            people = list(await repos.session.scalars(select(Customer).order_by(Customer.id)))
            made = list(await repos.session.scalars(select(Purchase).order_by(Purchase.id)))
    finally:
        await engine.dispose()
    assert [c.name for c in people] == ["Анна Иванова", "Мария Петрова", "Елена"]
    assert all(c.tg_user_id is None and c.marketing_opt_out for c in people)
    assert [(p.service_id, p.master_id, p.amount_minor) for p in made] == [
        ("manicure", "anna", 200000),
        ("manicure", "anna", 200000),
        ("pedicure", "olga", 280000),
        ("manicure", None, 180000),
    ]
