"""Loading a playbook: YAML with positions, the schema, then the checks a schema cannot make.

This module owns turning playbook text into a :class:`Playbook`, or into a :class:`PlaybookInvalid` that lists
every problem at once. Each problem is a :class:`FieldError` whose ``path`` is the JSON path of the field
(``$.steps[1].retry.attempts``) and whose ``message`` reads ``file:line:column: what is wrong`` (1-based, pointing
at the key for unknown and duplicate keys and at the value otherwise; a field that is missing or has no position
of its own takes the position of the nearest enclosing one).

The checks after the schema: step ids are unique; ``needs`` name other steps of the playbook and form no cycle;
``on_failure.fallback``, ``on_failure.compensate`` and ``approval.on_timeout`` name existing steps, which are then
handlers (see :mod:`opsrail.playbooks._schema`): they have no ``needs``, no step waits for them, and their own
``on_failure`` would never be used; durations are longer than zero and ``retry.initial`` is at most ``retry.max``;
every CEL expression and ``${ }`` template compiles. YAML syntax errors and keys given twice in one mapping (which
YAML loaders silently resolve to the last) are reported with their lines too.

It also owns :func:`dependency_order`, the order of steps by their needs, which the engine reuses.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from opsrail.model import ALREADY_PUBLISHED, EVENT_TYPE_PREFIX, KINDS, FieldError, InvalidInput, json_path, kind_of
from opsrail.playbooks._expressions import Expression, ExpressionError, template_expressions
from opsrail.playbooks._schema import Playbook, Step, Trigger

Loc = tuple[str | int, ...]
Position = tuple[int, int]

_HINT = "each problem names file:line:column and the JSON path of the field; docs/playbooks.md has the reference"


class PlaybookInvalid(InvalidInput):
    """A playbook that does not validate.

    ``errors`` hold every problem found, in file order; ``extra["cycles"]`` lists the cycles among ``needs``, each
    as the step ids around it (``["a", "b", "a"]``), when there are any.
    """


# -- reporting ----------------------------------------------------------------------------------------------------


class _Report:
    """The problems found so far, located through the positions the YAML composer recorded."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.values: dict[str, Position] = {}
        self.keys: dict[str, Position] = {}
        self.problems: list[tuple[Position, FieldError]] = []
        self.cycles: list[list[str]] = []
        self.published = False
        """A version read back from a store: checks added after it was published are not applied again."""

    def add(self, loc: Loc, message: str, code: str, *, at_key: bool = False) -> None:
        line, column = self.where(loc, at_key=at_key)
        error = FieldError(json_path(loc), f"{self.filename}:{line}:{column}: {message}", code)
        self.problems.append(((line, column), error))

    def where(self, loc: Loc, *, at_key: bool = False) -> Position:
        path = json_path(loc)
        if at_key and path in self.keys:
            return self.keys[path]
        # Fields left out, defaults and values pydantic reshaped (`on_failure: continue`) have no node of their
        # own: the nearest enclosing node is where the author has to look.
        for end in range(len(loc), -1, -1):
            found = self.values.get(json_path(loc[:end]))
            if found is not None:
                return found
        return (1, 1)

    def failure(self) -> PlaybookInvalid:
        # A stable sort: problems at one position keep the order the checks found them in.
        errors = [error for _, error in sorted(self.problems, key=lambda problem: problem[0])]
        count = f"{len(errors)} problem{'' if len(errors) == 1 else 's'}"
        extra: dict[str, Any] = {"cycles": self.cycles} if self.cycles else {}
        return PlaybookInvalid(
            f"{self.filename} is not a valid playbook: {count}", hint=_HINT, errors=errors, extra=extra
        )


def _position(mark: yaml.Mark) -> Position:
    return (mark.line + 1, mark.column + 1)


# -- YAML -----------------------------------------------------------------------------------------------------------


