"""CEL expressions and ``${ }`` templates: the only way text in a playbook is ever evaluated.

This module owns compiling an expression (once per source text), evaluating it with errors a playbook author can
act on, rendering the templates inside step values, and the names an expression sees (``event``, ``run``,
``steps``, ``result``). CEL is side-effect free, terminates, and sees only the context it is given, which is why
playbooks use it (docs/adr/0002-cel-for-expressions.md); user text never reaches ``eval`` or ``exec``.

A template is ``${ expr }`` inside a string value. A string that is exactly one template (whitespace around it
allowed) renders to the expression's typed value; a string with text around its templates renders to a string.
The end of a template is the ``}`` that closes it, so maps and strings inside it (``${ {"a": "}"}.a }``) work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import orjson

from opsrail.model import InvalidInput, json_path
from opsrail.playbooks._cel import compile_cel

_SHOWN_SOURCE = 80
"""Longest expression quoted in full in a message; the whole text is in ``extra["expression"]``."""


class ExpressionError(InvalidInput):
    """An expression or template that does not compile, or fails or gives the wrong type when evaluated.

    An :class:`~opsrail.model.InvalidInput`: the expression is author-written input, and the engine turns the error
    into a failed step rather than a crash. ``detail`` reads ``<expression>: <what went wrong>``; ``extra`` holds
    ``expression`` (the full source) and, for syntax errors, ``line`` and ``column`` inside it.
    """

    @classmethod
    def about(cls, source: str, message: str, hint: str | None = None, **extra: Any) -> ExpressionError:
        shown = source if len(source) <= _SHOWN_SOURCE else source[: _SHOWN_SOURCE - 1] + "…"
        return cls(f"{shown}: {message}", hint=hint, extra={"expression": source, **extra})

    @property
    def expression(self) -> str:
        return str(self.extra.get("expression", ""))


# The binding reports syntax errors as "Failed to parse expression '...': ERROR: <input>:1:5: Syntax error: ..."
# followed by a caret picture; only the first located line is worth showing.
_SYNTAX = re.compile(r"<input>:(\d+):(\d+): (?:Syntax error: )?(.*)")
_LONG_EXPECTING = re.compile(r" expecting \{[^}]*,[^}]*,[^}]*,[^}]*,[^}]*\}")


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    # lru_cache keeps only successes: a bad expression is compiled (and rejected) again each time, which is rare.
    if not source.strip():
        raise ExpressionError.about(source, "empty expression")
    try:
        return compile_cel(source)
    except ValueError as exc:
        text = str(exc)
        found = _SYNTAX.search(text)
        if found is None:
            raise ExpressionError.about(source, f"syntax error: {text.splitlines()[0]}") from None
        line, column, problem = int(found.group(1)), int(found.group(2)), found.group(3)
        # The list of tokens the parser would have accepted is noise to a playbook author once it is long.
        problem = _LONG_EXPECTING.sub("", problem)
        where = f"column {column}" if "\n" not in source else f"line {line}, column {column}"
        raise ExpressionError.about(source, f"syntax error at {where}: {problem}", line=line, column=column) from None


class Expression:
    """A compiled CEL expression; construct one per use freely, compilation is cached by source text."""

    __slots__ = ("_program", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._program = _compiled(source)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The expression's value over ``context`` (see :func:`context_for`); raises :class:`ExpressionError`."""
        try:
            return self._program.execute(dict(context))
        except KeyError as exc:
            # CEL reports a missing map key, or a missing field in a select chain, with the key alone.
            key = exc.args[0] if exc.args else "?"
            raise ExpressionError.about(
                self.source, f"no key {key!r}", hint="test for it first with has(), e.g. has(event.data.severity)"
            ) from None
        except Exception as exc:
            # The binding is foreign code that raises RuntimeError, TypeError, ValueError, IndexError or
            # ZeroDivisionError by case; every one of them means this expression failed on this context, and the
            # engine must see one error type it can turn into a failed step.
            first, _, rest = str(exc).partition(". ")
            raise ExpressionError.about(self.source, first.rstrip("."), hint=rest.strip() or None) from None

    def evaluate_bool(self, context: Mapping[str, Any]) -> bool:
        """Like :meth:`evaluate`, for guards and filters: anything but ``true`` or ``false`` is an error."""
        value = self.evaluate(context)
        if not isinstance(value, bool):
            raise ExpressionError.about(
                self.source,
                f"expected true or false, got {type(value).__name__} {_shown(value)}",
                hint="compare the value, e.g. x == 1 or size(x) > 0",
            )
        return value


