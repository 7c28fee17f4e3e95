"""The core (`bot/`) knows no Telegram: no module of it imports aiogram or the edge (`handlers/`),
except the composition root and the process entry point (issue 15)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "bot"
EDGE = ("aiogram", "handlers")
# Every exception, with its reason. Nothing else in bot/ may import aiogram or handlers.
ALLOWED = {
    "app.py": "the composition root: wires the core to aiogram's Bot, Dispatcher and the handlers",
    "cli.py": "the process entry point: names aiogram's network and token errors at start-up",
}


def edge_imports(path: Path, root: Path = CORE.parent) -> list[str]:
    """`file:line module` of every import of aiogram or handlers in a module, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(root)}:{node.lineno} {name}"
            for name in names
            if name.split(".")[0] in EDGE
        ]
    return sorted(found)


def core_modules() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if p.relative_to(CORE).as_posix() not in ALLOWED)


def test_the_core_imports_neither_aiogram_nor_handlers() -> None:
    offenders = [line for path in core_modules() for line in edge_imports(path)]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_every_exception_exists(name: str) -> None:
    assert (CORE / name).is_file()


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from aiogram.types import Message\nimport handlers.care, bottle\n"
    )
    assert edge_imports(module, tmp_path) == ["m.py:2 aiogram.types", "m.py:3 handlers.care"]
