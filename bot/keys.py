"""The secret key, kept outside the database: a leaked database (or a backup of it) must not
reveal what the key protects (the phones behind welcome-claim fingerprints).

`SECRET_KEY` when set; otherwise a key file created once beside the SQLite database file
(under `data/` for PostgreSQL), mode 0600, holding the same kind of value: to move the key
into the environment, set SECRET_KEY to the file's contents.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.settings import ConfigError, Settings

log = logging.getLogger("carebot")

KEY_FILE_NAME = "carebot.key"
DATA_DIR = Path("data")
MIN_KEY_LENGTH = 16


@dataclass(frozen=True)
class SecretKey:
    value: bytes
    source: str  # "SECRET_KEY" or the key file's path
    created: bool = False  # a new key file was made just now


def key_file_path(database_url: str) -> Path:
    """Beside the SQLite database file; under `data/` for PostgreSQL or an in-memory SQLite."""
    url = make_url(database_url)
    database = url.database if url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return DATA_DIR / KEY_FILE_NAME
    return Path(database).parent / KEY_FILE_NAME


def load_secret_key(settings: Settings) -> SecretKey:
    """SECRET_KEY, or the key file (created with 32 random bytes the first time)."""
    if settings.secret_key is not None:
        return SecretKey(settings.secret_key.get_secret_value().encode(), "SECRET_KEY")
    path = key_file_path(settings.database_url)
    created = False
    try:
        if not path.exists():
            created = _create(path)
        text = path.read_text(encoding="utf-8").strip()
        mode = stat.S_IMODE(path.stat().st_mode)
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"cannot read or create the key file {path} (or set SECRET_KEY): {error}"
        ) from None
    if len(text) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"the key file {path} is damaged (empty or too short): restore it from the backup "
            "made with the database, or see README › The secret key"
        )
    if mode & 0o077:
        log.warning(
            "the key file %s can be read by other users (mode %o): chmod 600 it", path, mode
        )
    if created:
        log.info("created the key file %s: back it up together with the database", path)
    return SecretKey(text.encode(), str(path), created)


def _create(path: Path) -> bool:
    """Write the key to a private temporary file and link it into place: of two processes
    starting at once, one wins and the other reads the whole key, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(secrets.token_hex(32) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        _sync_directory(path.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _sync_directory(directory: Path) -> None:
    """The new name survives a power cut (where the platform lets a directory be synced)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
