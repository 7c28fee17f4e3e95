"""Build aiogram's Bot API types when first used, not all ~400 of them at import.

aiogram declares its types with pydantic's `defer_build`, then undoes it: the end of
`aiogram/types/__init__.py` calls `model_rebuild(_types_namespace=...)` on every type to
resolve their forward references, and each built type holds a validator and serializer
with copies of the nested types' schemas. That is 107 of the 165 MB that `import aiogram`
costs (aiogram issue #1513; pydantic 2.13; 2.14, which is leaner, is excluded by aiogram),
while a bot uses a few dozen types. Neither library offers a switch for it, so this
keeps the namespace that aiogram hands over and builds each type with it on first use:
pydantic calls `model_rebuild` itself when a deferred model is first validated or dumped.
Typing and behaviour are unchanged; the whole test suite runs with it.

It must be installed before aiogram is imported, and only by the process that runs the bot:
`carebot` (bot/cli.py main) and the test suite (tests/__init__.py) do that; `import bot` does not
(a library must not patch pydantic for its host: tests/unit/test_lazy_types.py pins it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

_AIOGRAM_TYPES = "aiogram.types."
_AIOGRAM = "aiogram."  # its methods refer to the types by the same names
_rebuild = BaseModel.model_rebuild.__func__  # type: ignore[attr-defined]
_namespace: dict[str, Any] = {}
# aiogram validates every answer as `Response[method.__returning__]`, a generic parametrized on the
# spot, which pydantic caches only weakly: once the garbage collector took it (every second or two
# in a busy bot), the next answer built its validator again, 60-270 ms each time. Kept here, each is
# built once (a few dozen: one per type of answer).
_kept: set[type[BaseModel]] = set()


def _model_rebuild(
    cls: type[BaseModel],
    *,
    force: bool = False,
    raise_errors: bool = True,
    _parent_namespace_depth: int = 2,
    _types_namespace: Mapping[str, Any] | None = None,
) -> bool | None:
    if not cls.__module__.startswith(_AIOGRAM):
        return _rebuild(
            cls,
            force=force,
            raise_errors=raise_errors,  # type: ignore[no-any-return]
            _parent_namespace_depth=_parent_namespace_depth + 1,
            _types_namespace=_types_namespace,
        )
    if _types_namespace is not None and not force and cls.__module__.startswith(_AIOGRAM_TYPES):
        _namespace.update(_types_namespace)  # aiogram's import-time loop: keep it for later
        return None
    built = _rebuild(
        cls,
        force=force,
        raise_errors=raise_errors,
        _parent_namespace_depth=_parent_namespace_depth + 1,
        _types_namespace=_types_namespace if _types_namespace is not None else _namespace,
    )
    if cls.__pydantic_generic_metadata__["origin"] is not None:
        _kept.add(cls)
    return built  # type: ignore[no-any-return]


def install() -> None:
    if BaseModel.model_rebuild.__func__ is not _model_rebuild:  # type: ignore[attr-defined]
        BaseModel.model_rebuild = classmethod(_model_rebuild)  # type: ignore[method-assign,assignment]