def _read_yaml(text: str, report: _Report) -> Any:
    """The document's value; positions and duplicate keys go into ``report``. Raises on unreadable YAML."""
    loader: yaml.SafeLoader | None = None
    try:
        # The reader checks the characters when the loader is made, so that is inside the try too.
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
        if root is None:
            return None
        _record(root, (), report, active=set(), seen=set())
        if any(error.code == "yaml_recursion" for _, error in report.problems):
            # A recursive alias: constructing it would build a cyclic value that later walks never leave.
            raise report.failure()
        try:
            return loader.construct_document(root)
        except ValueError as exc:
            # PyYAML lets datetime's own ValueError out for a timestamp-shaped scalar that is no date (2026-02-30).
            node = next(_bad_timestamps(loader, root), root)
            raise _yaml_failure(report, _position(node.start_mark), f"not a valid date or time: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = _position(mark) if mark is not None else (1, 1)
        message = exc.problem or str(exc)
        if exc.context and exc.context_mark is not None:
            message = f"{message} ({exc.context} at line {exc.context_mark.line + 1})"
        raise _yaml_failure(report, position, message) from None
    except yaml.YAMLError as exc:
        # ReaderError (a control character, say) carries an offset instead of a mark.
        offset = getattr(exc, "position", 0)
        before = text[:offset]
        position = (before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)
        raise _yaml_failure(report, position, str(exc).splitlines()[0]) from None
    except RecursionError:
        # The composer and our walks recurse per level of nesting; only a hostile document gets this deep.
        raise _yaml_failure(report, (1, 1), "the document is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_failure(report: _Report, position: Position, message: str) -> PlaybookInvalid:
    line, column = position
    error = FieldError("$", f"{report.filename}:{line}:{column}: {message}", "yaml_syntax")
    return PlaybookInvalid(f"{report.filename} is not valid YAML", hint="fix the YAML syntax first", errors=[error])


def _record(node: yaml.Node, loc: Loc, report: _Report, *, active: set[int], seen: set[int]) -> None:
    """Note where every value (and every mapping key) starts, and every key given twice in one mapping."""
    report.values[json_path(loc)] = _position(node.start_mark)
    if id(node) in active:
        report.add(loc, "a recursive alias: this value contains itself", "yaml_recursion")
        return
    if id(node) in seen:
        # An alias to a node walked before: its children were recorded under the anchor's path. Walking them
        # again per alias would make `a: &a [*a, *a]`-style documents cost exponential time.
        return
    seen.add(id(node))
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, Position] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else f"<{key_node.tag}>"
            child = (*loc, key)
            if key in first:
                line = first[key][0]
                report.keys[json_path(child)] = _position(key_node.start_mark)
                report.add(
                    child,
                    f"key {key!r} is given twice in this mapping (first at line {line})",
                    "duplicate_key",
                    at_key=True,
                )
            else:
                first[key] = _position(key_node.start_mark)
                report.keys[json_path(child)] = first[key]
            _record(value_node, child, report, active=active, seen=seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*loc, index), report, active=active, seen=seen)
    active.discard(id(node))


def _bad_timestamps(loader: yaml.SafeLoader, node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:timestamp":
        try:
            loader.construct_yaml_timestamp(node)
        except ValueError:
            yield node
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            yield from _bad_timestamps(loader, key_node)
            yield from _bad_timestamps(loader, value_node)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _bad_timestamps(loader, item)


# -- the schema -----------------------------------------------------------------------------------------------------


def _schema_errors(exc: ValidationError, report: _Report) -> None:
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
            report.add(loc, _unknown_key(loc), "unknown_key", at_key=True)
        elif kind == "missing" and loc:
            report.add(loc, f"missing required key {loc[-1]!r}", kind)
        elif kind == "value_error":
            report.add(loc, error["msg"].removeprefix("Value error, "), kind)
        else:
            report.add(loc, f"{error['msg']}{_got(error.get('input'))}", kind)


def _got(value: Any) -> str:
    if isinstance(value, dict | list) or value is None:
        return ""
    shown = repr(value)
    return f", got {shown}" if len(shown) <= 60 else f", got {shown[:59]}…"


def _unknown_key(loc: Loc) -> str:
    key = str(loc[-1])
    allowed = _keys_at(loc[:-1])
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    return f"unknown key {key!r}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")


def _keys_at(loc: Loc) -> list[str]:
    """The keys the schema allows in the mapping at ``loc``, spelled as in YAML (``with``, ``then``)."""
    model: type[BaseModel] | None = Playbook
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        model = _model_in(field.annotation) if field is not None else None
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is None and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _validate_alone(value: dict[str, Any], exc: ValidationError) -> tuple[list[tuple[int, Step]], Trigger | None]:
    """When the whole playbook fails the schema, the steps and trigger that pass it without their bad fields.

    A step with a wrong ``retry`` is checked without it, so its CEL, needs and handlers are reported in the same
    pass instead of one layer at a time. A step whose problem is the step as a whole (two kinds, say) is left out.
    """
    bad: dict[Loc, set[str]] = {}
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        owner, rest = (loc[:2], loc[2:]) if loc[:1] == ("steps",) else (loc[:1], loc[1:])
        keys = bad.setdefault(owner, set())
        # An error on the object itself leaves nothing to prune: "" matches no key and marks it as lost.
        keys.add(str(rest[0]) if rest else "")

    def alone(model: type[BaseModel], raw: Any, owner: Loc) -> Any:
        if not isinstance(raw, dict) or "" in bad.get(owner, set()):
            return None
        pruned = {key: child for key, child in raw.items() if key not in bad.get(owner, set())}
        try:
            return model.model_validate(pruned)
        except ValidationError:
            return None

    raw_steps = value.get("steps")
    steps: list[tuple[int, Step]] = []
    for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        step = alone(Step, raw, ("steps", index))
        if step is not None:
            steps.append((index, step))
    trigger = alone(Trigger, value.get("trigger"), ("trigger",))
    return steps, trigger


