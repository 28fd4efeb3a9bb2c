"""Loading a decision table: YAML with positions, the schema, then the checks a schema cannot make.

This module owns turning table text into a :class:`DecisionTable`, or into a :class:`TableInvalid` listing every
problem at once. Problems read exactly like a playbook's (the YAML reading and the positions are shared with
:mod:`opsrail.playbooks`): a :class:`~opsrail.model.FieldError` whose ``path`` is the JSON path of the field
(``$.rules[2].when``) and whose ``message`` reads ``file:line:column: what is wrong``; its ``code`` names the check.

The checks after the schema, by code: ``reserved`` (an input named like a CEL keyword); ``type`` (a default, a
literal ``then`` value or a test value of the wrong type, a ``when`` that is not a bool, a template whose value does
not fit its output, an operation CEL rejects for the declared input types); ``cel_syntax`` and ``template``;
``unknown_input`` (a name in a ``when`` or a template that is no input); ``unknown_output``; ``duplicate_id``;
``missing_output`` (a rule that leaves an output without default unset, except under ``collect``);
``policy`` (``priority``, ``collect`` or ``aggregate`` given where the hit policy does not use them, or an
aggregation the output's type does not support); ``never_matches`` (a condition that is never true);
``unreachable`` (a rule every input of which an earlier rule takes, under ``first`` and ``priority``);
``overlap`` (two rules that both match one input under ``unique``, with that input); and, in ``tests``,
``unknown_input``, ``missing_input``, ``unknown_output`` and ``unknown_rule``.
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from opsrail.decisions._conditions import Call, Ident, Node, TypeProblem, infer_type, parse, unparse
from opsrail.decisions._coverage import Box, boxes, covered_by, literals_against, meeting_points
from opsrail.decisions._evaluate import condition_test
from opsrail.decisions._schema import CEL_RESERVED, DecisionTable, InputSpec, OutputSpec, Rule, TableTest
from opsrail.decisions._types import COERCE, SAMPLES, CoercionError, type_of
from opsrail.model import FieldError, InvalidInput
from opsrail.playbooks import Expression, ExpressionError, compile_cel, render, template_expressions
from opsrail.playbooks._validate import Loc, PlaybookInvalid, _got, _model_in, _read_yaml, _Report

_HINT = "each problem names file:line:column and the JSON path of the field; docs/decision-tables.md has the reference"
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_MACRO_TEXT = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
_ORDERED = ("int", "double", "string", "timestamp", "duration")
_SAMPLED_INPUTS = 400
"""How many generated inputs the overlap search tries beyond the simple-condition reasoning."""


class TableInvalid(InvalidInput):
    """A decision table that does not validate; ``errors`` hold every problem found, in file order."""


class _TableReport(_Report):
    def failure(self) -> TableInvalid:  # type: ignore[override]
        errors = [error for _, error in sorted(self.problems, key=lambda problem: problem[0])]
        count = f"{len(errors)} problem{'' if len(errors) == 1 else 's'}"
        return TableInvalid(f"{self.filename} is not a valid decision table: {count}", hint=_HINT, errors=errors)


def _read(text: str, report: _TableReport) -> Any:
    try:
        return _read_yaml(text, report)
    except PlaybookInvalid as exc:
        # The shared YAML reader speaks of playbooks in its summary; its located errors are the same.
        raise TableInvalid(exc.detail, hint=exc.hint, errors=exc.errors) from None


# -- the schema -----------------------------------------------------------------------------------------------------


def _schema_errors(exc: ValidationError, report: _TableReport) -> None:
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        if loc and loc[-1] == "[key]":
            report.add(loc[:-1], f"{loc[-2]!r} is not a valid name: {error['msg'].lower()}", "name", at_key=True)
        elif kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
            report.add(loc, _unknown_key(loc), "unknown_key", at_key=True)
        elif kind == "missing" and loc:
            report.add(loc, f"missing required key {loc[-1]!r}", kind)
        elif kind == "value_error":
            report.add(loc, error["msg"].removeprefix("Value error, "), kind)
        else:
            report.add(loc, f"{error['msg']}{_got(error.get('input'))}", kind)


def _unknown_key(loc: Loc) -> str:
    key = str(loc[-1])
    allowed = _keys_at(loc[:-1])
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    return f"unknown key {key!r}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")


def _keys_at(loc: Loc) -> list[str]:
    model: type[BaseModel] | None = DecisionTable
    for depth, part in enumerate(loc):
        if isinstance(part, int) or model is None:
            continue
        if depth >= 1 and loc[depth - 1] in ("inputs", "outputs") and depth == 1:
            continue  # the input or output name, a dict key
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field is not None else None
    if model is None:
        return []
    return list(model.model_fields)


@dataclass
class _Parts:
    """The pieces of a table that pass the schema on their own, so one bad field does not hide other problems."""

    hit_policy: str
    inputs: dict[str, InputSpec]
    outputs: dict[str, OutputSpec]
    rules: list[tuple[int, Rule]]
    tests: list[tuple[int, TableTest]]
    collect_given: bool
    aggregate: str

    @property
    def rules_by_index(self) -> dict[int, Rule]:
        return dict(self.rules)


def _parts(value: dict[str, Any]) -> _Parts:
    def alone(model: type[BaseModel], raw: Any) -> Any:
        try:
            return model.model_validate(raw)
        except ValidationError:
            return None

    def named(raw: Any, model: type[BaseModel]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, spec in (raw if isinstance(raw, dict) else {}).items():
            checked = alone(model, spec)
            if checked is not None and isinstance(name, str):
                found[name] = checked
        return found

    def listed(raw: Any, model: type[BaseModel]) -> list[tuple[int, Any]]:
        items = raw if isinstance(raw, list) else []
        return [(index, checked) for index, item in enumerate(items) if (checked := alone(model, item)) is not None]

    policy = value.get("hit_policy", "first")
    collect = value.get("collect")
    aggregate = collect.get("aggregate", "list") if isinstance(collect, dict) else "list"
    return _Parts(
        hit_policy=policy if policy in ("first", "unique", "priority", "collect") else "?",
        inputs=named(value.get("inputs"), InputSpec),
        outputs=named(value.get("outputs"), OutputSpec),
        rules=listed(value.get("rules"), Rule),
        tests=listed(value.get("tests"), TableTest),
        collect_given=collect is not None,
        aggregate=aggregate if isinstance(aggregate, str) else "list",
    )


# -- the checks a schema cannot make --------------------------------------------------------------------------------


class _Checker:
    def __init__(self, parts: _Parts, report: _TableReport) -> None:
        self.parts = parts
        self.report = report
        self.types = {name: spec.type for name, spec in parts.inputs.items()}
        self.samples: list[dict[str, Any]] = []
        self.conditions: dict[int, Node | None] = {}
        self.cel_ok: set[int] = set()

    def run(self) -> None:
        self.check_declarations()
        self.samples = self.sample_inputs()
        self.check_rules()
        if self.parts.hit_policy in ("first", "priority"):
            self.check_reachable()
        else:
            self.check_never_true()
            if self.parts.hit_policy == "unique":
                self.check_overlaps()
        self.check_tests()

    # declarations

    def check_declarations(self) -> None:
        parts, report = self.parts, self.report
        for name, spec in parts.inputs.items():
            if name in CEL_RESERVED:
                report.add(
                    ("inputs", name), f"{name!r} is a CEL keyword and cannot name an input", "reserved", at_key=True
                )
            if not spec.required:
                self.coerce_into(spec.type, spec.default, ("inputs", name, "default"), f"the default of {name!r}")
        for name, output in parts.outputs.items():
            if output.has_default:
                self.coerce_into(output.type, output.default, ("outputs", name, "default"), f"the default of {name!r}")
            if output.aggregate is not None and parts.hit_policy != "collect":
                report.add(("outputs", name, "aggregate"), "aggregate is used only with hit_policy collect", "policy")
        if parts.collect_given and parts.hit_policy != "collect":
            report.add(("collect",), "collect is used only with hit_policy collect", "policy")
        if parts.hit_policy == "collect":
            for name, output in parts.outputs.items():
                aggregate = output.aggregate or parts.aggregate
                if aggregate == "sum" and output.type not in ("int", "double", "duration"):
                    report.add(
                        ("outputs", name), f"sum needs an int, double or duration output, not {output.type}", "policy"
                    )
                if aggregate in ("min", "max") and output.type not in _ORDERED:
                    report.add(("outputs", name), f"{aggregate} needs values that order, not {output.type}", "policy")

    def coerce_into(self, kind: str, value: Any, loc: Loc, what: str) -> Any:
        try:
            return COERCE[kind](value)
        except CoercionError as exc:
            self.report.add(loc, f"{what} must be {_article(kind)}: {exc}", "type")
            return None

    def sample_inputs(self) -> list[dict[str, Any]]:
        """Typed inputs to evaluate expressions on: defaults first, then each type's other sample."""
        found: list[dict[str, Any]] = []
        for variant in range(2):
            sample: dict[str, Any] = {}
            for name, spec in self.parts.inputs.items():
                default_ok = not spec.required and _coerces(spec.type, spec.default)
                if variant == 0 and default_ok:
                    sample[name] = COERCE[spec.type](spec.default)
                else:
                    sample[name] = SAMPLES[spec.type][variant]
            found.append(sample)
        return found

    # rules

    def check_rules(self) -> None:
        parts, report = self.parts, self.report
        first_index: dict[str, int] = {}
        for index, rule in parts.rules:
            at: Loc = ("rules", index)
            if rule.id in first_index:
                line = report.where(("rules", first_index[rule.id], "id"))[0]
                report.add((*at, "id"), f"rule id {rule.id!r} is used twice (first at line {line})", "duplicate_id")
            else:
                first_index[rule.id] = index
            if rule.priority is not None and parts.hit_policy != "priority":
                report.add((*at, "priority"), "priority is used only with hit_policy priority", "policy")
            node = self.check_condition(rule.when, (*at, "when"))
            self.conditions[index] = node
            for name, value in rule.then.items():
                if name not in parts.outputs:
                    report.add(
                        (*at, "then", name), _unknown(name, "output", parts.outputs), "unknown_output", at_key=True
                    )
                    continue
                self.check_value(value, parts.outputs[name], (*at, "then", name))
            if parts.hit_policy != "collect":
                for name, spec in parts.outputs.items():
                    if not spec.has_default and name not in rule.then:
                        report.add(
                            (*at, "then"),
                            f"rule {rule.id!r} gives no value for output {name!r}, which has no default",
                            "missing_output",
                        )

    def check_condition(self, source: str, loc: Loc) -> Node | None:
        if not self.compiles(source, loc, "not a valid CEL expression"):
            return None
        node = parse(source)
        if not self.names_known(source, node, loc) or not self.functions_known(source, loc):
            return node
        kind: str | None = None
        if node is not None:
            try:
                kind = infer_type(node, self.types)
            except TypeProblem as exc:
                self.report.add(loc, f"type error in {source!r}: {exc}", "type")
                return node
        if kind is None:
            self.sampled_type(source, loc, want_bool=True)
        elif kind != "bool":
            self.report.add(loc, f"a condition must be true or false, but {source!r} is {_article(kind)}", "type")
        return node

    def compiles(self, source: str, loc: Loc, what: str) -> bool:
        try:
            Expression(source)
        except ExpressionError as exc:
            message = f"{what}: {exc.detail}"
            if "${" in source:
                message += " (this field is CEL already: write the expression without ${ })"
            self.report.add(loc, message, "cel_syntax")
            return False
        return True

    def functions_known(self, source: str, loc: Loc) -> bool:
        """Every declared input is in the samples, so an undefined name on them is a function CEL does not have."""
        for sample in self.samples[:1]:
            try:
                Expression(source).evaluate(sample)
            except ExpressionError as exc:
                if "Undefined variable or function" in exc.detail:
                    self.report.add(loc, f"{source!r} calls a function CEL does not have: {exc.detail}", "unknown")
                    return False
        return True

    def names_known(self, source: str, node: Node | None, loc: Loc) -> bool:
        names = set(compile_cel(source).variables())
        names -= _bound_names(source, node)
        unknown = sorted(names - set(self.parts.inputs))
        for name in unknown:
            self.report.add(loc, f"{_unknown(name, 'input', self.parts.inputs)} (in {source!r})", "unknown_input")
        return not unknown

    def sampled_type(self, source: str, loc: Loc, *, want_bool: bool) -> str | None:
        """The type of an expression's value on the sample inputs; reports operations CEL rejects."""
        kind: str | None = None
        for sample in self.samples:
            try:
                value = Expression(source).evaluate(sample)
            except ExpressionError as exc:
                if "No such overload" in exc.detail:
                    self.report.add(loc, f"type error in {source!r}: the declared input types do not fit it", "type")
                    return None
                continue  # a missing key or a division by zero: data-dependent, not a type error
            kind = type_of(value)
            if want_bool and not isinstance(value, bool):
                shown = _article(kind) if kind else "null"
                self.report.add(loc, f"a condition must be true or false, but {source!r} is {shown}", "type")
                return kind
        return kind

    def check_value(self, value: Any, spec: OutputSpec, loc: Loc) -> None:
        sources: list[str] = []
        for string_loc, text in _strings(value, loc):
            try:
                found = [source for _, source in template_expressions(text)]
            except ExpressionError as exc:
                self.report.add(string_loc, f"not a valid template: {exc.detail}", "template")
                return
            sources += found
        if not sources:
            self.coerce_into(spec.type, value, loc, "the value")
            return
        fine = True
        for source in sources:
            fine = self.compiles(source, loc, "not a valid CEL expression in ${ }") and fine
            fine = fine and self.names_known(source, parse(source), loc)
        if not fine:
            return
        for source in sources:
            node = parse(source)
            try:
                if node is not None:
                    infer_type(node, self.types)
            except TypeProblem as exc:
                self.report.add(loc, f"type error in {source!r}: {exc}", "type")
                return
        for sample in self.samples:
            try:
                rendered = render(value, sample)
            except ExpressionError as exc:
                if "No such overload" in exc.detail:
                    self.report.add(
                        loc, f"type error in {exc.expression!r}: the declared input types do not fit it", "type"
                    )
                    return
                continue
            try:
                COERCE[spec.type](rendered)
            except CoercionError as exc:
                self.report.add(loc, f"this value must be {_article(spec.type)}, but here it gives: {exc}", "type")
                return

    # reasoning over conditions

    def ordered_rules(self) -> list[tuple[int, Rule]]:
        if self.parts.hit_policy == "priority":
            return sorted(self.parts.rules, key=lambda item: (-(item[1].priority or 0), item[0]))
        return list(self.parts.rules)

    def check_reachable(self) -> None:
        earlier: list[tuple[int, list[Box]]] = []
        texts: dict[str, int] = {}
        by_index = dict(self.parts.rules)
        verb = "match" if self.parts.hit_policy == "first" else "win"
        for index, rule in self.ordered_rules():
            node = self.conditions.get(index)
            rule_boxes = boxes(node, self.types) if index in self.conditions else None
            text = unparse(node) if node is not None else " ".join(rule.when.split())
            loc: Loc = ("rules", index, "when")
            if rule_boxes == []:
                self.report_never_true(index, rule)
                continue
            blockers: list[int] | None = None
            if text in texts:
                blockers = [texts[text]]
            elif rule_boxes is not None:
                # Name one earlier rule that takes every input alone when there is one, else all that share them.
                alone = (covered_by(rule_boxes, [one], self.types) for one in earlier)
                blockers = next((found for found in alone if found), None)
                blockers = blockers or covered_by(rule_boxes, earlier, self.types)
            if blockers is not None:
                names = " and ".join(repr(by_index[b].id) for b in blockers)
                why = "has the same condition as" if text in texts else "matches only inputs already taken by"
                if len(blockers) == 1 and by_index[blockers[0]].when.strip() == "true":
                    why = "comes after"
                    names += ", whose condition is always true"
                self.report.add(loc, f"rule {rule.id!r} can never {verb}: it {why} {names}", "unreachable")
            texts.setdefault(text, index)
            if rule_boxes is not None:
                earlier.append((index, rule_boxes))

    def check_never_true(self) -> None:
        """Rules whose condition no input satisfies (whatever the hit policy, they never match)."""
        for index, rule in self.parts.rules:
            if index in self.conditions and boxes(self.conditions[index], self.types) == []:
                self.report_never_true(index, rule)

    def report_never_true(self, index: int, rule: Rule) -> None:
        self.report.add(
            ("rules", index, "when"), f"rule {rule.id!r} can never match: {rule.when!r} is never true", "never_matches"
        )

    def check_overlaps(self) -> None:
        rules = [(index, rule) for index, rule in self.parts.rules if index in self.cel_ready()]
        tests = {
            index: condition_test(rule.id, rule.when, self.conditions.get(index), self.types) for index, rule in rules
        }
        reported: set[tuple[int, int]] = set()
        by_index = self.parts.rules_by_index

        def both(a: int, b: int, inputs: dict[str, Any]) -> bool:
            try:
                return bool(tests[a](inputs)) and bool(tests[b](inputs))
            except InvalidInput:
                return False

        def report(a: int, b: int, inputs: dict[str, Any]) -> None:
            reported.add((a, b))
            rule_a, rule_b = by_index[a], by_index[b]
            shown = ", ".join(f"{name}: {value!r}" for name, value in inputs.items())
            self.report.add(
                ("rules", b, "when"),
                f"rules {rule_a.id!r} and {rule_b.id!r} both match {{{shown}}}; hit_policy unique allows one match",
                "overlap",
            )

        base = self.samples[0]
        for position, (a, _) in enumerate(rules):
            boxes_a = boxes(self.conditions.get(a), self.types)
            for b, _ in rules[position + 1 :]:
                boxes_b = boxes(self.conditions.get(b), self.types)
                if boxes_a is None or boxes_b is None:
                    continue
                for point in meeting_points(boxes_a, boxes_b, self.types):
                    inputs = {**base, **point}
                    if both(a, b, inputs):
                        report(a, b, inputs)
                        break
        for inputs in self.generated_inputs():
            matched = [index for index, _ in rules if _safe(tests[index], inputs)]
            for position, a in enumerate(matched):
                for b in matched[position + 1 :]:
                    if (a, b) not in reported:
                        report(a, b, inputs)

    def cel_ready(self) -> set[int]:
        """Rules whose condition compiled and names only inputs, so evaluating it is meaningful."""
        bad = {error.path for _, error in self.report.problems if error.code in ("cel_syntax", "unknown_input")}
        return {index for index, _ in self.parts.rules if f"$.rules[{index}].when" not in bad}

    def generated_inputs(self) -> Iterator[dict[str, Any]]:
        """Test inputs, then inputs built from the literals each input is compared with and their neighbours."""
        candidates: dict[str, list[Any]] = {name: [sample[name] for sample in self.samples] for name in self.types}
        for node in self.conditions.values():
            for name, literal in literals_against(node):
                kind = self.types.get(name)
                if kind is None:
                    continue
                near = [literal]
                if kind in ("int", "double") and isinstance(literal, int | float) and not isinstance(literal, bool):
                    step = 1 if kind == "int" else 0.5
                    near += [literal - step, literal + step]
                for value in near:
                    if _coerces(kind, value) and COERCE[kind](value) not in candidates[name]:
                        candidates[name].append(COERCE[kind](value))
        for _, test in self.parts.tests:
            inputs = dict(self.samples[0])
            for name, value in test.inputs.items():
                if name in self.types and _coerces(self.types[name], value):
                    inputs[name] = COERCE[self.types[name]](value)
            yield inputs
        chooser = random.Random(0)
        names = list(candidates)
        for _ in range(_SAMPLED_INPUTS):
            yield {name: chooser.choice(candidates[name]) for name in names}

    # tests

    def check_tests(self) -> None:
        parts, report = self.parts, self.report
        rule_ids = {rule.id for _, rule in parts.rules}
        for index, test in parts.tests:
            at: Loc = ("tests", index)
            for name, value in test.inputs.items():
                if name not in parts.inputs:
                    report.add(
                        (*at, "inputs", name), _unknown(name, "input", parts.inputs), "unknown_input", at_key=True
                    )
                else:
                    self.coerce_into(parts.inputs[name].type, value, (*at, "inputs", name), f"input {name!r}")
            for name, spec in parts.inputs.items():
                if spec.required and name not in test.inputs:
                    report.add((*at, "inputs"), f"the test gives no value for required input {name!r}", "missing_input")
            for name, value in test.expect.items():
                if name not in parts.outputs:
                    report.add(
                        (*at, "expect", name), _unknown(name, "output", parts.outputs), "unknown_output", at_key=True
                    )
                elif parts.hit_policy != "collect":
                    self.coerce_into(parts.outputs[name].type, value, (*at, "expect", name), f"output {name!r}")
            for n, rule_id in enumerate(test.expect_rules or []):
                if rule_id not in rule_ids:
                    report.add((*at, "expect_rules", n), _unknown(rule_id, "rule", rule_ids), "unknown_rule")


