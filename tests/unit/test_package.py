"""What the package ships and where the bot looks for its files: templates, the example business
file and migrations through importlib.resources; the database, the business file and the owner's
templates in the folder the bot runs in. (The wheel itself: .ci/run and tests/e2e/test_installed.py.)"""

from __future__ import annotations

import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.business import bundled_example, load_business
from bot.db.engine import resolve_url
from bot.rendering import Renderer
from bot.settings import ConfigError, load_settings
from tests import PROJECT_ROOT

TOKEN = "123456:TEST-token-for-carebot-end-to-end"


def test_pyproject_lists_every_package() -> None:
    """The package list is explicit (templates/ and data/ are mapped into bot/): a new package must be in it."""
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(folder.relative_to(PROJECT_ROOT).parts)
        for top in ("bot", "handlers")
        for folder in [PROJECT_ROOT / top, *(PROJECT_ROOT / top).rglob("*")]
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py"))
    }
    assert set(config["packages"]) == found | {"bot.templates", "bot.data"}
    assert config["package-dir"] == {"bot.templates": "templates", "bot.data": "data"}


@pytest.fixture
def empty_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("BUSINESS_FILE", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_no_business_file_here_runs_the_bundled_example(empty_folder: Path) -> None:
    settings = load_settings(bot_token=TOKEN)
    assert settings.business_file == bundled_example()
    assert (
        load_business(settings.business_file).name
        == load_business(PROJECT_ROOT / "data" / "business.toml").name
    )


def test_a_business_file_here_wins_and_a_named_one_must_exist(
    empty_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (empty_folder / "data").mkdir()
    (empty_folder / "data" / "business.toml").write_text("name = 'x'")
    assert load_settings(bot_token=TOKEN).business_file == Path("data/business.toml")
    monkeypatch.setenv("BUSINESS_FILE", "elsewhere.toml")
    settings = load_settings(bot_token=TOKEN)
    assert settings.business_file == Path(
        "elsewhere.toml"
    )  # named, so never replaced by the example
    with pytest.raises(ConfigError, match="business file elsewhere.toml not found"):
        load_business(settings.business_file)


def test_the_database_is_made_under_data_of_the_folder_it_runs_in(empty_folder: Path) -> None:
    url = resolve_url(load_settings(bot_token=TOKEN).database_url)
    assert url == f"sqlite+aiosqlite:///{empty_folder}/data/carebot.sqlite3"
    assert (empty_folder / "data").is_dir()


def test_owner_templates_under_data_templates_of_the_folder_win(empty_folder: Path) -> None:
    (empty_folder / "data" / "templates" / "ru").mkdir(parents=True)
    (empty_folder / "data" / "templates" / "ru" / "forget_cancelled.html").write_text(
        "Свой текст владельца"
    )
    render = Renderer(ZoneInfo("Europe/Moscow"))
    assert render.text("ru", "forget_cancelled") == "Свой текст владельца"
    assert render.text("en", "forget_cancelled") == "All right, nothing is erased 🙂"  # bundled
