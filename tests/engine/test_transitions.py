"""Pure transition tests: an injected clock moves time; nothing sleeps, nothing is stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsrail.engine import (
    Completed,
    Control,
    Escalate,
    EventArrived,
    Execute,
    OpenTask,
    RunState,
    SlaCheck,
    Start,
    StepState,
    TaskDecided,
    TimerFired,
    TransitionError,
    advance,
    execute_command,
    initial_state,
)
from opsrail.playbooks import Playbook, load_playbook

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def playbook(yaml_steps: str, **header: Any) -> Playbook:
    head = "\n".join(f"{k}: {v}" for k, v in {"id": "test", "version": 1, **header}.items())
    return load_playbook(f"{head}\nsteps:\n{yaml_steps}", "test.yaml")


def begin(pb: Playbook, run_input: dict[str, Any] | None = None) -> RunState:
    run = initial_state(pb, "run_1", run_input or {}, T0)
    advance(pb, run, Start(), T0)
    return run


def outcome(run: RunState) -> str:
    # A function call keeps mypy from narrowing run.status for the rest of a test.
    return run.status


def sla(state: StepState) -> str | None:
    return state.sla_state


def status(run: RunState) -> dict[str, str]:
    return {s.id: s.status for s in run.steps.values()}


def claim(run: RunState, step_id: str) -> int:
    """What the store does when a worker claims a ready step."""
    state = run.steps[step_id]
    assert state.status == "ready", state.status
    state.status = "running"
    state.attempt += 1
    return state.attempt


def succeed(pb: Playbook, run: RunState, step_id: str, result: Any, at: datetime = T0) -> None:
    attempt = claim(run, step_id)
    advance(pb, run, Completed(step_id, attempt, ok=True, result=result), at)


LINEAR = """
  - id: a
    action: core.set
    with: {x: 1}
  - id: b
    needs: [a]
    action: core.set
    with: {y: "${ steps.a.output.x + 1 }"}
"""


def test_steps_start_when_their_needs_are_met_and_the_run_succeeds() -> None:
    pb = playbook(LINEAR)
    run = begin(pb)
    assert status(run) == {"a": "ready", "b": "pending"}
    succeed(pb, run, "a", {"x": 1})
    assert status(run) == {"a": "succeeded", "b": "ready"}
    command = execute_command(pb, run, "b")
    assert isinstance(command, Execute) and command.params == {"y": 2}
    assert command.idempotency_key == "run_1:b"
    succeed(pb, run, "b", {"y": 2})
    assert run.status == "succeeded" and run.finished_at == T0


def test_parallel_branches_and_a_join() -> None:
    pb = playbook("""
  - id: start
    action: core.set
  - id: left
    needs: [start]
    action: core.set
  - id: right
    needs: [start]
    action: core.set
  - id: join
    needs: [left, right]
    action: core.set
""")
    run = begin(pb)
    succeed(pb, run, "start", {})
    assert status(run)["left"] == status(run)["right"] == "ready"
    succeed(pb, run, "right", {})
    assert status(run)["join"] == "pending"
    succeed(pb, run, "left", {})
    assert status(run)["join"] == "ready"


def test_when_false_skips_and_the_skip_propagates() -> None:
    pb = playbook("""
  - id: gate
    when: "run.input.amount > 100"
    action: core.set
  - id: after
    needs: [gate]
    action: core.set
  - id: other
    action: core.set
""")
    run = begin(pb, {"amount": 5})
    assert status(run) == {"gate": "skipped", "after": "skipped", "other": "ready"}


def test_retries_back_off_exponentially_then_fail_the_run() -> None:
    pb = playbook("""
  - id: flaky
    action: core.fail
    retry: {attempts: 3, backoff: exponential, initial: PT2S, max: PT3S}