# -- the checks a schema cannot make --------------------------------------------------------------------------------


def _check_ids(value: dict[str, Any], report: _Report) -> set[str]:
    """Report step ids given twice; return every id written, valid step or not, so needs to it are not unknown."""
    first: dict[str, int] = {}
    raw_steps = value.get("steps")
    for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        step_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(step_id, str):
            continue
        if step_id in first:
            line = report.where(("steps", first[step_id], "id"))[0]
            report.add(
                ("steps", index, "id"), f"step id {step_id!r} is used twice (first at line {line})", "duplicate_id"
            )
        else:
            first[step_id] = index
    return set(first)


_HANDLER_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("on_failure", "fallback", "fails"),
    ("on_failure", "compensate", "fails"),
    ("approval", "on_timeout", "times out"),
)


def _handler_refs(step: Step) -> Iterator[tuple[tuple[str, str], str, str]]:
    """(field, handler id, when it runs) for every handler a step names."""
    for section, name, when in _HANDLER_FIELDS:
        holder = getattr(step, section)
        target = getattr(holder, name) if holder is not None else None
        if target is not None:
            yield (section, name), target, when


def _check_steps(steps: list[tuple[int, Step]], ids: set[str], report: _Report) -> None:
    by_id = {step.id: (index, step) for index, step in steps}
    # Which step names each handler, so messages can say what a handler stands in for.
    handlers: dict[str, tuple[str, str]] = {}
    for _, step in steps:
        for _, target, when in _handler_refs(step):
            handlers.setdefault(target, (step.id, when))

    for index, step in steps:
        at: Loc = ("steps", index)
        listed: set[str] = set()
        for n, need in enumerate(step.needs):
            if need == step.id:
                report.add((*at, "needs", n), "a step cannot need itself", "cycle")
            elif need not in ids:
                report.add((*at, "needs", n), _no_step(need, ids), "unknown_step")
            elif need in listed:
                report.add((*at, "needs", n), f"{need!r} is listed twice", "duplicate_need")
            elif need in handlers:
                origin, when = handlers[need]
                report.add(
                    (*at, "needs", n),
                    f"{need!r} is a handler that runs only when {origin!r} {when}, so no step can wait for it;"
                    f" need {origin!r} instead",
                    "needs_handler",
                )
            listed.add(need)
        for field, target, _ in _handler_refs(step):
            if target == step.id:
                report.add((*at, *field), "a step cannot be its own handler", "handler_self")
            elif target not in ids:
                report.add((*at, *field), _no_step(target, ids), "unknown_step")
        if step.on_failure is not None and step.on_failure.fallback and step.on_failure.compensate:
            report.add(
                (*at, "on_failure"),
                "fallback and compensate exclude each other: a fallback lets the run go on, a compensation fails it",
                "conflict",
            )
        _check_timing(at, step, report)
        _check_expressions(at, step, report)

    for handler_id, (origin, when) in handlers.items():
        if handler_id not in by_id or handler_id == origin:
            continue
        index, handler = by_id[handler_id]
        if handler.needs:
            report.add(
                ("steps", index, "needs"),
                f"{handler_id!r} is a handler that runs only when {origin!r} {when}, so it has no needs",
                "handler_needs",
            )
        policy = handler.on_failure
        if policy is not None and (policy.fallback or policy.compensate or policy.action == "continue"):
            report.add(
                ("steps", index, "on_failure"),
                f"{handler_id!r} is a handler, and a handler that fails ends the run: its on_failure is never used",
                "handler_on_failure",
            )


def _no_step(name: str, ids: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(ids), n=1)
    return f"no step {name!r} in this playbook" + (f" (did you mean {close[0]!r}?)" if close else "")


