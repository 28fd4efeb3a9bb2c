"""A run's state as plain data: the run and a row per step, exactly what the store keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

StepStatus = Literal["pending", "ready", "running", "waiting", "succeeded", "failed", "skipped", "cancelled"]
RunStatus = Literal["running", "paused", "succeeded", "failed", "cancelled"]
WaitReason = Literal["retry", "timer", "event", "approval", "review", "child"]
SlaState = Literal["running", "near_breach", "breached", "met"]

TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "skipped", "cancelled"})


@dataclass(slots=True)
class StepState:
    id: str
    status: StepStatus = "pending"
    attempt: int = 0
    due_at: datetime | None = None
    waiting_for: WaitReason | None = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # A step named as another's fallback, compensation or on_timeout runs only when that happens.
    handler: bool = False
    activated_by: str | None = None
    recovered_by: str | None = None
    # The step's SLA clock, when it has one: warn and due instants on its business calendar, and how it went.
    sla_warn_at: datetime | None = None
    sla_due_at: datetime | None = None
    sla_state: SlaState | None = None
    changed: bool = field(default=False, compare=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(slots=True)
class RunState:
    id: str
    playbook_id: str
    version: int
    status: RunStatus
    input: dict[str, Any]
    steps: dict[str, StepState]
    created_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    changed: bool = field(default=False, compare=False)
    # A run started by another run's `call` step reports back to that step.
    parent: tuple[str, str] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    def view(self) -> dict[str, Any]:
        """What expressions see as ``run`` and ``steps``."""
        return {
            "run": {"id": self.id, "input": self.input, "playbook": self.playbook_id, "version": self.version},
            "steps": {
                s.id: {"status": s.status, "output": s.output, "error": s.error, "attempt": s.attempt}
                for s in self.steps.values()
            },
        }