""")
    run = begin(pb)
    now = T0
    for expected_delay in (2, 3):
        attempt = claim(run, "flaky")
        advance(pb, run, Completed("flaky", attempt, ok=False, error="boom"), now)
        state = run.steps["flaky"]
        assert state.status == "waiting" and state.due_at == now + timedelta(seconds=expected_delay)
        with pytest.raises(TransitionError):
            advance(pb, run, TimerFired("flaky"), now)  # not due yet
        now = state.due_at
        advance(pb, run, TimerFired("flaky"), now)
        assert run.steps["flaky"].status == "ready"
    attempt = claim(run, "flaky")
    advance(pb, run, Completed("flaky", attempt, ok=False, error="boom"), now)
    assert run.status == "failed" and "boom" in (run.error or "")


def test_a_stale_result_is_refused() -> None:
    pb = playbook(LINEAR)
    run = begin(pb)
    attempt = claim(run, "a")
    with pytest.raises(TransitionError, match="stale"):
        advance(pb, run, Completed("a", attempt + 1, ok=True, result={}), T0)


def test_done_when_false_means_not_done() -> None:
    pb = playbook("""
  - id: provision
    action: core.set
    done_when: "result.state == 'active'"
    retry: {attempts: 2, initial: PT1S}
""")
    run = begin(pb)
    attempt = claim(run, "provision")
    advance(pb, run, Completed("provision", attempt, ok=True, result={"state": "pending"}), T0)
    assert run.steps["provision"].status == "waiting"
    assert "done_when" in (run.steps["provision"].error or "")


def test_fallback_runs_and_dependents_go_on() -> None:
    pb = playbook("""
  - id: jira
    action: core.fail
    on_failure: {fallback: page}
  - id: page
    action: core.log
    with: {message: paged}
  - id: after
    needs: [jira]
    action: core.set
""")
    run = begin(pb)
    assert status(run) == {"jira": "ready", "page": "pending", "after": "pending"}
    attempt = claim(run, "jira")
    advance(pb, run, Completed("jira", attempt, ok=False, error="503", retryable=False), T0)
    assert status(run)["page"] == "ready"
    succeed(pb, run, "page", {"logged": True})
    assert status(run)["after"] == "ready"
    succeed(pb, run, "after", {})
    assert run.status == "succeeded"


def test_compensation_runs_then_the_run_fails() -> None:
    pb = playbook("""
  - id: charge
    action: core.fail
    on_failure: {compensate: refund}
  - id: refund
    action: core.set
""")
    run = begin(pb)
    attempt = claim(run, "charge")
    advance(pb, run, Completed("charge", attempt, ok=False, error="declined", retryable=False), T0)
    succeed(pb, run, "refund", {})
    assert run.status == "failed" and "compensated by refund" in (run.error or "")


def test_continue_lets_the_run_succeed() -> None:
    pb = playbook("""
  - id: optional
    action: core.fail
    on_failure: continue
  - id: next
    needs: [optional]
    action: core.set
""")
    run = begin(pb)
    attempt = claim(run, "optional")
    advance(pb, run, Completed("optional", attempt, ok=False, error="nope", retryable=False), T0)
    succeed(pb, run, "next", {})
    assert run.status == "succeeded"


def test_approval_opens_a_task_and_waits_for_the_decision() -> None:
    pb = playbook("""
  - id: approve
    approval: {roles: [finance_controller], timeout: P1D}
  - id: book
    needs: [approve]
    action: core.set
""")
    run = initial_state(pb, "run_1", {}, T0)
    commands = advance(pb, run, Start(), T0)
    [task] = [c for c in commands if isinstance(c, OpenTask)]
    assert task.roles == ("finance_controller",) and task.due_at == T0 + timedelta(days=1)
    advance(pb, run, TaskDecided("approve", True, ("dana",)), T0 + timedelta(hours=2))
    assert run.steps["approve"].output["by"] == ["dana"]
    assert status(run)["book"] == "ready"


def test_an_unanswered_approval_times_out_into_its_handler() -> None:
    pb = playbook("""
  - id: approve
    approval: {roles: [finance_controller], timeout: PT1H, on_timeout: escalate}
  - id: escalate
    notify: {channel: core.log, message: "nobody approved run ${ run.id }"}
""")
    run = begin(pb)
    with pytest.raises(TransitionError):
        advance(pb, run, TimerFired("approve"), T0 + timedelta(minutes=59))
    advance(pb, run, TimerFired("approve"), T0 + timedelta(hours=1))
    assert status(run) == {"approve": "failed", "escalate": "ready"}
    assert execute_command(pb, run, "escalate").params["message"] == "nobody approved run run_1"


def test_a_rejection_fails_the_step() -> None:
    pb = playbook("""
  - id: approve
    approval: {roles: [legal]}
