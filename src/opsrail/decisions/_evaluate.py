"""Evaluating a decision table: inputs checked and coerced, rules tried per hit policy, outputs built and explained.

:func:`compile_table` prepares a validated :class:`DecisionTable` once: each rule's condition becomes a Python
closure when it is in the subset :mod:`opsrail.decisions._conditions` translates, and a CEL program otherwise (fed
only the inputs it reads); literal outputs are coerced once; ``${ }`` templates are translated the same way or
rendered by CEL. Rules are indexed by the input most of them test for equality (``topic == "Access"``,
``region in ["eu", "uk"]``), so an evaluation only tries the rules that can match that input's value, in their
order. :meth:`CompiledTable.evaluate` returns a :class:`TableResult`: the outputs, the matched rule ids, and an
explanation naming each matched rule and its condition.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from opsrail.decisions._conditions import (
    Binary,
    Ident,
    ListLit,
    Lit,
    Node,
    Predicate,
    parse,
    translate,
    translate_value,
)
from opsrail.decisions._schema import DecisionTable, Rule
from opsrail.decisions._types import COERCE, CoercionError
from opsrail.model import FieldError, InvalidInput
from opsrail.playbooks import Expression, ExpressionError, compile_cel, render, template_expressions


class NoRuleMatched(InvalidInput):
    """No rule matched the inputs and some outputs have no default; ``extra["outputs"]`` names them."""


class AmbiguousMatch(InvalidInput):
    """Under hit policy ``unique``, more than one rule matched; ``extra["rules"]`` names them."""


class RuleFailed(InvalidInput):
    """A rule's condition or output template failed on these inputs (a missing map key, a division by zero)."""


@dataclass(frozen=True, slots=True)
class TableResult:
    """One evaluation: plain data, ready for a decision record."""

    table: str
    version: int
    outputs: dict[str, Any]
    matched_rules: tuple[str, ...]
    explanation: str
    inputs: dict[str, Any]
    """The inputs as the rules saw them: coerced, with defaults filled in."""


# -- conditions and values ------------------------------------------------------------------------------------------


def condition_test(rule_id: str, source: str, node: Node | None, types: Mapping[str, str]) -> Predicate:
    """A rule's condition over coerced inputs: a translated closure, or CEL fed the inputs it reads."""
    fast = translate(node, types) if node is not None else None
    if fast is not None:
        return fast
    return _cel_condition(rule_id, source, types)


def _cel_condition(rule_id: str, source: str, types: Mapping[str, str]) -> Predicate:
    expression = Expression(source)
    names = tuple(name for name in compile_cel(source).variables() if name in types)

    def test(values: dict[str, Any]) -> bool:
        try:
            return expression.evaluate_bool({name: values[name] for name in names})
        except ExpressionError as exc:
            raise RuleFailed(f"rule {rule_id!r}: when {exc.detail}", hint=exc.hint, extra={"rule": rule_id}) from None

    return test


def _value_producer(
    rule_id: str, output: str, value: Any, types: Mapping[str, str], *, fast: bool = True
) -> Callable[[dict[str, Any]], Any]:
    """The unrendered value of a ``then`` entry holding templates, as a function of the inputs."""
    sources = [source for _, source in template_expressions(value)]
    whole = isinstance(value, str) and len(sources) == 1 and value.strip().startswith("${") and value.strip()[-1] == "}"
    if whole and fast:
        node = parse(sources[0])
        translated = translate_value(node, types) if node is not None else None
        if translated is not None:
            return translated
    names = sorted({name for source in sources for name in compile_cel(source).variables() if name in types})

    def produce(values: dict[str, Any]) -> Any:
        try:
            return render(value, {name: values[name] for name in names})
        except ExpressionError as exc:
            raise RuleFailed(
                f"rule {rule_id!r}: output {output!r}: {exc.detail}", hint=exc.hint, extra={"rule": rule_id}
            ) from None

    return produce


class _CompiledRule:
    __slots__ = ("dynamic", "fast", "fixed", "id", "index", "keys", "reason", "test")

    def __init__(self, index: int, rule: Rule, table: DecisionTable, types: Mapping[str, str], fast: bool) -> None:
        self.index = index
        self.id = rule.id
        node = parse(rule.when)
        translated = translate(node, types) if fast and node is not None else None
        self.fast = translated is not None
        self.test: Predicate = translated or _cel_condition(rule.id, rule.when, types)
        self.fixed: dict[str, Any] = {}
        self.dynamic: list[tuple[str, Callable[[dict[str, Any]], Any], Callable[[Any], Any]]] = []
        for name, value in rule.then.items():
            kind = table.outputs[name].type
            if template_expressions(value):
                produce = _value_producer(rule.id, name, value, types, fast=fast)
                self.dynamic.append((name, produce, COERCE[kind]))
            else:
                self.fixed[name] = COERCE[kind](value)
        priority = f" (priority {rule.priority})" if table.hit_policy == "priority" else ""
        self.reason = f"rule {rule.id!r}{priority}: when {rule.when}"
        self.keys = _equality_keys(node, types) if node is not None else {}

    def outputs(self, values: dict[str, Any]) -> dict[str, Any]:
        if not self.dynamic:
            return self.fixed
        found = dict(self.fixed)
        for name, produce, coerce in self.dynamic:
            value = produce(values)
            try:
                found[name] = coerce(value)
            except CoercionError as exc:
                raise RuleFailed(f"rule {self.id!r}: output {name!r}: {exc}", extra={"rule": self.id}) from None
        return found


