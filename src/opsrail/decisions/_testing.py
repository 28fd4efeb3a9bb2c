"""A table's own tests: run each ``tests`` entry against the table and say what passed and what did not.

A test passes when evaluating its ``inputs`` gives every output listed in ``expect`` (others are not compared) and,
when ``expect_rules`` is given, exactly those matched rules in that order. Doubles compare with a relative tolerance
of 1e-9, so ``arr * 0.05`` equals the ``6000.0`` an author writes. A test whose evaluation raises fails with the
error's message rather than stopping the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from opsrail.decisions._evaluate import CompiledTable, compile_table
from opsrail.decisions._schema import DecisionTable
from opsrail.decisions._types import COERCE, CoercionError
from opsrail.model import OpsrailError


@dataclass(frozen=True, slots=True)
class TableTestOutcome:
    name: str
    passed: bool
    expected: dict[str, Any]
    actual: dict[str, Any]
    matched_rules: tuple[str, ...]
    message: str
    expected_rules: tuple[str, ...] | None = field(default=None)


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same(a, b) for a, b in zip(expected, actual, strict=True))
    if isinstance(expected, bool) != isinstance(actual, bool):
        return False
    return bool(expected == actual)


def _expected(table: DecisionTable, name: str, value: Any) -> Any:
    """The expected value read as the output's type (an int written for a double output is that double)."""
    spec = table.outputs.get(name)
    if spec is None:
        return value
    aggregate = table.aggregate_of(name) if table.hit_policy == "collect" else None
    if aggregate == "count":
        return value
    try:
        if aggregate == "list" and isinstance(value, list):
            return [COERCE[spec.type](item) for item in value]
        return COERCE[spec.type](value)
    except CoercionError:
        return value


def run_table_tests(table: DecisionTable | CompiledTable) -> list[TableTestOutcome]:
    """Run the table's ``tests`` in order; one outcome per test."""
    compiled = table if isinstance(table, CompiledTable) else compile_table(table)
    document = compiled.table
    outcomes: list[TableTestOutcome] = []
    for test in document.tests:
        expected = {name: _expected(document, name, value) for name, value in test.expect.items()}
        wanted_rules = tuple(test.expect_rules) if test.expect_rules is not None else None
        try:
            result = compiled.evaluate(test.inputs)
        except OpsrailError as exc:
            outcomes.append(TableTestOutcome(test.name, False, expected, {}, (), f"error: {exc.detail}", wanted_rules))
            continue
        wrong = [
            f"{name}: expected {value!r}, got {result.outputs.get(name, '<missing>')!r}"
            for name, value in expected.items()
            if name not in result.outputs or not _same(value, result.outputs[name])
        ]
        if wanted_rules is not None and wanted_rules != result.matched_rules:
            wrong.append(f"matched rules: expected {list(wanted_rules)}, got {list(result.matched_rules)}")
        message = "; ".join(wrong) if wrong else f"passed ({result.explanation})"
        outcomes.append(
            TableTestOutcome(
                test.name, not wrong, expected, dict(result.outputs), result.matched_rules, message, wanted_rules
            )
        )
    return outcomes
