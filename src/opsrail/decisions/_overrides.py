"""What a person may give in place of a table's answer when they override it: outputs the table has, each of the
type the table answers with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsrail.decisions._schema import DecisionTable
from opsrail.decisions._types import COERCE, CoercionError, shown
from opsrail.model import FieldError


def _check(table: DecisionTable, name: str, given: Any) -> None:
    """Raise ``CoercionError`` unless ``given`` is what the table answers for ``name``: the output's type, or under
    the ``collect`` hit policy its aggregate (a list of such values, a count, a sum, or the least or greatest)."""
    kind = table.outputs[name].type
    aggregate = table.aggregate_of(name) if table.hit_policy == "collect" else None
    if aggregate == "list":
        if not isinstance(given, list):
            raise CoercionError(f"expected a list (collected from every matching rule), got {shown(given)}")
        for item in given:
            COERCE[kind](item)
    elif aggregate == "count":
        COERCE["int"](given)
    elif aggregate == "sum":
        COERCE["double"](given)
    else:
        COERCE[kind](given)


def override_problems(table: DecisionTable, value: Mapping[str, Any], *, at: str = "$.value") -> list[FieldError]:
    """The problems of ``value`` as an answer of ``table``: a name that is no output, or a value that is not of the
    type the table answers with for it."""
    problems = []
    for name, given in value.items():
        if name not in table.outputs:
            outputs = ", ".join(table.outputs)
            problems.append(FieldError(f"{at}.{name}", f"{name!r} is not an output of {table.name} ({outputs})"))
            continue
        try:
            _check(table, name, given)
        except CoercionError as exc:
            problems.append(FieldError(f"{at}.{name}", f"output {name!r}: {exc}", "type"))
    return problems
