"""The CEL binding's compiled core, loaded without the package's interactive shell.

``import cel`` runs the package's ``__init__``, which imports its command-line shell (prompt_toolkit, pygments,
typer) before the Rust extension ``cel.cel``: about 0.3 s of every process's start, the CLI's included. Opsrail
needs only the extension's ``compile`` (and the programs it returns), so this module loads ``cel.cel`` by itself
from the installed package and registers it under its own name, where a later ``import cel`` finds and reuses it.
When ``cel`` was imported first, its core is reused; when the extension is not a file in the package's folder (an
unusual install), it falls back to ``import cel``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["compile_cel"]


def _load() -> ModuleType:
    loaded = sys.modules.get("cel.cel")
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("cel")  # finds the package without running its __init__
    folders = list(package.submodule_search_locations or []) if package is not None else []
    for folder in folders:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"cel{suffix}"
            if not path.is_file():
                continue
            loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(path))
            spec = importlib.machinery.ModuleSpec("cel.cel", loader, origin=str(path))
            spec.has_location = True
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            sys.modules["cel.cel"] = module
            return module
    import cel

    return cel


_core = _load()


def compile_cel(source: str) -> Any:
    """Compile a CEL expression (``cel.compile``): a program with ``execute(context)`` and ``variables()``.

    Raises ``ValueError`` with the binding's message when the source does not parse.
    """
    return _core.compile(source)