def _check_timing(at: Loc, step: Step, report: _Report) -> None:
    durations: list[tuple[Loc, timedelta | None]] = [(("timeout",), step.timeout)]
    if step.retry is not None:
        durations += [(("retry", "initial"), step.retry.initial), (("retry", "max"), step.retry.max)]
    if step.approval is not None:
        durations.append((("approval", "timeout"), step.approval.timeout))
    if step.wait is not None:
        durations += [(("wait", "duration"), step.wait.duration), (("wait", "timeout"), step.wait.timeout)]
    if step.sla is not None:
        durations.append((("sla", "target"), step.sla.target))
    for field, duration in durations:
        if duration is not None and duration <= timedelta(0):
            report.add((*at, *field), "a duration must be longer than zero", "range")
    if step.retry is not None and timedelta(0) < step.retry.max < step.retry.initial:
        report.add((*at, "retry", "initial"), "retry.initial is longer than retry.max", "range")


def _check_expressions(at: Loc, step: Step, report: _Report) -> None:
    for field, source in (
        (("when",), step.when),
        (("done_when",), step.done_when),
        (("wait", "correlate"), step.wait.correlate if step.wait is not None else None),
    ):
        if source is not None:
            _compile(source, (*at, *field), report)
    for name, source in step.outputs.items():
        _compile(source, (*at, "outputs", name), report)
    if step.approval is not None:
        if step.approval.title:
            _check_templates(step.approval.title, (*at, "approval", "title"), report)
        for i, rule in enumerate(step.approval.rules):
            if rule.when is not None:
                _compile(rule.when, (*at, "approval", "rules", i, "when"), report)
    _check_templates(step.with_, (*at, "with"), report)
    if step.wait is not None and step.wait.event is not None:
        _check_event_type(step.wait.event, (*at, "wait", "event"), report)
    if step.call is not None:
        _check_templates(step.call.input, (*at, "call", "input"), report)
    if step.notify is not None:
        _check_templates(step.notify.message, (*at, "notify", "message"), report)


def _check_event_type(event_type: str, loc: Loc, report: _Report) -> None:
    """An event type in Opsrail's namespace must name a canonical kind: ingestion refuses any other, so a trigger or
    wait on it would never fire."""
    if report.published or not event_type.startswith(EVENT_TYPE_PREFIX) or kind_of(event_type) is not None:
        return
    kind, _, verb = event_type[len(EVENT_TYPE_PREFIX) :].partition(".")
    if not verb:
        message = f"{event_type!r} has no verb: write {EVENT_TYPE_PREFIX}<kind>.<verb>"
    else:
        close = difflib.get_close_matches(kind, list(KINDS), n=1)
        message = f"{event_type!r} names no canonical kind, so no such event is ever accepted" + (
            f" (did you mean {EVENT_TYPE_PREFIX}{close[0]}.{verb}?)" if close else f"; kinds: {', '.join(KINDS)}"
        )
    report.add(loc, message, "unknown_event_type")


def _check_trigger(trigger: Trigger, report: _Report) -> None:
    for i, event_type in enumerate(trigger.events):
        _check_event_type(event_type, ("trigger", "events", i), report)
    if trigger.when is not None:
        _compile(trigger.when, ("trigger", "when"), report)
    if trigger.input is not None:
        _check_templates(trigger.input, ("trigger", "input"), report)


def _compile(source: str, loc: Loc, report: _Report) -> None:
    try:
        Expression(source)
    except ExpressionError as exc:
        message = f"not a valid CEL expression: {exc.detail}"
        if "${" in source:
            message += " (this field is CEL already: write the expression without ${ })"
        report.add(loc, message, "cel_syntax")


