"""Does a run's input, given by hand, have the shape the playbook's trigger would give it?

A triggered run's input is the event's data (a canonical object of the event type's kind) or, when the trigger
has an ``input`` of templates, the rendered templates. A run started by hand skips the trigger, so a playbook fed by
``com.opsrail.quote.submitted`` would take any object and fail at its first expression: ``run_input_problem`` finds
that before the run starts.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from opsrail.ingest import field_errors
from opsrail.model import KINDS, FieldError, kind_of
from opsrail.playbooks import Playbook

ADDED_KEYS = frozenset({"requested_by"})
"""Keys Opsrail itself adds to a run's input (who asked for it), whatever the trigger's shape."""


def run_input_problem(playbook: Playbook, run_input: dict[str, Any]) -> tuple[str, list[FieldError]] | None:
    """What is wrong with ``run_input`` for ``playbook``'s trigger, as a message and field errors; None when it fits,
    when the playbook has no trigger, or when its events are not canonical (their data has no known shape)."""
    trigger = playbook.trigger
    if trigger is None:
        return None
    if trigger.input is not None:
        missing = [key for key in trigger.input if key not in run_input]
        if not missing:
            return None
        return (
            f"{playbook.id}'s trigger gives its runs an input with {', '.join(trigger.input)}; "
            f"this input lacks {', '.join(missing)}",
            [FieldError(f"$.input.{key}", "required by the trigger's input", "missing") for key in missing],
        )
    kinds = list(dict.fromkeys(kind_of(event_type) for event_type in trigger.events))
    if not kinds or None in kinds:
        return None
    data = {key: value for key, value in run_input.items() if key not in ADDED_KEYS}
    first: list[FieldError] | None = None
    for kind in kinds:
        assert kind is not None
        try:
            KINDS[kind].model_validate(data)
        except ValidationError as exc:
            first = first if first is not None else field_errors(exc, "$.input")
            continue
        return None
    assert first is not None
    names = " or ".join(f"a canonical {kind}" for kind in kinds)
    return f"{playbook.id} is triggered by {', '.join(trigger.events)}: its input must be {names}", first


_PLACEHOLDERS: dict[str, Any] = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}


def input_skeleton(playbook: Playbook) -> dict[str, Any]:
    """An input to fill in for a run started by hand: the trigger's ``input`` keys, or the required fields of the
    trigger kind's canonical object with a placeholder of each one's type (an enumeration's first value); empty when
    the trigger does not say."""
    trigger = playbook.trigger
    if trigger is None:
        return {}
    if trigger.input is not None:
        return dict.fromkeys(trigger.input, "")
    kind = kind_of(trigger.events[0])
    if kind is None:
        return {}
    schema = KINDS[kind].model_json_schema()
    skeleton: dict[str, Any] = {}
    for name in schema.get("required", []):
        field = schema["properties"][name]
        if "enum" in field:
            skeleton[name] = field["enum"][0]
            continue
        kinds = [field.get("type")] + [option.get("type") for option in field.get("anyOf", [])]
        found = next((k for k in kinds if k in _PLACEHOLDERS), "string")
        skeleton[name] = _PLACEHOLDERS[found]
    return skeleton
