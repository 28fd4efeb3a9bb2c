"""CEL expressions and ``${ }`` templates for playbooks. CEL is sandboxed; user text never reaches eval/exec."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import cel
import orjson

from opsrail.model import InvalidInput

_TEMPLATE = re.compile(r"\$\{\s*(.*?)\s*\}")
_WHOLE = re.compile(r"^\s*\$\{\s*(.*?)\s*\}\s*$", re.DOTALL)


class ExpressionError(InvalidInput):
    """An expression that does not compile, or fails or gives the wrong type when evaluated."""


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    try:
        return cel.compile(source)
    except ValueError as exc:
        raise ExpressionError(f"CEL syntax error in {source!r}: {str(exc).splitlines()[0]}") from None


class Expression:
    __slots__ = ("_program", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._program = _compiled(source)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            return self._program.execute(dict(context))
        except KeyError as exc:
            raise ExpressionError(f"{self.source}: no key {exc.args[0]!r}") from None
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ExpressionError(f"{self.source}: {str(exc).splitlines()[0]}") from None

    def evaluate_bool(self, context: Mapping[str, Any]) -> bool:
        value = self.evaluate(context)
        if not isinstance(value, bool):
            raise ExpressionError(f"{self.source}: expected true or false, got {value!r}")
        return value


def context_for(event: Any = None, run: Any = None, steps: Any = None, result: Any = None) -> dict[str, Any]:
    """The names a playbook expression sees; absent ones are empty maps, so ``has(...)`` works."""
    return {"event": event or {}, "run": run or {}, "steps": steps or {}, "result": result or {}}


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate the templates in a value: a string that is one template becomes the expression's value."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        whole = _WHOLE.match(value)
        if whole and "${" not in whole.group(1):
            return Expression(whole.group(1)).evaluate(context)
        return _TEMPLATE.sub(lambda m: _text(Expression(m.group(1)).evaluate(context)), value)
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, default=str).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def template_expressions(value: Any, path: str = "$") -> list[tuple[str, str]]:
    """Every ``${ }`` expression inside a value, with the JSON path where it stands."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        found.extend((path, m.group(1)) for m in _TEMPLATE.finditer(value))
    elif isinstance(value, dict):
        for key, child in value.items():
            found.extend(template_expressions(child, f"{path}.{key}"))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(template_expressions(child, f"{path}[{index}]"))
    return found
