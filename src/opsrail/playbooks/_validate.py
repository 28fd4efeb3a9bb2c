"""Loading a playbook file: YAML with line numbers, schema validation, then the checks a schema cannot make.

Every problem is reported at once, each as ``file:line:column: message`` with the JSON path of the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from opsrail.model import FieldError, InvalidInput, json_path
from opsrail.playbooks._expressions import ExpressionError, _compiled, template_expressions
from opsrail.playbooks._schema import Playbook

Position = tuple[int, int]


class PlaybookInvalid(InvalidInput):
    """A playbook file that does not validate; ``errors`` name file, line, column and field."""


def _positions(node: yaml.Node, path: str, found: dict[str, Position], duplicates: list[tuple[str, Position]]) -> None:
    found[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"
            if key in seen:
                duplicates.append((child, (key_node.start_mark.line + 1, key_node.start_mark.column + 1)))
            seen.add(key)
            _positions(value_node, child, found, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _positions(item, f"{path}[{index}]", found, duplicates)


class _Report:
    def __init__(self, filename: str, positions: dict[str, Position]) -> None:
        self.filename = filename
        self.positions = positions
        self.errors: list[FieldError] = []

    def add(self, path: str, message: str, code: str = "invalid") -> None:
        line, column = self._where(path)
        self.errors.append(FieldError(path, f"{self.filename}:{line}:{column}: {message}", code))

    def _where(self, path: str) -> Position:
        probe = path
        while probe:
            if probe in self.positions:
                return self.positions[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return (1, 1)


def load_playbook(text: str, filename: str = "<playbook>") -> Playbook:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlaybookInvalid(
            f"{filename} is not valid YAML", errors=[FieldError("$", f"{where}: {problem}", "yaml")]
        ) from None
    positions: dict[str, Position] = {}
    duplicates: list[tuple[str, Position]] = []
    if root is not None:
        _positions(root, "$", positions, duplicates)
    report = _Report(filename, positions)
    for path, _ in duplicates:
        report.add(path, "this key is given twice", "duplicate_key")
    if not isinstance(value, dict):
        report.add("$", "a playbook is a mapping with id, version and steps", "type")
        raise PlaybookInvalid(f"{filename} is not a valid playbook", errors=report.errors)
    try:
        playbook = Playbook.model_validate(value)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            report.add(json_path(tuple(error["loc"])), error["msg"], error["type"])
        raise PlaybookInvalid(f"{filename} is not a valid playbook", errors=report.errors) from None
    _check(playbook, value, report)
    if report.errors:
        raise PlaybookInvalid(f"{filename} is not a valid playbook", errors=report.errors)
    return playbook


def _check(playbook: Playbook, raw: dict[str, Any], report: _Report) -> None:
    index = {step.id: i for i, step in enumerate(playbook.steps)}
    seen: set[str] = set()
    for i, step in enumerate(playbook.steps):
        at = f"$.steps[{i}]"
        if step.id in seen:
            report.add(f"{at}.id", f"step id {step.id!r} is used twice", "duplicate_id")
        seen.add(step.id)
        for n, need in enumerate(step.needs):
            if need == step.id:
                report.add(f"{at}.needs[{n}]", "a step cannot need itself", "cycle")
            elif need not in index:
                report.add(f"{at}.needs[{n}]", f"no step {need!r} in this playbook", "unknown_step")
        targets = []
        if step.on_failure is not None:
            targets += [
                ("on_failure.fallback", step.on_failure.fallback),
                ("on_failure.compensate", step.on_failure.compensate),
            ]
        if step.approval is not None:
            targets.append(("approval.on_timeout", step.approval.on_timeout))
        for field, target in targets:
            if target is None:
                continue
            if target not in index:
                report.add(f"{at}.{field}", f"no step {target!r} in this playbook", "unknown_step")
            elif playbook.steps[index[target]].needs:
                report.add(
                    f"$.steps[{index[target]}].needs",
                    f"{target!r} handles failures, so it has no needs",
                    "handler_needs",
                )
        if step.retry is not None and step.retry.initial > step.retry.max:
            report.add(f"{at}.retry.initial", "initial is longer than max", "range")
        for path, source in _expressions(step, at, raw["steps"][i] if isinstance(raw.get("steps"), list) else {}):
            try:
                _compiled(source)
            except ExpressionError as exc:
                report.add(path, exc.detail, "cel")
    if playbook.trigger is not None:
        for path, source in _trigger_expressions(playbook, raw):
            try:
                _compiled(source)
            except ExpressionError as exc:
                report.add(path, exc.detail, "cel")
    cycle = _find_cycle(playbook)
    if cycle:
        report.add(f"$.steps[{index[cycle[0]]}].needs", f"the needs form a cycle: {' -> '.join(cycle)}", "cycle")


def _expressions(step: Any, at: str, raw_step: Any) -> Iterator[tuple[str, str]]:
    for field in ("when", "done_when"):
        if getattr(step, field):
            yield f"{at}.{field}", getattr(step, field)
    if step.wait is not None and step.wait.correlate:
        yield f"{at}.wait.correlate", step.wait.correlate
    for name, source in step.outputs.items():
        yield f"{at}.outputs.{name}", source
    yield from template_expressions(step.with_, f"{at}.with")
    if step.call is not None:
        yield from template_expressions(step.call.input, f"{at}.call.input")
    if step.notify is not None:
        yield from template_expressions(step.notify.message, f"{at}.notify.message")


def _trigger_expressions(playbook: Playbook, raw: dict[str, Any]) -> Iterator[tuple[str, str]]:
    trigger = playbook.trigger
    assert trigger is not None
    if trigger.when:
        yield "$.trigger.when", trigger.when
    if trigger.input:
        yield from template_expressions(trigger.input, "$.trigger.input")


def _find_cycle(playbook: Playbook) -> list[str]:
    needs = {s.id: [n for n in s.needs if n != s.id] for s in playbook.steps}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for need in needs.get(node, []):
            if need not in needs:
                continue
            if state.get(need) == 1:
                return [*stack[stack.index(need) :], need]
            if need not in state:
                found = visit(need)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for step_id in needs:
        if step_id not in state:
            found = visit(step_id)
            if found:
                return found
    return []


def dependency_order(playbook: Playbook) -> list[str]:
    """Step ids so that every step comes after the steps it needs."""
    order: list[str] = []
    placed: set[str] = set()
    remaining = list(playbook.steps)
    while remaining:
        ready = [s for s in remaining if all(n in placed for n in s.needs)]
        if not ready:
            raise PlaybookInvalid(f"playbook {playbook.id} has a cycle")
        for step in ready:
            order.append(step.id)
            placed.add(step.id)
        remaining = [s for s in remaining if s.id not in placed]
    return order


def validate_file(path: Path) -> Playbook:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {path}: {exc.strerror}", hint="give the path of a playbook YAML file"
        ) from None
    return load_playbook(text, str(path))
