"""aiogram's types are built on first use (bot/lazy_types.py), and every one of them can be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import PROJECT_ROOT

SCRIPT = """
import inspect
from bot import lazy_types
lazy_types.install()  # before aiogram is imported, as `carebot` does
import bot.app
import aiogram.methods, aiogram.types
from pydantic import BaseModel

models = [m for module in (aiogram.types, aiogram.methods) for m in vars(module).values()
          if inspect.isclass(m) and issubclass(m, BaseModel) and m.__module__.startswith("aiogram.")]
print(len(models), sum(m.__pydantic_complete__ for m in models))
for model in models:
    model.__pydantic_validator__.validate_python  # a deferred model builds itself here
    model.__pydantic_serializer__.to_python
print(sum(not m.__pydantic_complete__ for m in models))
print(aiogram.types.Update.model_validate({"update_id": 1, "message": {
    "message_id": 5, "date": 0, "chat": {"id": 7, "type": "private"},
    "from": {"id": 7, "is_bot": False, "first_name": "Анна"}, "text": "привет"}}).message.text)
"""


def test_aiogram_types_wait_until_used_and_all_of_them_build() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    counts, unbuilt, text = result.stdout.split("\n")[:3]
    total, built_at_start = map(int, counts.split())
    assert total > 500 and built_at_start < total // 3, counts  # aiogram alone builds all of them
    assert unbuilt == "0" and text == "привет"


PINNED = """
import os, sys
from pydantic import BaseModel
original = BaseModel.model_rebuild.__func__
import bot, bot.app, bot.cli, bot.rendering, bot.settings  # the package imported as a library
print(BaseModel.model_rebuild.__func__ is original)
os.environ.pop("BOT_TOKEN", None)
from bot.cli import main
print(main(["outbox"]))  # the entry point: installs it first, then stops (no BOT_TOKEN)
print(BaseModel.model_rebuild.__func__ is original)
"""


def test_only_the_entry_point_patches_pydantic(tmp_path: Path) -> None:
    """`import bot` leaves pydantic as it found it; `carebot` (bot.cli.main) installs the lazy build."""
    env = {k: v for k, v in os.environ.items() if k != "BOT_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-c", PINNED],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.stdout.split() == ["True", "2", "False"], result.stderr


KEPT = """
import gc, weakref
from bot import lazy_types
lazy_types.install()
from aiogram.methods.base import Response
from aiogram.types import Message

def answer():
    response = Response[Message]  # as aiogram's session validates every answer to sendMessage
    response.model_validate({"ok": True, "result": {"message_id": 1, "date": 0, "chat": {"id": 7, "type": "private"}}})
    return weakref.ref(response)

first = answer()
gc.collect()
print(first() is not None, answer() is first)
"""


def test_a_parametrized_answer_type_is_built_once() -> None:
    """`Response[Message]` survives the garbage collector: not built again (60-270 ms) every second or two."""
    result = subprocess.run(
        [sys.executable, "-c", KEPT],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.split() == ["True", "True"], result.stderr
