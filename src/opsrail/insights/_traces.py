"""A run as process mining sees it: a case (the run) and its events from the engine's run log, in log order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

TERMINAL = frozenset({"step.succeeded", "step.failed", "step.skipped"})
"""Log activities that end a step's attempt."""

STARTS = frozenset({"step.ready", "step.waiting", "task.opened"})
"""Log activities that start a step's work: it was ready to run, began to wait, or opened a task."""

INTERVENTIONS = frozenset(
    {
        "step.retried",
        "decision.overridden",
        "run.migrated",
        "run.paused",
        "task.reassigned",
        "task.escalated",
    }
)
"""Log activities that record a person (or an escalation) changing a run's course: counted, not deviations."""


@dataclass(frozen=True, slots=True)
class TraceEvent:
    step: str | None
    activity: str
    at: datetime
    actor: str | None = None
    by: str | None = None
    """For ``step.activated``: the step whose failure or timeout activated this handler."""


@dataclass(frozen=True, slots=True)
class Trace:
    """One run: its pinned playbook version, status, times, segment and log events (oldest first)."""

    run_id: str
    playbook_id: str
    version: int
    status: str
    created_at: datetime
    finished_at: datetime | None
    events: tuple[TraceEvent, ...] = field(default=())
    segment: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


def step_label(step: str, activity: str) -> str:
    """The activity a process map shows for a step's end: its id, or ``id (failed)``."""
    return step if activity == "step.succeeded" else f"{step} (failed)"


def completions(trace: Trace) -> list[tuple[str, datetime]]:
    """The trace's done work in order: each step that succeeded or failed (skips are no work), as a label and time."""
    return [
        (step_label(event.step, event.activity), event.at)
        for event in trace.events
        if event.step is not None and event.activity in ("step.succeeded", "step.failed")
    ]
