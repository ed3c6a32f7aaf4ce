"""Lazy re-exports for ``og_settle/__init__.py`` (PEP 562), so a command pays only for the modules it uses.

The package's ``if TYPE_CHECKING:`` block of ``from og_settle.<module> import <names>`` statements is the one
list of where each public name lives: type checkers read it as ordinary imports, and :func:`lazy_exports`
reads the same block (with :mod:`ast`, once, on the first lookup) to import a name's module when the name is
first used. ``og-settle batch build`` then never loads eth_abi, eth_account or web3.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports"]


def _sources(init_file: str) -> dict[str, str]:
    """Each name imported in the module's ``if TYPE_CHECKING:`` block, mapped to the module it comes from."""
    import ast  # only on the first lookup: the batch tools never need it

    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"), init_file)
    table: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module is not None and statement.level == 0:
                    for alias in statement.names:
                        table[alias.asname or alias.name] = statement.module
    return table


def lazy_exports(
    package: str, init_file: str, names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each of ``names`` is imported from its module on first use
    and then kept as an ordinary attribute of the package."""
    exported = frozenset(names)
    table: dict[str, str] = {}

    def __getattr__(name: str) -> Any:
        if name not in exported:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if not table:
            table.update(_sources(init_file))
        try:
            module = table[name]
        except KeyError:
            raise AttributeError(f"{package}.{name} is in __all__ but not imported under TYPE_CHECKING") from None
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | exported)

    return __getattr__, __dir__