def context_for(
    event: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
    steps: Mapping[str, Any] | None = None,
    result: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The names a playbook expression sees.

    An absent name is bound to an empty map rather than left out, so ``has(result.total)`` is false instead of an
    "undefined variable" error, and the same expression can be checked before and after a step has a result.
    """
    return {
        "event": {} if event is None else dict(event),
        "run": {} if run is None else dict(run),
        "steps": {} if steps is None else dict(steps),
        "result": {} if result is None else dict(result),
    }


# -- templates -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Template:
    source: str


_Part = str | _Template


@lru_cache(maxsize=4096)
def _parts(text: str) -> tuple[_Part, ...]:
    """Split a string into literal text and templates; cached, as the engine renders the same strings per run."""
    parts: list[_Part] = []
    position = 0
    while (start := text.find("${", position)) != -1:
        end = _closing_brace(text, start + 2)
        if end == -1:
            raise ExpressionError.about(
                text, "unterminated template: `${` has no closing `}`", hint="write templates as ${ expression }"
            )
        if start > position:
            parts.append(text[position:start])
        source = text[start + 2 : end].strip()
        if not source:
            raise ExpressionError.about(text, "empty template `${ }`", hint="write templates as ${ expression }")
        parts.append(_Template(source))
        position = end + 1
    if position < len(text):
        parts.append(text[position:])
    return tuple(parts)


def _closing_brace(text: str, index: int) -> int:
    """Index of the ``}`` that ends a template opened just before ``index``, or -1; skips nesting and strings."""
    depth = 0
    quote = ""
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "{[(":
            depth += 1
        elif char in ")]}":
            # An unbalanced closer inside (`${ a) }`) must not hide the template's end: compiling reports it.
            if char == "}" and depth <= 0:
                return index
            depth -= 1
        index += 1
    return -1


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate the templates in a value: dicts and lists are walked, strings rendered, anything else kept.

    ``"${ run.input.severity }"`` renders to the typed value (an int here); ``"Sev ${ run.input.severity }"`` to a
    string, each value converted as :func:`_text` says. Dict keys are never rendered.
    """
    if isinstance(value, str):
        if "${" not in value:
            return value
        parts = _parts(value)
        templates = [part for part in parts if isinstance(part, _Template)]
        if len(templates) == 1 and all(isinstance(p, _Template) or not p.strip() for p in parts):
            return Expression(templates[0].source).evaluate(context)
        return "".join(
            part if isinstance(part, str) else _text(Expression(part.source).evaluate(context)) for part in parts
        )
    if isinstance(value, dict):
        return {key: render(child, context) for key, child in value.items()}
    if isinstance(value, list):
        return [render(child, context) for child in value]
    return value


def _text(value: Any) -> str:
    """A value as it reads inside a string: JSON spellings for null, booleans, maps and lists; str() otherwise."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | dict | list):
        # default=str covers what JSON lacks (durations, bytes); NON_STR_KEYS allows CEL's int-keyed maps.
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _shown(value: Any) -> str:
    text = _text(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOWN_SOURCE else text[: _SHOWN_SOURCE - 1] + "…"


def template_expressions(value: Any, path: str = "$") -> list[tuple[str, str]]:
    """Every ``${ }`` expression inside a value, as (JSON path of the string, expression source), for validation.

    Paths extend ``path`` the way :func:`opsrail.model.json_path` writes them (``$.with.summary``,
    ``$.with['dashed-key']``, ``$.to[0]``). A malformed template (``${`` never closed, or empty) raises
    :class:`ExpressionError` with ``extra["path"]``; to report every one, call this per string.
    """
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        if "${" in value:
            try:
                parts = _parts(value)
            except ExpressionError as exc:
                exc.extra["path"] = path
                raise
            found.extend((path, part.source) for part in parts if isinstance(part, _Template))
    elif isinstance(value, dict):
        for key, child in value.items():
            found.extend(template_expressions(child, json_path((str(key),), path)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(template_expressions(child, json_path((index,), path)))
    return found
