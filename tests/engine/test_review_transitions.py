"""A decide step whose answer needs a person: the step waits on a review task, and the decision settles it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsrail.engine import (
    Completed,
    OpenTask,
    ReviewNeeded,
    TaskDecided,
    TimerFired,
    TransitionError,
    advance,
    migrate_state,
)
from tests.engine.test_transitions import T0, begin, claim, playbook, status

STEPS = """
  - id: classify
    decide: incident-topic
    with: {text: "${ run.input.title }"}
  - id: route
    needs: [classify]
    action: core.set
    with: {team: "${ steps.classify.output.label }"}
"""


def review(recommendation: dict[str, object]) -> ReviewNeeded:
    return ReviewNeeded(
        recommendation=recommendation,
        roles=("operator",),
        count=1,
        title="Review incident-topic: Access (41%)",
        context={"decision_record": "dec_1", "similar": []},
        due_in=timedelta(hours=4),
    )


def test_a_review_opens_a_task_and_the_step_waits_with_the_recommendation() -> None:
    pb = playbook(STEPS)
    run = begin(pb, {"title": "cannot log in"})
    attempt = claim(run, "classify")
    commands = advance(pb, run, Completed("classify", attempt, True, review({"label": "Access"})), T0)
    [task] = [c for c in commands if isinstance(c, OpenTask)]
    assert task.kind == "review" and task.roles == ("operator",) and task.due_at == T0 + timedelta(hours=4)
    assert task.context["decision_record"] == "dec_1" and task.context["step"] == "classify"
    assert run.steps["classify"].status == "waiting" and run.steps["classify"].waiting_for == "review"
    assert run.steps["classify"].output == {"label": "Access"}
    assert status(run)["route"] == "pending"
    # A review has no timer of its own: the task's due time drives escalation, not the step.
    with pytest.raises(TransitionError):
        advance(pb, run, TimerFired("classify"), T0 + timedelta(days=2))


def test_accepting_a_review_keeps_the_recommendation() -> None:
    pb = playbook(STEPS)
    run = begin(pb, {"title": "cannot log in"})
    advance(pb, run, Completed("classify", claim(run, "classify"), True, review({"label": "Access"})), T0)
    advance(pb, run, TaskDecided("classify", True, ("dana",)), T0 + timedelta(minutes=5))
    assert run.steps["classify"].output == {"label": "Access"}
    assert status(run)["route"] == "ready"


def test_a_reviewers_value_overrides_the_recommendation() -> None:
    pb = playbook(STEPS)
    run = begin(pb, {"title": "laptop broken"})
    advance(pb, run, Completed("classify", claim(run, "classify"), True, review({"label": "Access"})), T0)
    commands = advance(pb, run, TaskDecided("classify", False, ("dana",), "it is hardware", {"label": "Hardware"}), T0)
    assert run.steps["classify"].output == {"label": "Hardware"}
    assert any(getattr(c, "activity", None) == "decision.overridden" for c in commands)
    state = run.steps["classify"]
    assert state.status == "succeeded"


def test_rejecting_a_review_without_a_value_fails_the_step() -> None:
    pb = playbook(STEPS)
    run = begin(pb, {"title": "?"})
    advance(pb, run, Completed("classify", claim(run, "classify"), True, review({"label": "Access"})), T0)
    advance(pb, run, TaskDecided("classify", False, ("dana",), "cannot tell"), T0)
    assert run.steps["classify"].status == "failed"
    assert "cannot tell" in (run.steps["classify"].error or "")
    assert run.status == "failed"


def test_a_run_waiting_on_a_review_migrates_only_onto_a_decide_step() -> None:
    pb = playbook(STEPS)
    run = begin(pb, {"title": "x"})
    advance(pb, run, Completed("classify", claim(run, "classify"), True, review({"label": "Access"})), T0)
    same = playbook(STEPS, version=2)
    migrated, reason = migrate_state(run, same, {})
    assert migrated is not None, reason
    other = playbook(
        """
  - id: classify
    approval: {roles: [operator]}
  - id: route
    needs: [classify]
    action: core.set
""",
        version=3,
    )
    refused, reason = migrate_state(run, other, {})
    assert refused is None and reason is not None and "review" in reason
