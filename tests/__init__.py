"""The tests (and the benches, which import tests.telegram_server) run aiogram as `carebot` does:
with its Bot API types built on first use (bot/lazy_types.py), installed before aiogram is imported."""

from pathlib import Path

from bot import lazy_types

lazy_types.install()

PROJECT_ROOT = (
    Path(__file__).resolve().parent.parent
)  # the source checkout the tests read files from
