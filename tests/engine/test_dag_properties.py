"""Property-based tests over random DAG playbooks: every step ends terminal, no step starts before its needs,
skipped branches propagate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from opsrail.engine import Completed, Start, advance, initial_state
from opsrail.playbooks import load_playbook

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@st.composite
def dags(draw: st.DrawFn) -> tuple[str, dict[str, bool], dict[str, bool]]:
    """A playbook text, which steps are guarded off (when false) and which fail (with continue)."""
    count = draw(st.integers(min_value=1, max_value=12))
    lines = ["id: prop", "version: 1", "steps:"]
    guarded: dict[str, bool] = {}
    failing: dict[str, bool] = {}
    for index in range(count):
        step = f"s{index}"
        needs = draw(st.lists(st.integers(0, index - 1), unique=True, max_size=3)) if index else []
        guarded[step] = draw(st.booleans()) and draw(st.booleans())
        failing[step] = draw(st.booleans()) and draw(st.booleans())
        lines.append(f"  - id: {step}")
        if needs:
            lines.append(f"    needs: [{', '.join(f's{n}' for n in needs)}]")
        if guarded[step]:
            lines.append('    when: "false"')
        lines.append("    action: core.set")
        if failing[step]:
            lines.append("    on_failure: continue")
    return "\n".join(lines), guarded, failing


@given(dags())
@settings(max_examples=150, deadline=None)
def test_random_dags_finish_and_respect_their_needs(case: tuple[str, dict[str, bool], dict[str, bool]]) -> None:
    text, guarded, failing = case
    pb = load_playbook(text, "prop.yaml")
    run = initial_state(pb, "run_p", {}, T0)
    advance(pb, run, Start(), T0)
    now = T0
    started: list[str] = []
    for _ in range(200):
        ready = [s for s in run.steps.values() if s.status == "ready"]
        if not ready:
            break
        state = ready[0]
        step = pb.step(state.id)
        # No step starts before every one of its needs has settled.
        assert all(run.steps[n].terminal for n in step.needs)
        started.append(state.id)
        state.status = "running"
        state.attempt += 1
        now += timedelta(seconds=1)
        ok = not failing[state.id]
        advance(
            pb,
            run,
            Completed(state.id, state.attempt, ok=ok, result={}, error=None if ok else "x", retryable=False),
            now,
        )
    assert run.terminal
    assert all(s.terminal for s in run.steps.values())
    for step in pb.steps:
        state = run.steps[step.id]
        if guarded[step.id]:
            assert state.status == "skipped"
        # A step whose need was skipped is skipped too.
        if any(run.steps[n].status == "skipped" for n in step.needs):
            assert state.status == "skipped"
        if state.status in ("succeeded", "failed"):
            assert step.id in started
    assert run.status == "succeeded"  # every failure here continues
