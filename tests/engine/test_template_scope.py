"""Rendering a step's values against only what its templates name gives what rendering against the whole run
gives: the same values of the same types, and the same errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from opsrail.engine import RunState, StepState
from opsrail.engine._scope import render_scoped
from opsrail.playbooks import ExpressionError, render

RUN = RunState(
    id="run-1",
    playbook_id="pb",
    version=3,
    status="running",
    input={
        "id": "acme:INC-1",
        "n": 5,
        "f": 1.5,
        "yes": True,
        "none": None,
        "list": [1, 2],
        "map": {"a": 1},
        "huge": 2**70,
        "steps": "a field named like a name",
    },
    steps={
        "classify": StepState(id="classify", status="succeeded", output={"team": "sre", "exposure": 1200.0}),
        "other": StepState(id="other", status="ready"),
    },
    created_at=datetime(2026, 1, 5, tzinfo=UTC),
)

CASES = [
    "${ run.input.id }",
    "  ${run.input.n}  ",
    "n=${ run.input.n } f=${run.input.f} yes=${run.input.yes} none=${run.input.none}",
    "${ run.input.list }",
    "${ run.input.map }",
    "list ${ run.input.list }",
    "${ run.input.huge }",
    "${ run.input.missing }",
    "${ run.input.steps }",
    "${ steps.classify.output.exposure }",
    "team-${ steps.classify.output.team }",
    "${ steps.nope.output }",
    "${ steps.other.output }",
    "${ steps.classify.status }",
    "${ run.input.n + 1 }",
    "${ size(steps) }",
    "${ steps['classify'].output.team }",
    "${ [steps].size() }",
    "${ run.version } of ${ run.playbook } (${ run.id })",
    "${ event.anything }",
    "${ run . input . id }",
    "${ {'a': '}'}.a } ${ run.input.id }",
    "${ run.input.id",
    "plain text",
    42,
    None,
    ["${ run.input.n }", {"nested": "${ steps.classify.output.team }"}],
]


def outcome(render_it: Any) -> Any:
    try:
        value = render_it()
    except ExpressionError as exc:
        return ("error", str(exc))
    return (type(value).__name__, value)


@pytest.mark.parametrize("value", CASES, ids=[str(c) for c in CASES])
def test_scoped_rendering_gives_what_rendering_over_the_whole_run_gives(value: Any) -> None:
    whole = {**RUN.view(), "event": {}, "result": {}}
    expected = outcome(lambda: render({"v": value}, whole))
    assert outcome(lambda: render_scoped({"v": value}, RUN)) == expected
