"""What the engine needs from storage; ``opsrail.storage.SqlRunStore`` provides it on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from opsrail.engine._state import RunState
from opsrail.engine._transitions import Command
from opsrail.playbooks import Playbook


@dataclass(frozen=True, slots=True)
class Claimed:
    run_id: str
    step_id: str
    attempt: int
    state_version: int = 0


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An ingested event as the engine reads it, in arrival order."""

    seq: int
    id: str
    source: str
    type: str
    data: Any


class RunStore(Protocol):
    def playbook(self, playbook_id: str, version: int) -> Playbook: ...

    def active_playbooks(self) -> list[Playbook]: ...

    def active_version(self, playbook_id: str) -> int: ...

    def rollout(self, playbook_id: str) -> tuple[int, int | None, int]: ...

    def create_run(self, run: RunState, commands: Sequence[Command], trigger: tuple[str, str] | None) -> bool:
        """Store a new run; False when the same trigger event already started this playbook."""
        ...

    def create_runs(self, started: Sequence[tuple[RunState, Sequence[Command]]]) -> None: ...

    def start_triggered(
        self, started: Sequence[tuple[RunState, Sequence[Command], tuple[str, str]]], cursor: tuple[str, int]
    ) -> set[str]:
        """Store runs started by events (each with its trigger: source and event id) and move the named event
        cursor, in one transaction; a trigger that already started its playbook is left out. Returns the ids
        stored."""
        ...

    def load_run(self, run_id: str) -> tuple[RunState, int]: ...

    def load_runs(self, run_ids: Sequence[str]) -> dict[str, tuple[RunState, int]]: ...

    def save_runs(self, changes: Sequence[tuple[RunState, int, Sequence[Command]]]) -> set[str]:
        """Save several runs in one transaction; returns the ids that conflicted (and were not saved)."""
        ...

    def save_batch(
        self,
        changes: Sequence[tuple[RunState, int, Sequence[Command]]],
        held: Mapping[tuple[str, str], Sequence[object]],
    ) -> tuple[set[str], set[tuple[str, str]]]:
        """Like ``save_runs``, in the same transaction as the writes each (run id, step id) held while it ran
        (``opsrail.engine.hold``). Returns the runs not saved and the steps whose writes were refused and undone;
        a run with such a step is not saved."""
        ...

    def save_run(self, run: RunState, state_version: int, commands: Sequence[Command]) -> bool:
        """Store the run's changes if nobody saved since ``state_version``; False on a conflict."""
        ...

    def claim(self, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Claimed]: ...

    def renew(self, owner: str, claimed: Sequence[Claimed], until: datetime) -> None: ...

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]: ...

    def waiting_for_event(self, limit: int) -> list[tuple[str, str]]: ...

    def children_finished(self, limit: int) -> list[tuple[str, str, str]]: ...

    def run_exists(self, run_id: str) -> bool: ...

    def sla_due(self, now: datetime, limit: int) -> list[tuple[str, str]]: ...

    def events_after(self, cursor: str, limit: int) -> tuple[int, list[LoggedEvent]]: ...

    def move_cursor(self, cursor: str, position: int) -> None: ...