def _check_templates(value: Any, loc: Loc, report: _Report) -> None:
    for string_loc, text in _strings(value, loc):
        try:
            sources = [source for _, source in template_expressions(text)]
        except ExpressionError as exc:
            report.add(string_loc, f"not a valid template: {exc.detail}", "template")
            continue
        for source in sources:
            try:
                Expression(source)
            except ExpressionError as exc:
                report.add(string_loc, f"not a valid CEL expression in ${{ }}: {exc.detail}", "cel_syntax")


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    # Walked here rather than in template_expressions so that one bad string does not hide the others.
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _strings(child, (*loc, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _strings(child, (*loc, index))


def _check_cycles(steps: list[tuple[int, Step]], report: _Report) -> None:
    """Report each cycle among needs once, at the need that closes it from the cycle's first step in the file."""
    by_id = {step.id: (index, step) for index, step in steps}
    needs = {step.id: [n for n in step.needs if n in by_id and n != step.id] for _, step in steps}
    seen_cycles: set[frozenset[str]] = set()
    for cycle in _cycles(needs):
        if frozenset(cycle) in seen_cycles:
            continue
        seen_cycles.add(frozenset(cycle))
        # Rotate so the cycle reads from its step that comes first in the file: a stable, findable report.
        start = min(range(len(cycle) - 1), key=lambda i: by_id[cycle[i]][0])
        ring = cycle[start:-1] + cycle[:start]
        ring.append(ring[0])
        report.cycles.append(ring)
        index, first = by_id[ring[0]]
        loc: Loc = ("steps", index, "needs", first.needs.index(ring[1]))
        report.add(loc, f"the needs form a cycle: {' -> '.join(ring)}", "cycle")


def _cycles(needs: dict[str, list[str]]) -> Iterator[list[str]]:
    """Cycles found as back edges of a depth-first search; iterative, so long chains do not hit recursion limits."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in needs:
        if root in state:
            continue
        path: list[str] = [root]
        pending: list[Iterator[str]] = [iter(needs[root])]
        state[root] = 1
        while pending:
            following = next(pending[-1], None)
            if following is None:
                state[path.pop()] = 2
                pending.pop()
            elif state.get(following) == 1:
                yield [*path[path.index(following) :], following]
            elif following not in state:
                state[following] = 1
                path.append(following)
                pending.append(iter(needs[following]))


# -- public face ----------------------------------------------------------------------------------------------------


def load_playbook(text: str, filename: str = "<playbook>", *, published: bool = False) -> Playbook:
    """Parse and validate playbook YAML; raise :class:`PlaybookInvalid` listing every problem found. ``published``:
    the text is a version read back from a store, accepted when it was published (its roles are not checked again,
    so a version published before that check still runs)."""
    report = _Report(filename)
    report.published = published
    value = _read_yaml(text, report)
    if not isinstance(value, dict):
        what = "an empty document" if value is None else f"a {type(value).__name__}"
        report.add((), f"a playbook is a mapping with id, version and steps, not {what}", "type")
        raise report.failure()
    playbook: Playbook | None = None
    try:
        playbook = Playbook.model_validate(value, context={ALREADY_PUBLISHED: True} if published else None)
    except ValidationError as exc:
        _schema_errors(exc, report)
        steps, trigger = _validate_alone(value, exc)
    else:
        steps, trigger = list(enumerate(playbook.steps)), playbook.trigger
    ids = _check_ids(value, report)
    _check_steps(steps, ids, report)
    if trigger is not None:
        _check_trigger(trigger, report)
    _check_cycles(steps, report)
    if report.problems or playbook is None:
        raise report.failure()
    return playbook


def validate_file(path: Path) -> Playbook:
    """Read and validate a playbook file; an unreadable file is an :class:`InvalidInput` with a hint."""
    hint = "give the path of a playbook YAML file"
    try:
        # utf-8-sig: editors on Windows write a byte-order mark that is no part of the document.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput(f"no file {path}", hint=hint) from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory", hint=hint) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}", hint=hint) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start})", hint="save the playbook as UTF-8") from None
    return load_playbook(text, str(path))


def dependency_order(playbook: Playbook) -> list[str]:
    """Step ids so that every step comes after the steps it needs; among steps free to go, file order.

    Handlers, which have no needs, take their place in file order like any step without needs. Raises
    :class:`PlaybookInvalid` for needs that name no step or form a cycle, which a validated playbook never has.
    """
    index_of = {step.id: index for index, step in enumerate(playbook.steps)}
    if len(index_of) < len(playbook.steps):
        raise PlaybookInvalid(f"{playbook.id} uses a step id twice")
    waiting_on = {step.id: len(set(step.needs)) for step in playbook.steps}
    needed_by: dict[str, list[str]] = {step.id: [] for step in playbook.steps}
    for step in playbook.steps:
        for need in set(step.needs):
            if need not in needed_by:
                raise PlaybookInvalid(f"step {step.id!r} of {playbook.id} needs {need!r}, which is not a step")
            needed_by[need].append(step.id)
    ready = [index_of[step_id] for step_id, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        step_id = playbook.steps[heapq.heappop(ready)].id
        order.append(step_id)
        for dependent in needed_by[step_id]:
            waiting_on[dependent] -= 1
            if waiting_on[dependent] == 0:
                heapq.heappush(ready, index_of[dependent])
    if len(order) < len(playbook.steps):
        placed = set(order)
        stuck = [step.id for step in playbook.steps if step.id not in placed]
        raise PlaybookInvalid(f"the needs of {playbook.id} form a cycle among {', '.join(stuck)}")
    return order