def _equality_keys(node: Node, types: Mapping[str, str]) -> dict[str, frozenset[Any]]:
    """Per input, the only values for which the condition can be true, from its top-level ``&&`` terms."""
    terms: list[Node] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Binary) and item.op == "&&":
            stack.extend((item.left, item.right))
        else:
            terms.append(item)
    keys: dict[str, frozenset[Any]] = {}
    for term in terms:
        if not isinstance(term, Binary) or not isinstance(term.left, Ident):
            continue
        kind = types.get(term.left.name)
        if kind not in ("string", "int"):
            continue
        items: tuple[Node, ...]
        if term.op == "==" and isinstance(term.right, Lit):
            items = (term.right,)
        elif term.op == "in" and isinstance(term.right, ListLit):
            items = term.right.items
        else:
            continue
        if not all(isinstance(item, Lit) and item.kind in ("string", "int", "double", "bool") for item in items):
            continue
        # Items of another type never equal the input, so they add no key; an int input also equals a double item
        # of integral value, which is then a key too.
        values = {
            item.value if item.kind == kind else int(item.value)
            for item in items
            if isinstance(item, Lit)
            and (item.kind == kind or (kind == "int" and item.kind == "double" and float(item.value).is_integer()))
        }
        name = term.left.name
        keys[name] = keys[name] & frozenset(values) if name in keys else frozenset(values)
    return keys


# -- the table ------------------------------------------------------------------------------------------------------


_ZERO: dict[str, Any] = {"int": 0, "double": 0.0, "duration": timedelta(0)}


