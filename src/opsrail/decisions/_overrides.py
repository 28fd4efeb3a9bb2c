"""What a person may give in place of a table's answer when they override it: outputs the table has, each of its
declared type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsrail.decisions._schema import DecisionTable
from opsrail.decisions._types import COERCE, CoercionError
from opsrail.model import FieldError


def override_problems(table: DecisionTable, value: Mapping[str, Any], *, at: str = "$.value") -> list[FieldError]:
    """The problems of ``value`` as an answer of ``table``: a name that is no output, or a value that is not of the
    output's type. Under the ``collect`` hit policy an output holds the aggregate of the matched rules' values, so
    only the names are checked there."""
    problems = []
    for name, given in value.items():
        spec = table.outputs.get(name)
        if spec is None:
            outputs = ", ".join(table.outputs)
            problems.append(FieldError(f"{at}.{name}", f"{name!r} is not an output of {table.name} ({outputs})"))
            continue
        if table.hit_policy == "collect":
            continue
        try:
            COERCE[spec.type](given)
        except CoercionError as exc:
            problems.append(FieldError(f"{at}.{name}", f"output {name!r}: {exc}", "type"))
    return problems