def _safe(test: Any, inputs: dict[str, Any]) -> bool:
    try:
        return bool(test(inputs))
    except InvalidInput:
        return False


def _bound_names(source: str, node: Node | None) -> set[str]:
    """Names a macro binds (the ``x`` in ``tags.exists(x, x == "vip")``): not inputs."""
    if node is None:
        return set(_MACRO_TEXT.findall(source))
    bound: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Call):
            if item.name in _MACROS and item.args and isinstance(item.args[0], Ident):
                bound.add(item.args[0].name)
            stack.extend(item.args)
            if item.target is not None:
                stack.append(item.target)
        else:
            stack.extend(_children(item))
    return bound


def _children(node: Node) -> list[Node]:
    found: list[Node] = []
    for value in node.__dataclass_fields__:
        child = getattr(node, value)
        if isinstance(child, tuple):
            for item in child:
                found.extend(item if isinstance(item, tuple) else (item,))
        elif child is not None and hasattr(child, "__dataclass_fields__"):
            found.append(child)
    return [item for item in found if hasattr(item, "__dataclass_fields__")]


def _coerces(kind: str, value: Any) -> bool:
    try:
        COERCE[kind](value)
    except CoercionError:
        return False
    return True


def _article(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _unknown(name: str, what: str, known: Mapping[str, Any] | set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (declared: {', '.join(sorted(known))})" if known else ""
    return f"no {what} {name!r} in this table{hint}"


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _strings(child, (*loc, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _strings(child, (*loc, index))


# -- public face ----------------------------------------------------------------------------------------------------


def load_table(text: str, source: str = "<table>") -> DecisionTable:
    """Parse and validate decision table YAML; raise :class:`TableInvalid` listing every problem found."""
    report = _TableReport(source)
    value = _read(text, report)
    if not isinstance(value, dict):
        what = "an empty document" if value is None else f"a {type(value).__name__}"
        report.add(
            (), f"a decision table is a mapping with name, version, inputs, outputs and rules, not {what}", "type"
        )
        raise report.failure()
    table: DecisionTable | None = None
    try:
        table = DecisionTable.model_validate(value)
    except ValidationError as exc:
        _schema_errors(exc, report)
    _Checker(_parts(value), report).run()
    if report.problems or table is None:
        raise report.failure()
    return table


def _read_file(path: Path) -> str:
    hint = "give the path of a decision table YAML file"
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput(f"no file {path}", hint=hint) from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory", hint=hint) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}", hint=hint) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start})", hint="save the table as UTF-8") from None


def load_table_file(path: Path) -> DecisionTable:
    """Read and validate a table file; :class:`TableInvalid` if it does not validate, InvalidInput if unreadable."""
    return load_table(_read_file(path), str(path))


def validate_table_file(path: Path) -> list[FieldError]:
    """Every problem in a table file, in file order; empty when it is valid. An unreadable file raises InvalidInput."""
    try:
        load_table_file(path)
    except TableInvalid as exc:
        return list(exc.errors)
    return []
