"""One-line structured logs (logfmt); phone numbers and dates are masked before writing."""

from __future__ import annotations

import logging
import re
import sys

# "+7 916 123-45-67", "+79161234567", "8 (916) 123 45 67"; bare ids (user 123456789) stay.
_PHONE = re.compile(r"(?:\+\d|\b[78](?=[\s(\-]))[\d\s()\-]{8,}\d|\b[78]\d{10}\b")
# Not inside a dotted run of numbers: an IP address (127.0.0.1) stays readable.
_DATE = re.compile(r"(?<!\d\.)\b\d{1,4}[./-]\d{1,2}(?:[./-]\d{2,4})?\b(?!\.\d)")


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


# aiogram's routine polling lines; the bot's own "carebot started" says what they would.
_ROUTINE = ("Start polling", "Run polling for bot", "Polling stopped")


class _Routine(logging.Filter):
    """Demote aiogram's routine polling lines to DEBUG, so start-up is one line at INFO;
    its failures ("Failed to fetch updates") and recoveries stay as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and str(record.msg).startswith(_ROUTINE):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # "Added job", "Scheduler started": shown only when debugging
    logging.getLogger("apscheduler").setLevel(level if level <= logging.DEBUG else logging.WARNING)
    dispatcher = logging.getLogger("aiogram.dispatcher")
    dispatcher.filters[:] = [f for f in dispatcher.filters if not isinstance(f, _Routine)] + [
        _Routine()
    ]
