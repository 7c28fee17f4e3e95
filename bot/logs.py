"""One-line structured logs (logfmt); phone numbers and dates are masked before writing."""
from __future__ import annotations

import logging
import re
import sys

# "+7 916 123-45-67", "+79161234567", "8 (916) 123 45 67"; bare ids (user 123456789) stay.
_PHONE = re.compile(r"(?:\+\d|\b[78](?=[\s(\-]))[\d\s()\-]{8,}\d|\b[78]\d{10}\b")
_DATE = re.compile(r"\b\d{1,4}[./-]\d{1,2}(?:[./-]\d{2,4})?\b")


def redact(text: str) -> str:
    return _DATE.sub("<date>", _PHONE.sub("<phone>", text))


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += " | " + self.formatException(record.exc_info)
        fields = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(message),
        }
        return " ".join(f"{k}={self._quote(v)}" for k, v in fields.items())

    @staticmethod
    def _quote(value: str) -> str:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{value}"' if (" " in value or "=" in value or not value) else value


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
