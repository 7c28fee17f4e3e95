"""carebot: a Telegram bot that turns one-time buyers into repeat customers."""
from pathlib import Path

from bot import lazy_types

lazy_types.install()  # before anything imports aiogram: see bot/lazy_types.py

PROJECT_ROOT = Path(__file__).resolve().parent.parent