class CompiledTable:
    """A table ready to evaluate; build once per table version with :func:`compile_table`, share freely."""

    def __init__(self, table: DecisionTable, *, fast: bool = True) -> None:
        self.table = table
        self.name, self.version, self.hit_policy = table.name, table.version, table.hit_policy
        types = {name: spec.type for name, spec in table.inputs.items()}
        self._inputs = [
            (name, COERCE[spec.type], spec.required, None if spec.required else COERCE[spec.type](spec.default))
            for name, spec in table.inputs.items()
        ]
        self._defaults = {
            name: COERCE[spec.type](spec.default) for name, spec in table.outputs.items() if spec.has_default
        }
        self._lacking = tuple(name for name in table.outputs if name not in self._defaults)
        self._mutable = any(spec.type in ("list", "map") for spec in table.outputs.values())
        rules = [_CompiledRule(index, rule, table, types, fast) for index, rule in enumerate(table.rules)]
        if table.hit_policy == "priority":
            rules.sort(key=lambda rule: (-(table.rules[rule.index].priority or 0), rule.index))
        self._rules: tuple[_CompiledRule, ...] = tuple(rules)
        self._key, self._buckets, self._rest = _index(self._rules) if fast else (None, {}, self._rules)
        self._aggregates = {name: table.aggregate_of(name) for name in table.outputs}

    @property
    def fast_rules(self) -> tuple[str, ...]:
        """Ids of the rules whose condition runs as a Python closure rather than through CEL."""
        return tuple(rule.id for rule in sorted(self._rules, key=lambda rule: rule.index) if rule.fast)

    @property
    def index_input(self) -> str | None:
        """The input whose value selects the candidate rules, if the table is indexed."""
        return self._key

    def coerce_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The inputs checked against their declared types, coerced, with defaults; :class:`InvalidInput` if not."""
        values: dict[str, Any] = {}
        problems: list[FieldError] = []
        used = 0
        for name, coerce, required, default in self._inputs:
            if name in inputs:
                used += 1
                try:
                    values[name] = coerce(inputs[name])
                except CoercionError as exc:
                    problems.append(FieldError(f"$.{name}", f"input {name!r}: {exc}", "type"))
            elif required:
                problems.append(FieldError(f"$.{name}", f"input {name!r} is required", "missing"))
            else:
                values[name] = default
        if used < len(inputs):
            declared = [name for name, *_ in self._inputs]
            for name in inputs:
                if name not in values and all(error.path != f"$.{name}" for error in problems):
                    close = difflib.get_close_matches(str(name), declared, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    problems.append(FieldError(f"$.{name}", f"{name!r} is not an input of this table{hint}", "unknown"))
        if problems:
            what = "; ".join(error.message for error in problems)
            raise InvalidInput(
                f"{self.name} v{self.version}: {what}",
                hint=f"inputs: {', '.join(f'{name}' for name, *_ in self._inputs)}",
                errors=problems,
            )
        return values

    def evaluate(self, inputs: Mapping[str, Any]) -> TableResult:
        """Decide for one set of inputs; raises InvalidInput, :class:`NoRuleMatched`, :class:`AmbiguousMatch` or
        :class:`RuleFailed`."""
        values = self.coerce_inputs(inputs)
        candidates = self._buckets.get(values[self._key], self._rest) if self._key is not None else self._rest
        policy = self.hit_policy
        if policy in ("first", "priority"):
            for rule in candidates:
                if rule.test(values):
                    return self._single(values, rule, policy)
            return self._nothing(values)
        matched = [rule for rule in candidates if rule.test(values)]
        if policy == "unique":
            if len(matched) > 1:
                ids = [rule.id for rule in matched]
                raise AmbiguousMatch(
                    f"{self.name} v{self.version} has hit policy unique, but rules {_names(ids)} all match",
                    hint="make the rules' conditions exclusive; load_table reports overlaps it can find",
                    extra={"rules": ids},
                )
            return self._single(values, matched[0], policy) if matched else self._nothing(values)
        return self._collect(values, matched)

    def _single(self, values: dict[str, Any], rule: _CompiledRule, policy: str) -> TableResult:
        outputs = {**self._defaults, **rule.outputs(values)}
        if self._mutable:
            outputs = copy.deepcopy(outputs)
        return TableResult(self.name, self.version, outputs, (rule.id,), f"{policy}: {rule.reason}", values)

    def _nothing(self, values: dict[str, Any]) -> TableResult:
        if self._lacking:
            raise NoRuleMatched(
                f"no rule of {self.name} v{self.version} matched, and {_names(self._lacking)} ha"
                f"{'s' if len(self._lacking) == 1 else 've'} no default",
                hint='add a last rule with when: "true", or defaults for those outputs',
                extra={"outputs": list(self._lacking)},
            )
        outputs = copy.deepcopy(self._defaults) if self._mutable else dict(self._defaults)
        return TableResult(
            self.name, self.version, outputs, (), "no rule matched: every output has its default", values
        )

    def _collect(self, values: dict[str, Any], matched: Sequence[_CompiledRule]) -> TableResult:
        given: dict[str, list[Any]] = {name: [] for name in self._aggregates}
        for rule in matched:
            for name, value in rule.outputs(values).items():
                given[name].append(value)
        outputs: dict[str, Any] = {}
        lacking: list[str] = []
        for name, found in given.items():
            aggregate = self._aggregates[name]
            if not found and name in self._defaults:
                outputs[name] = self._defaults[name]
            elif aggregate == "list":
                outputs[name] = found
            elif aggregate == "count":
                outputs[name] = len(found)
            elif aggregate == "sum":
                kind = self.table.outputs[name].type
                outputs[name] = sum(found, _ZERO.get(kind, 0))
            elif not found:
                lacking.append(name)
            else:
                outputs[name] = min(found) if aggregate == "min" else max(found)
        if lacking:
            raise NoRuleMatched(
                f"no matched rule of {self.name} v{self.version} gives {_names(lacking)}, and "
                f"{'it has' if len(lacking) == 1 else 'they have'} no default",
                hint="give the output a default",
                extra={"outputs": lacking},
            )
        if self._mutable:
            outputs = copy.deepcopy(outputs)
        ids = tuple(rule.id for rule in matched)
        if matched:
            explanation = f"collect: {len(matched)} rule{'s' if len(matched) > 1 else ''} matched: " + "; ".join(
                rule.reason for rule in matched
            )
        else:
            explanation = "collect: no rule matched"
        return TableResult(self.name, self.version, outputs, ids, explanation, values)


def _names(names: Sequence[str]) -> str:
    quoted = [repr(name) for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _index(
    rules: tuple[_CompiledRule, ...],
) -> tuple[str | None, dict[Any, tuple[_CompiledRule, ...]], tuple[_CompiledRule, ...]]:
    """The input that keys most rules, the candidate rules per value of it, and the rules for any other value."""
    counts: dict[str, int] = {}
    for rule in rules:
        for name in rule.keys:
            counts[name] = counts.get(name, 0) + 1
    if not counts or max(counts.values()) < 2:
        return None, {}, rules
    key = max(counts, key=lambda name: counts[name])
    values = {value for rule in rules for value in rule.keys.get(key, ())}
    buckets = {
        value: tuple(rule for rule in rules if key not in rule.keys or value in rule.keys[key]) for value in values
    }
    rest = tuple(rule for rule in rules if key not in rule.keys)
    return key, buckets, rest


def compile_table(table: DecisionTable, *, fast: bool = True) -> CompiledTable:
    """Prepare a validated table for evaluation; ``fast=False`` runs every condition and template through CEL."""
    return CompiledTable(table, fast=fast)
