"""carebot: a Telegram bot that turns one-time buyers into repeat customers."""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
