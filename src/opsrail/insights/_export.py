"""A run as an event log's case: one event a step end, with when the step's work started and who ended it.

This is what ``opsrail insights export`` writes (CSV, XES or Parquet) for process-mining tools and for
``opsrail models train next-activity|remaining-time|sla-breach --log``: the same activities the process maps and
variants use (a step that succeeded is its id, one that failed ``id (failed)``; skipped steps did no work).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from opsrail.insights._traces import STARTS, TERMINAL, Trace, step_label


@dataclass(frozen=True, slots=True)
class LogEvent:
    activity: str
    """The step's id, or ``id (failed)``."""
    step: str
    outcome: str
    """``succeeded`` or ``failed``."""
    end: datetime
    start: datetime | None
    """When this attempt's work began: the step became ready, began to wait or opened a task (None if the log does
    not say, e.g. after a retention purge)."""
    resource: str | None
    """Who or what ended the step: the person who decided a task, else the worker or connector that ran it."""
    attempt: int
    """1 for the step's first end in the run, 2 for the second (after a retry or a loop back), and so on."""


def log_events(trace: Trace) -> list[LogEvent]:
    """The trace's step ends in log order, each with the start of its attempt."""
    began: dict[str, datetime] = {}
    ends: dict[str, int] = {}
    found: list[LogEvent] = []
    for event in trace.events:
        step = event.step
        if step is None:
            continue
        if event.activity in STARTS:
            began.setdefault(step, event.at)
        elif event.activity in TERMINAL:
            start = began.pop(step, None)
            if event.activity == "step.skipped":
                continue
            ends[step] = ends.get(step, 0) + 1
            found.append(
                LogEvent(
                    activity=step_label(step, event.activity),
                    step=step,
                    outcome=event.activity.removeprefix("step."),
                    end=event.at,
                    start=start,
                    resource=event.actor,
                    attempt=ends[step],
                )
            )
    return found