""")
    run = begin(pb)
    advance(pb, run, TaskDecided("approve", False, ("lee",), "clause 7"), T0)
    assert run.status == "failed" and "clause 7" in (run.error or "")


def test_waits_for_a_timer_and_for_an_event_with_timeout() -> None:
    pb = playbook("""
  - id: cool-off
    wait: {duration: PT10M}
  - id: resolved
    wait: {event: com.opsrail.incident.resolved, timeout: PT4H}
""")
    run = begin(pb)
    assert run.steps["cool-off"].due_at == T0 + timedelta(minutes=10)
    advance(pb, run, TimerFired("cool-off"), T0 + timedelta(minutes=10))
    assert status(run)["cool-off"] == "succeeded"
    advance(pb, run, EventArrived("resolved", {"type": "com.opsrail.incident.resolved", "data": {}}), T0)
    assert run.status == "succeeded"

    run = begin(pb)
    advance(pb, run, TimerFired("resolved"), T0 + timedelta(hours=4))
    assert run.status == "failed" and "timed out" in (run.error or "")


def test_cancel_pause_resume_and_retry_a_failed_step() -> None:
    pb = playbook(LINEAR)
    run = begin(pb)
    advance(pb, run, Control("pause"), T0)
    attempt = claim(run, "a")
    advance(pb, run, Completed("a", attempt, ok=True, result={"x": 1}), T0)
    assert status(run)["b"] == "pending"  # paused: nothing new starts
    advance(pb, run, Control("resume"), T0)
    assert status(run)["b"] == "ready"
    attempt = claim(run, "b")
    advance(pb, run, Completed("b", attempt, ok=False, error="down", retryable=False), T0)
    assert run.status == "failed"
    with pytest.raises(TransitionError, match="has no step 'nope'; its failed steps: b"):
        advance(pb, run, Control("retry_step", "nope"), T0)
    with pytest.raises(TransitionError, match="step 'a' is succeeded, not failed"):
        advance(pb, run, Control("retry_step", "a"), T0)
    advance(pb, run, Control("retry_step", "b"), T0)
    assert status(run)["b"] == "ready"
    with pytest.raises(TransitionError, match="none of its steps has failed"):
        advance(pb, run, Control("retry_step", "nope"), T0)
    assert run.terminal is False
    advance(pb, run, Control("cancel", actor="ops"), T0)
    assert outcome(run) == "cancelled" and status(run)["b"] == "cancelled"
    with pytest.raises(TransitionError):
        advance(pb, run, Control("cancel"), T0)


def test_an_sla_clock_warns_then_breaches_on_its_calendar() -> None:
    pb = playbook("""
  - id: resolve
    wait: {event: com.opsrail.incident.resolved}
    sla: {target: PT4H, calendar: business-hours, warn_at: 0.5}
""")
    monday_9 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    run = initial_state(pb, "run_1", {}, monday_9)
    advance(pb, run, Start(), monday_9)
    state = run.steps["resolve"]
    assert (state.sla_warn_at, state.sla_due_at) == (monday_9 + timedelta(hours=2), monday_9 + timedelta(hours=4))
    with pytest.raises(TransitionError):
        advance(pb, run, SlaCheck("resolve"), monday_9 + timedelta(hours=1))
    [warned] = [
        c for c in advance(pb, run, SlaCheck("resolve"), monday_9 + timedelta(hours=2)) if isinstance(c, Escalate)
    ]
    assert warned.level == 1 and sla(state) == "near_breach"
    [breached] = [
        c for c in advance(pb, run, SlaCheck("resolve"), monday_9 + timedelta(hours=4)) if isinstance(c, Escalate)
    ]
    assert breached.level == 2 and sla(state) == "breached"
    advance(pb, run, EventArrived("resolve", {"type": "com.opsrail.incident.resolved"}), monday_9 + timedelta(hours=5))
    assert sla(state) == "breached" and outcome(run) == "succeeded"


def test_an_sla_met_stops_its_clock() -> None:
    pb = playbook("""
  - id: quick
    action: core.set
    sla: {target: PT1H}
""")
    run = begin(pb)
    succeed(pb, run, "quick", {}, T0 + timedelta(minutes=10))
    assert run.steps["quick"].sla_state == "met"
