"""What a person may give in place of a model's answer when they override it (a table's outputs are checked by
``opsrail.decisions.override_problems``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from opsrail.model import FieldError

MODEL_ANSWERS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "text-classifier": {"label": str},
    "next-activity": {"label": str},
    "sla-breach": {"label": str},
    "remaining-time": {"value": (int, float)},
}
"""What a person gives in place of a model's answer, per task: a classifier's label, a regressor's value."""

_KIND_NAMES = {"label": "a non-empty string", "value": "a number"}


def model_override_problems(task: str, value: Mapping[str, Any], at: str, echoed: set[str]) -> list[FieldError]:
    """The problems of ``value`` as the answer of a ``task`` model; names in ``echoed`` (the model's own confidence
    and probabilities, sent back with the answer by a form) pass unchecked."""
    wanted = MODEL_ANSWERS.get(task, {})
    problems = []
    for name, given in value.items():
        kind = wanted.get(name)
        if kind is None and name in echoed:
            continue
        if kind is None:
            problems.append(FieldError(f"{at}.{name}", f"{name!r} is not what a {task} model answers"))
        elif isinstance(given, bool) or not isinstance(given, kind) or given == "":
            problems.append(FieldError(f"{at}.{name}", f"{name!r} must be {_KIND_NAMES[name]}", "type"))
    if wanted and not set(wanted) & set(value):
        problems.append(FieldError(at, f"give the answer as {' or '.join(repr(k) for k in wanted)}", "missing"))
    return problems


def override_hint(record: Mapping[str, Any]) -> str:
    """An example of an acceptable override: the decision's own outputs, without the model's confidence."""
    outputs = {k: v for k, v in (record.get("outputs") or {}).items() if k not in ("confidence", "probabilities")}
    return f"give outputs of the same names and types as the decision's, e.g. {orjson.dumps(outputs).decode()}"
