"""Rendering a step's templates against only the part of the run they name.

CEL converts the whole context it is given into its own values on every evaluation, and that conversion costs
far more than evaluating a template such as ``${ run.input.id }``: with the outputs of a few steps in the context,
about 100 µs a template instead of 25. A template can only reach what it names, so each value is rendered with a
context holding the names its templates mention, and of ``steps`` only the steps they name as ``steps.<id>``
(all of them if ``steps`` appears any other way). A name is looked for as a whole word in the template's text,
strings included, so the context is never smaller than what the expression can reach; the result is the same as
rendering against the full context.

The commonest template is a plain path (``${ run.input.account_id }``, ``${ steps.classify.output.team }``)
whose value is a string, a number, a boolean or null. Such a path is looked up in the run's state directly,
which gives what CEL gives (map keys by name, those scalars unchanged); anything else (a missing key, a map or list
value, any operator or function) goes to CEL, so its values and its errors stay CEL's.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from opsrail.engine._state import RunState
from opsrail.playbooks import ExpressionError, render, template_expressions

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP = re.compile(r"\bsteps\b(\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))?")

ALL = None
"""Of ``steps``: every step."""
_EVERYTHING: tuple[frozenset[str], frozenset[str] | None] = (frozenset({"run", "steps", "event", "result"}), ALL)
_EMPTY: dict[str, Any] = {"run": {}, "steps": {}, "event": {}, "result": {}}


@lru_cache(maxsize=4096)
def _mentions(source: str) -> tuple[frozenset[str], frozenset[str] | None]:
    """The top-level names a template's text mentions, and the steps it names (``ALL`` when not only by id)."""
    names = frozenset(_WORD.findall(source)) & {"run", "steps", "event", "result"}
    if "steps" not in names:
        return names, frozenset()
    ids: set[str] = set()
    for found in _STEP.finditer(source):
        if found.group(2) is None:
            return names, ALL
        ids.add(found.group(2))
    return names, frozenset(ids)


@lru_cache(maxsize=4096)
def _scope_of_text(text: str) -> tuple[frozenset[str], frozenset[str] | None]:
    names: set[str] = set()
    steps: set[str] | None = set()
    try:
        sources = template_expressions(text)
    except ExpressionError:  # a malformed template: render reports it, with the whole view at hand
        return _EVERYTHING
    for _, source in sources:
        found, ids = _mentions(source)
        names |= found
        steps = None if steps is None or ids is None else steps | ids
    return frozenset(names), None if steps is None else frozenset(steps)


def _scope(value: Any) -> tuple[frozenset[str], frozenset[str] | None]:
    if isinstance(value, str):
        return _scope_of_text(value) if "${" in value else (frozenset(), frozenset())
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    names: frozenset[str] = frozenset()
    steps: frozenset[str] | None = frozenset()
    for child in children:
        found, ids = _scope(child)
        names |= found
        steps = None if steps is None or ids is None else steps | ids
    return names, steps


def render_scoped(value: Any, run: RunState) -> Any:
    """``render(value, context)`` over the run's view, each top-level entry of a dict with its own narrow context."""
    if isinstance(value, dict):
        return {key: render_scoped(child, run) for key, child in value.items()}
    if isinstance(value, str) and "${" in value:
        plan = _paths_only(value)
        if plan is not None:
            found = _looked_up(plan, run)
            if found is not _MISSING:
                return found
    names, steps = _scope(value)
    return render(value, _context(run, names, steps) if names else _EMPTY)


def _context(run: RunState, names: frozenset[str], steps: frozenset[str] | None) -> dict[str, Any]:
    context: dict[str, Any] = {"run": {}, "steps": {}, "event": {}, "result": {}}
    if "run" in names:
        context["run"] = {"id": run.id, "input": run.input, "playbook": run.playbook_id, "version": run.version}
    if "steps" in names:
        chosen = run.steps.values() if steps is None else (run.steps[i] for i in steps if i in run.steps)
        context["steps"] = {
            s.id: {"status": s.status, "output": s.output, "error": s.error, "attempt": s.attempt} for s in chosen
        }
    return context


# -- plain paths ---------------------------------------------------------------------------------------------------

_PATH_TEMPLATE = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*\}")
_RESERVED = frozenset(
    [
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
        "true",
        "false",
        "null",
    ]
)
_INT64 = (-(2**63), 2**63 - 1)
_MISSING = object()

Plan = tuple[bool, tuple[str | tuple[str, ...], ...]]
"""(the string is exactly one template, so its value keeps its type; literal text and paths in order)."""


@lru_cache(maxsize=4096)
def _paths_only(text: str) -> Plan | None:
    """How to render ``text`` by lookups, when each of its templates is a plain path from a top-level name."""
    parts: list[str | tuple[str, ...]] = []
    position = 0
    for found in _PATH_TEMPLATE.finditer(text):
        path = tuple(found.group(1).split("."))
        if path[0] not in ("run", "steps", "event", "result") or _RESERVED.intersection(path):
            return None
        if found.start() > position:
            parts.append(text[position : found.start()])
        parts.append(path)
        position = found.end()
    if position < len(text):
        parts.append(text[position:])
    paths = [part for part in parts if isinstance(part, tuple)]
    if not paths or sum(isinstance(part, str) and "${" in part for part in parts):
        return None  # some template is not a plain path
    typed = len(paths) == 1 and all(isinstance(part, tuple) or not part.strip() for part in parts)
    return typed, tuple(parts)


def _looked_up(plan: Plan, run: RunState) -> Any:
    typed, parts = plan
    values = []
    for part in parts:
        if isinstance(part, str):
            continue
        value = _lookup(part, run)
        if value is _MISSING:
            return _MISSING
        values.append(value)
    if typed:
        return values[0]
    given = iter(values)
    return "".join(part if isinstance(part, str) else _as_text(next(given)) for part in parts)


def _lookup(path: tuple[str, ...], run: RunState) -> Any:
    head, *rest = path
    value: Any
    if head == "run":
        value = {"id": run.id, "input": run.input, "playbook": run.playbook_id, "version": run.version}
    elif head == "steps" and rest and rest[0] in run.steps:
        s = run.steps[rest[0]]
        value, rest = {"status": s.status, "output": s.output, "error": s.error, "attempt": s.attempt}, rest[1:]
    else:
        return _MISSING
    for key in rest:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return value
    return _MISSING


def _as_text(value: Any) -> str:
    """A scalar as it reads inside a string, spelled as ``render`` spells it (JSON for null and booleans)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
