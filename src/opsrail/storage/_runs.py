"""Runs, their steps, human tasks and the run log, on SQLite and PostgreSQL.

Claiming takes ready steps (and running steps whose lease has expired) under a lease: on PostgreSQL with
``FOR UPDATE SKIP LOCKED`` so many workers on many hosts never take the same step, on SQLite inside one
``BEGIN IMMEDIATE`` transaction. Saving a run is optimistic: ``state_version`` must not have moved.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from opsrail.engine import (
    Claimed,
    CloseTasks,
    Command,
    Escalate,
    Log,
    LoggedEvent,
    OpenTask,
    RunState,
    StepState,
)
from opsrail.model import IdFactory, NotFound
from opsrail.playbooks import Playbook, load_playbook
from opsrail.storage._engine import order_event_inserts, write_transaction
from opsrail.storage._held_writes import HeldWriteRefused, apply_held
from opsrail.storage._sqlite_append import sqlite_time_shared
from opsrail.storage._tables import (
    as_utc,
    cursors,
    events,
    playbook_versions,
    playbooks,
    run_log,
    run_steps,
    runs,
    tasks,
)


@lru_cache(maxsize=512)
def _parse(document: str, filename: str) -> Playbook:
    # Published versions never change, so a parsed version can be kept for the life of the process.
    return load_playbook(document, filename, published=True)


class SqlRunStore:
    def __init__(self, engine: sa.Engine, ids: IdFactory) -> None:
        self.engine = engine
        self.ids = ids
        self._postgres = engine.dialect.name == "postgresql"
        # Reads, and writes of one statement, take no transaction on PostgreSQL: under READ COMMITTED each statement
        # sees its own snapshot either way, and BEGIN and ROLLBACK (or COMMIT) were two of its three round trips.
        # Writes of several statements use ``write_transaction``.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT") if self._postgres else engine
        self._playbooks: dict[tuple[str, int], Playbook] = {}

    # -- playbooks -------------------------------------------------------------------------------------

    def playbook(self, playbook_id: str, version: int) -> Playbook:
        # Published versions never change, so each is read from the database once per process.
        cached = self._playbooks.get((playbook_id, version))
        if cached is not None:
            return cached
        with self._autocommit.connect() as conn:
            row = conn.execute(
                sa.select(playbook_versions.c.document, playbook_versions.c.filename).where(
                    playbook_versions.c.playbook_id == playbook_id, playbook_versions.c.version == version
                )
            ).first()
        if row is None:
            raise NotFound(f"playbook {playbook_id} has no version {version}", hint="see `opsrail playbooks list`")
        parsed = _parse(row[0], row[1] or f"{playbook_id}@{version}")
        self._playbooks[(playbook_id, version)] = parsed
        return parsed

    def active_version(self, playbook_id: str) -> int:
        with self._autocommit.connect() as conn:
            version = conn.execute(
                sa.select(playbooks.c.active_version).where(playbooks.c.playbook_id == playbook_id)
            ).scalar()
        if version is None:
            raise NotFound(
                f"playbook {playbook_id!r} has no active version", hint="publish it with `opsrail playbooks publish`"
            )
        return int(version)

    def active_playbooks(self) -> list[Playbook]:
        with self._autocommit.connect() as conn:
            rows = conn.execute(_ACTIVE_PLAYBOOKS).all()
        return [self.playbook(pid, version) for pid, version in rows]

    def publish(
        self, playbook: Playbook, document: str, filename: str, by: str | None, now: datetime, activate: bool = True
    ) -> bool:
        """Store a new version and (with ``activate``) make it active; False if that version exists already (with
        other text). A playbook's first version published without activating leaves it with no active version."""
        with write_transaction(self.engine) as conn:
            existing = conn.execute(
                sa.select(playbook_versions.c.document).where(
                    playbook_versions.c.playbook_id == playbook.id, playbook_versions.c.version == playbook.version
                )
            ).scalar()
            if existing is not None:
                return bool(existing == document)
            conn.execute(
                playbook_versions.insert().values(
                    playbook_id=playbook.id,
                    version=playbook.version,
                    document=document,
                    filename=filename,
                    published_at=now,
                    published_by=by,
                )
            )
            active = {"active_version": playbook.version} if activate else {}
            updated = conn.execute(
                playbooks.update().where(playbooks.c.playbook_id == playbook.id).values(updated_at=now, **active)
            )
            if updated.rowcount == 0:
                conn.execute(
                    playbooks.insert().values(
                        playbook_id=playbook.id,
                        active_version=playbook.version if activate else None,
                        canary_percent=0,
                        updated_at=now,
                    )
                )
        return True

    def activate(self, playbook_id: str, version: int, now: datetime, canary_percent: int | None = None) -> None:
        """Make ``version`` the active one, or (with ``canary_percent``) the canary that gets that share of new runs."""
        self.playbook(playbook_id, version)
        if canary_percent is None:
            values: dict[str, Any] = {"active_version": version, "canary_version": None, "canary_percent": 0}
        elif canary_percent == 0:
            values = {"canary_version": None, "canary_percent": 0}
        else:
            values = {"canary_version": version, "canary_percent": canary_percent}
        with write_transaction(self.engine) as conn:
            conn.execute(
                playbooks.update().where(playbooks.c.playbook_id == playbook_id).values(updated_at=now, **values)
            )

    def rollout(self, playbook_id: str) -> tuple[int, int | None, int]:
        """(active version, canary version or None, canary percent)."""
        with self._autocommit.connect() as conn:
            row = conn.execute(_ROLLOUT, {"playbook_id": playbook_id}).first()
        if row is None or row[0] is None:
            raise NotFound(
                f"playbook {playbook_id!r} has no active version", hint="publish it with `opsrail playbooks publish`"
            )
        return int(row[0]), row[1], int(row[2] or 0)

    def list_playbooks(self) -> list[dict[str, Any]]:
        with self._autocommit.connect() as conn:
            rows = conn.execute(
                sa.select(
                    playbook_versions.c.playbook_id,
                    playbook_versions.c.version,
                    playbook_versions.c.published_at,
                    playbooks.c.active_version,
                    playbooks.c.canary_version,
                    playbooks.c.canary_percent,
                )
                .join(playbooks, playbooks.c.playbook_id == playbook_versions.c.playbook_id)
                .order_by(playbook_versions.c.playbook_id, playbook_versions.c.version)
            ).all()
        return [
            {
                "id": pid,
                "version": v,
                "published_at": as_utc(at),
                "active": v == active,
                "canary_percent": percent if v == canary else 0,
            }
            for pid, v, at, active, canary, percent in rows
        ]

    # -- runs ------------------------------------------------------------------------------------------

    def create_runs(self, started: Sequence[tuple[RunState, Sequence[Command]]]) -> None:
        """Store many new runs (started on demand, without a trigger) in one transaction."""
        if not started:
            return
        with write_transaction(self.engine) as conn:
            self._insert_runs(conn, [(run, commands, None) for run, commands in started])

    def start_triggered(
        self, started: Sequence[tuple[RunState, Sequence[Command], tuple[str, str]]], cursor: tuple[str, int]
    ) -> set[str]:
        """Store the runs a batch of events started and move the event cursor past the batch, in one transaction.

        A run whose trigger (its playbook, the event's source and id) already started one is left out; returns
        the ids of the runs stored.
        """
        if not started and self._postgres:
            # Only the cursor moves: one statement, atomic on its own, without BEGIN and COMMIT round trips.
            with self._autocommit.connect() as conn:
                self._move_cursor(conn, *cursor)
            return set()
        with write_transaction(self.engine) as conn:
            fresh: list[tuple[RunState, Sequence[Command], tuple[str, str] | None]] = []
            if started:
                keys = [(run.playbook_id, trigger[0], trigger[1]) for run, _, trigger in started]
                by_origin: dict[tuple[str, str], list[str]] = {}
                for playbook_id, source, event_id in keys:
                    by_origin.setdefault((playbook_id, source), []).append(event_id)
                seen: set[tuple[str, str, str]] = set()
                # By playbook and source, then a list of event ids: the unique index answers it (a row-value IN
                # list of triples would walk the whole table on SQLite).
                for (playbook_id, source), event_ids in by_origin.items():
                    for begin in range(0, len(event_ids), 500):
                        found = conn.execute(
                            _TRIGGERS_SEEN,
                            {"playbook_id": playbook_id, "source": source, "event_ids": event_ids[begin : begin + 500]},
                        )
                        seen.update((playbook_id, source, row[0]) for row in found)
                for (run, commands, trigger), key in zip(started, keys, strict=True):
                    if key not in seen:
                        seen.add(key)
                        fresh.append((run, commands, trigger))
                self._insert_runs(conn, fresh)
            self._move_cursor(conn, *cursor)
        return {run.id for run, _, _ in fresh}

    def _insert_runs(
        self, conn: sa.Connection, started: Sequence[tuple[RunState, Sequence[Command], tuple[str, str] | None]]
    ) -> None:
        if not started:
            return
        conn.execute(
            runs.insert(),
            [
                {
                    "id": run.id,
                    "playbook_id": run.playbook_id,
                    "version": run.version,
                    "status": run.status,
                    "input": run.input,
                    "trigger_source": trigger[0] if trigger else None,
                    "trigger_event_id": trigger[1] if trigger else None,
                    "created_at": run.created_at,
                    "updated_at": run.created_at,
                    "finished_at": run.finished_at,
                    "error": run.error,
                    "state_version": 1,
                    "parent_run_id": run.parent[0] if run.parent else None,
                    "parent_step_id": run.parent[1] if run.parent else None,
                }
                for run, _, trigger in started
            ],
        )
        conn.execute(run_steps.insert(), [_step_row(run.id, s) for run, _, _ in started for s in run.steps.values()])
        logs = [_log_row(c) for _, commands, _ in started for c in commands if isinstance(c, Log)]
        if logs:
            conn.execute(run_log.insert(), logs)
        for run, commands, _ in started:
            self._apply(conn, run, [c for c in commands if not isinstance(c, Log)], _latest(commands))

    def create_run(self, run: RunState, commands: Sequence[Command], trigger: tuple[str, str] | None) -> bool:
        with write_transaction(self.engine) as conn:
            if trigger is not None:
                seen = conn.execute(
                    sa.select(runs.c.id).where(
                        runs.c.playbook_id == run.playbook_id,
                        runs.c.trigger_source == trigger[0],
                        runs.c.trigger_event_id == trigger[1],
                    )
                ).first()
                if seen is not None:
                    return False
            conn.execute(
                runs.insert().values(
                    id=run.id,
                    playbook_id=run.playbook_id,
                    version=run.version,
                    status=run.status,
                    input=run.input,
                    trigger_source=trigger[0] if trigger else None,
                    trigger_event_id=trigger[1] if trigger else None,
                    created_at=run.created_at,
                    updated_at=run.created_at,
                    finished_at=run.finished_at,
                    error=run.error,
                    state_version=1,
                    parent_run_id=run.parent[0] if run.parent else None,
                    parent_step_id=run.parent[1] if run.parent else None,
                )
            )
            conn.execute(run_steps.insert(), [_step_row(run.id, s) for s in run.steps.values()])
            self._apply(conn, run, commands)
        return True

    def load_runs(self, run_ids: Sequence[str]) -> dict[str, tuple[RunState, int]]:
        """Several runs in two queries; ids that do not exist are left out."""
        found: dict[str, tuple[RunState, int]] = {}
        unique = list(dict.fromkeys(run_ids))
        by_id, steps_by_run = _BY_IDS_POSTGRESQL if self._postgres else _BY_IDS
        with self._autocommit.connect() as conn:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                rows = conn.execute(by_id, {"ids": chunk}).mappings().all()
                steps: dict[str, dict[str, StepState]] = {}
                for s in conn.execute(steps_by_run, {"ids": chunk}).mappings():
                    steps.setdefault(s["run_id"], {})[s["step_id"]] = _step_state(s)
                for row in rows:
                    found[row["id"]] = (_run_state(row, steps.get(row["id"], {})), int(row["state_version"]))
        return found

    def load_run(self, run_id: str) -> tuple[RunState, int]:
        with self._autocommit.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                raise NotFound(
                    f"no run {run_id!r}",
                    hint="list runs with `opsrail runs list`; runs deleted by retention are in its archive files",
                )
            steps = conn.execute(sa.select(run_steps).where(run_steps.c.run_id == run_id)).mappings().all()
        return _run_state(row, {s["step_id"]: _step_state(s) for s in steps}), int(row["state_version"])

    def save_runs(self, changes: Sequence[tuple[RunState, int, Sequence[Command]]]) -> set[str]:
        """Save several runs in one transaction; returns the ids that conflicted (and were not saved)."""
        if not changes:
            return set()
        if self.engine.dialect.supports_sane_multi_rowcount:
            try:
                with write_transaction(self.engine) as conn:
                    self._save_all(conn, changes)
                return set()
            except _SomeoneElseSaved:
                pass  # rolled back; now run by run, so that the others still land
        conflicted: set[str] = set()
        with write_transaction(self.engine) as conn:
            for run, state_version, commands in changes:
                if not self._save(conn, run, state_version, commands):
                    conflicted.add(run.id)
        return conflicted

    def save_batch(
        self,
        changes: Sequence[tuple[RunState, int, Sequence[Command]]],
        held: Mapping[tuple[str, str], Sequence[object]],
    ) -> tuple[set[str], set[tuple[str, str]]]:
        """Apply the steps' held writes and save the runs, in one transaction.

        Returns the runs that were not saved (someone else saved them meanwhile, or one of their steps had its
        writes refused) and the steps whose writes were refused and undone. First everything at once; if anything
        is refused or any run moved, it is rolled back and done again with each step's writes in a savepoint and
        the runs saved one by one, so that the others still land.
        """
        if not any(held.values()):
            return self.save_runs(changes), set()
        emits = any(getattr(write, "emits_events", False) for writes in held.values() for write in writes)
        if self.engine.dialect.supports_sane_multi_rowcount and changes:
            # A refusal or a moved run rolls everything back; then step by step and run by run, below.
            with contextlib.suppress(_SomeoneElseSaved, HeldWriteRefused):
                with write_transaction(self.engine) as conn:
                    if emits:
                        order_event_inserts(conn)
                    apply_held(conn, held, isolate=False)
                    self._save_all(conn, changes)
                return set(), set()
        with write_transaction(self.engine) as conn:
            if emits:
                order_event_inserts(conn)
            refused = apply_held(conn, held, isolate=True)
            conflicted = {run_id for run_id, _ in refused}
            for run, state_version, commands in changes:
                if run.id not in conflicted and not self._save(conn, run, state_version, commands):
                    conflicted.add(run.id)
        return conflicted, refused

    def _save_all(self, conn: sa.Connection, changes: Sequence[tuple[RunState, int, Sequence[Command]]]) -> None:
        """The whole batch in three statements through the driver, inside SQLAlchemy's transaction; raises
        _SomeoneElseSaved if any run moved meanwhile.

        SQLAlchemy's per-row parameter processing costs more than the database's own work for these small rows.
        SQLite takes the rows with ``executemany`` (times as SQLAlchemy's SQLite type writes them); PostgreSQL takes
        each statement's columns as binary arrays (``_pg_save``), one statement and one round trip for all rows.
        """
        rows = _batch_rows(changes, sqlite_time_shared if not self._postgres else _as_is)
        with _driver_cursor(conn, self._postgres) as cursor:
            if self._postgres:
                from opsrail.storage import _pg_save

                moved = _pg_save.save(cursor, *rows)
            else:
                run_rows, step_rows, log_rows = rows
                cursor.executemany(_RUN_UPDATE_SQLITE, run_rows)
                moved = cursor.rowcount
                if moved == len(run_rows):  # else the batch rolls back: no use writing its steps and log
                    cursor.executemany(_STEP_UPDATE_SQLITE, step_rows)
                    cursor.executemany(_LOG_INSERT_SQLITE, log_rows)
        if moved != len(changes):
            raise _SomeoneElseSaved
        for run, _, commands in changes:
            self._apply(conn, run, [c for c in commands if not isinstance(c, Log)], _latest(commands))

    def migrate_run(
        self, run: RunState, state_version: int, renamed: dict[str, str], commands: Sequence[Command]
    ) -> bool:
        """Put a run on another version: its step rows are replaced and open tasks follow renamed steps."""
        with write_transaction(self.engine) as conn:
            moved = conn.execute(
                runs.update()
                .where(runs.c.id == run.id, runs.c.state_version == state_version)
                .values(version=run.version, state_version=state_version + 1)
            )
            if moved.rowcount != 1:
                return False
            conn.execute(run_steps.delete().where(run_steps.c.run_id == run.id))
            conn.execute(run_steps.insert(), [_step_row(run.id, s) for s in run.steps.values()])
            for old, new in renamed.items():
                conn.execute(tasks.update().where(tasks.c.run_id == run.id, tasks.c.step_id == old).values(step_id=new))
            self._apply(conn, run, commands)
        return True

    def save_run(self, run: RunState, state_version: int, commands: Sequence[Command]) -> bool:
        with write_transaction(self.engine) as conn:
            return self._save(conn, run, state_version, commands)

    def _save(self, conn: sa.Connection, run: RunState, state_version: int, commands: Sequence[Command]) -> bool:
        moved = conn.execute(_RUN_UPDATE, _run_values(run, state_version, commands))
        if moved.rowcount != 1:
            return False
        changed = [
            {**_step_values(step), "b_run_id": run.id, "b_step_id": step.id}
            for step in run.steps.values()
            if step.changed
        ]
        if changed:
            conn.execute(_STEP_UPDATE, changed)
        self._apply(conn, run, commands)
        return True

    def _apply(
        self, conn: sa.Connection, run: RunState, commands: Sequence[Command], at: datetime | None = None
    ) -> None:
        """Persist what commands ask for: log entries, opened and closed tasks (at ``at``, or the latest log time)."""
        at = at or _latest(commands)
        logs = [_log_row(c) for c in commands if isinstance(c, Log)]
        if logs:
            conn.execute(run_log.insert(), logs)
        for command in commands:
            if isinstance(command, OpenTask):
                conn.execute(
                    tasks.insert().values(
                        id=self.ids.new("task"),
                        run_id=command.run_id,
                        step_id=command.step_id,
                        kind=command.kind,
                        title=command.title,
                        roles=list(command.roles),
                        required=command.count,
                        status="open",
                        due_at=command.due_at,
                        context=_jsonable(command.context),
                        decisions=[],
                        created_at=at,
                        require_roles=list(command.require) or None,
                        escalate_at=command.escalate_at,
                        escalate_to=list(command.escalate_to) or None,
                        requested_by=command.requested_by,
                    )
                )
            elif isinstance(command, Escalate):
                self._publish_escalation(conn, command)
            elif isinstance(command, CloseTasks):
                conn.execute(
                    tasks.update()
                    .where(
                        tasks.c.run_id == command.run_id, tasks.c.step_id == command.step_id, tasks.c.status == "open"
                    )
                    .values(status="closed", closed_at=at)
                )

    def _publish_escalation(self, conn: sa.Connection, command: Escalate) -> None:
        """An SLA escalation becomes an ingested canonical event, so playbooks can be triggered by it."""
        kind = "breached" if command.level == 2 else "near_breach"
        data = {
            "id": f"sla:{command.run_id}:{command.step_id}",
            "level": command.level,
            "reason": command.reason,
            "status": "open",
            "opened_at": command.at.isoformat(),
            "attributes": {
                "run_id": command.run_id,
                "step_id": command.step_id,
                "playbook": command.playbook_id,
                "sla": kind,
                "due_at": command.due_at.isoformat(),
            },
        }
        insert = (sqlite_insert if not self._postgres else postgresql_insert)(events).values(
            source="opsrail/engine",
            event_id=f"{command.run_id}:{command.step_id}:sla:{kind}",
            type="com.opsrail.escalation.opened",
            subject=data["id"],
            time=command.at,
            received_at=command.at,
            kind="escalation",
            object_id=data["id"],
            channel="engine",
            attributes={},
            data=data,
        )
        conn.execute(insert.on_conflict_do_nothing(index_elements=["source", "event_id"]))

    # -- work ------------------------------------------------------------------------------------------

    def claim(self, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Claimed]:
        until = now + timedelta(seconds=lease_seconds)
        with write_transaction(self.engine) as conn:
            rows = self._planned(conn, _CLAIMABLE_PG if self._postgres else _CLAIMABLE, {"now": now, "limit": limit})
            if len(rows) == limit:
                # The limit may have cut the last run's ready steps in two. Its steps are left to the next claim:
                # a run whose steps two workers execute is saved by both, and the second save conflicts, which
                # sends that worker's whole batch down the slow path, run by run.
                kept = [r for r in rows if r[0] != rows[-1][0]]
                rows = kept or rows
            claimed = [Claimed(r[0], r[1], r[2] + 1, r[3]) for r in rows]
            if claimed:
                # Through the driver, as the batch save does: SQLAlchemy's per-row parameter processing costs more
                # than the update. PostgreSQL takes every step in one statement over arrays; SQLite row by primary
                # key (a row-value IN list of (run, step) pairs would walk the whole table there).
                with _driver_cursor(conn, self._postgres) as cursor:
                    if self._postgres:
                        from opsrail.storage import _pg_save

                        _pg_save.take(cursor, owner, until, now, [(c.run_id, c.step_id) for c in claimed])
                    else:
                        taken = (owner, sqlite_time_shared(until), sqlite_time_shared(now))
                        cursor.executemany(_TAKE_SQLITE, [(*taken, c.run_id, c.step_id) for c in claimed])
        return claimed

    def _planned(self, conn: sa.Connection, statement: sa.Select[Any], params: dict[str, Any]) -> Sequence[Any]:
        """Run one of the worker's polling queries (claims, timers, SLA clocks, ended child runs, steps waiting for
        an event) planned for its values on every run.

        psycopg prepares a statement after its fifth run on a connection, and PostgreSQL may then switch it to one
        generic plan for any values. For the claim (a time bound, a row limit) that plan took three times as long as
        a plan for the values at hand, so on PostgreSQL these queries go to the driver unprepared, as they ran before
        reads stopped ending in the ROLLBACK that made psycopg drop its prepared statements.
        """
        if not self._postgres:
            return conn.execute(statement, params).all()
        with _driver_cursor(conn, postgres=True) as cursor:
            cursor.execute(_pg_text(statement, conn.dialect), params, prepare=False)
            return list(cursor.fetchall())

    def renew(self, owner: str, claimed: Sequence[Claimed], until: datetime) -> None:
        with write_transaction(self.engine) as conn:
            for item in claimed:
                conn.execute(
                    run_steps.update()
                    .where(
                        run_steps.c.run_id == item.run_id,
                        run_steps.c.step_id == item.step_id,
                        run_steps.c.lease_owner == owner,
                    )
                    .values(lease_expires_at=until)
                )

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        with self._autocommit.connect() as conn:
            rows = self._planned(conn, _DUE, {"now": now, "limit": limit})
        return [(r[0], r[1]) for r in rows]

    def sla_due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """Steps whose SLA clock has passed its warning or its target and was not yet told so."""
        with self._autocommit.connect() as conn:
            rows = self._planned(conn, _SLA_DUE, {"now": now, "limit": limit})
        return [(r[0], r[1]) for r in rows]

    def children_finished(self, limit: int) -> list[tuple[str, str, str]]:
        """(parent run, parent step, child run) for call steps still waiting on a child that has ended."""
        with self._autocommit.connect() as conn:
            rows = self._planned(conn, _CHILDREN_FINISHED, {"limit": limit})
        return [(r[0], r[1], r[2]) for r in rows]

    def run_exists(self, run_id: str) -> bool:
        with self._autocommit.connect() as conn:
            return conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is not None

    def waiting_for_event(self, limit: int) -> list[tuple[str, str]]:
        with self._autocommit.connect() as conn:
            rows = self._planned(conn, _WAITING_FOR_EVENT, {"limit": limit})
        return [(r[0], r[1]) for r in rows]

    def events_after(self, cursor: str, limit: int) -> tuple[int, list[LoggedEvent]]:
        with self._autocommit.connect() as conn:
            # One statement reads the cursor and the events after it; only an empty batch asks for the position.
            rows = conn.execute(_EVENTS_AFTER, {"name": cursor, "limit": limit}).all()
            position = rows[0][0] if rows else conn.execute(_CURSOR, {"name": cursor}).scalar() or 0
        return int(position), [LoggedEvent(r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def move_cursor(self, cursor: str, position: int) -> None:
        with write_transaction(self.engine) as conn:
            self._move_cursor(conn, cursor, position)

    @staticmethod
    def _move_cursor(conn: sa.Connection, cursor: str, position: int) -> None:
        """Move the cursor forward to ``position``; never back. Workers in two processes may read the same batch
        of events; the one that saves last must not send the cursor back behind what the other has consumed."""
        moved = conn.execute(_MOVE_CURSOR, {"b_name": cursor, "position": position})
        if moved.rowcount == 0 and conn.execute(_CURSOR, {"name": cursor}).first() is None:
            conn.execute(cursors.insert().values(name=cursor, position=position))

    # -- reading -----------------------------------------------------------------------------------------

    def list_runs(self, status: str | None, playbook_id: str | None, limit: int) -> list[dict[str, Any]]:
        query = sa.select(runs).order_by(runs.c.created_at.desc()).limit(limit)
        if status:
            query = query.where(runs.c.status == status)
        if playbook_id:
            query = query.where(runs.c.playbook_id == playbook_id)
        with self._autocommit.connect() as conn:
            return [_run_dict(r) for r in conn.execute(query).mappings()]

    def log_after(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """Run-log entries after ``seq``, oldest first: the feed of the change stream."""
        with self._autocommit.connect() as conn:
            rows = (
                conn.execute(sa.select(run_log).where(run_log.c.seq > seq).order_by(run_log.c.seq).limit(limit))
                .mappings()
                .all()
            )
        return [
            {
                "seq": r["seq"],
                "run_id": r["run_id"],
                "step": r["step_id"],
                "activity": r["activity"],
                "at": as_utc(r["at"]),
                "attributes": r["attributes"],
            }
            for r in rows
        ]

    def timeline(self, run_id: str) -> list[dict[str, Any]]:
        with self._autocommit.connect() as conn:
            rows = (
                conn.execute(sa.select(run_log).where(run_log.c.run_id == run_id).order_by(run_log.c.seq))
                .mappings()
                .all()
            )
        return [
            {"at": as_utc(r["at"]), "step": r["step_id"], "activity": r["activity"], "attributes": r["attributes"]}
            for r in rows
        ]

    def open_tasks(
        self, role: str | None, limit: int, *, assignee: str | None = None, roles: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Open tasks, earliest due first; with ``assignee``, those assigned to that person or, unassigned,
        asking for one of ``roles``."""
        query = sa.select(tasks).where(tasks.c.status == "open")
        if assignee is not None and not roles:
            query = query.where(tasks.c.assignee == assignee)
        # Tasks without a due time sort last on both databases.
        query = query.order_by(tasks.c.due_at.is_(None), tasks.c.due_at, tasks.c.created_at)
        with self._autocommit.connect() as conn:
            rows = conn.execute(query).mappings().all()
        found = [_task_dict(r) for r in rows]
        if role is not None:
            found = [t for t in found if role in t["roles"]]
        if assignee is not None and roles:
            found = [
                t
                for t in found
                if t["assignee"] == assignee or (t["assignee"] is None and set(roles) & set(t["roles"]))
            ]
        return found[:limit]

    def assign_task(self, task_id: str, assignee: str | None, *, actor: str, at: datetime, comment: str | None) -> None:
        """Set a task's assignee and log it in the run's event log, in one transaction."""
        with write_transaction(self.engine) as conn:
            row = conn.execute(sa.select(tasks.c.run_id, tasks.c.step_id).where(tasks.c.id == task_id)).first()
            if row is None:
                raise NotFound(f"no task {task_id!r}", hint="list open tasks with `opsrail tasks list`")
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(assignee=assignee))
            conn.execute(
                run_log.insert().values(
                    run_id=row[0],
                    step_id=row[1],
                    activity="task.reassigned",
                    at=at,
                    actor=actor,
                    attributes={"task": task_id, "to": assignee, "comment": comment},
                )
            )

    def task(self, task_id: str) -> dict[str, Any]:
        with self._autocommit.connect() as conn:
            row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).mappings().first()
        if row is None:
            raise NotFound(f"no task {task_id!r}", hint="list open tasks with `opsrail tasks list`")
        return _task_dict(row)

    def record_decision(
        self,
        task_id: str,
        decision: dict[str, Any],
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Append a decision; ``check(task)`` runs on the locked row first and may refuse by raising.

        The row lock (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite) makes concurrent approvals of one
        task take turns, so a count or a separation-of-duties rule cannot be raced past.
        """
        with write_transaction(self.engine) as conn:
            row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id).with_for_update()).mappings().first()
            if row is None:
                raise NotFound(f"no task {task_id!r}", hint="list open tasks with `opsrail tasks list`")
            if check is not None:
                check(_task_dict(row))
            updated = [*(row["decisions"] or []), _jsonable(decision)]
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(decisions=updated))
        return updated

    def escalate_due(self, at: datetime) -> list[dict[str, Any]]:
        """Open tasks whose escalation time has come: their escalation roles join their roles, once."""
        escalated = []
        with write_transaction(self.engine) as conn:
            rows = (
                conn.execute(
                    sa.select(tasks)
                    .where(tasks.c.status == "open", tasks.c.escalated_at.is_(None), tasks.c.escalate_at <= at)
                    .with_for_update()
                )
                .mappings()
                .all()
            )
            for row in rows:
                roles = list(dict.fromkeys([*row["roles"], *(row["escalate_to"] or [])]))
                conn.execute(tasks.update().where(tasks.c.id == row["id"]).values(roles=roles, escalated_at=at))
                conn.execute(
                    run_log.insert().values(
                        run_id=row["run_id"],
                        step_id=row["step_id"],
                        activity="task.escalated",
                        at=at,
                        actor=None,
                        attributes={"task": row["id"], "to": row["escalate_to"], "roles": roles},
                    )
                )
                escalated.append({**_task_dict(row), "roles": roles, "escalated_at": at})
        return escalated


@lru_cache(maxsize=16)
def _pg_text(statement: sa.Select[Any], dialect: sa.Dialect) -> str:
    """A statement compiled once for the driver's own parameter style."""
    return str(statement.compile(dialect=dialect))


def _word(value: str) -> sa.ColumnElement[str]:
    """A status or kind written into the statement's text rather than bound.

    The worker's polling queries go to the driver as text compiled once (``SqlRunStore._planned``), and the call
    binds only its own values (a time, a limit); their constants must therefore be part of the text.
    """
    assert value.replace("_", "").isalpha()
    return sa.literal_column(f"'{value}'", sa.String)


# Statements built once: SQLAlchemy then reuses their compiled form instead of rebuilding them per call.
_CLAIMABLE = (
    sa.select(run_steps.c.run_id, run_steps.c.step_id, run_steps.c.attempt, runs.c.state_version)
    .join(runs, runs.c.id == run_steps.c.run_id)
    .where(
        sa.or_(
            run_steps.c.status == _word("ready"),
            sa.and_(run_steps.c.status == _word("running"), run_steps.c.lease_expires_at < sa.bindparam("now")),
        ),
        runs.c.status == _word("running"),
    )
    .limit(sa.bindparam("limit"))
)
_CLAIMABLE_PG = _CLAIMABLE.with_for_update(of=run_steps, skip_locked=True)
_TAKE_SQLITE = (
    "UPDATE run_steps SET status = 'running', attempt = attempt + 1, lease_owner = ?, lease_expires_at = ?, "
    "started_at = coalesce(started_at, ?) WHERE run_id = ? AND step_id = ?"
)
_TRIGGERS_SEEN = sa.select(runs.c.trigger_event_id).where(
    runs.c.playbook_id == sa.bindparam("playbook_id"),
    runs.c.trigger_source == sa.bindparam("source"),
    runs.c.trigger_event_id.in_(sa.bindparam("event_ids", expanding=True)),
)
_ROLLOUT = sa.select(playbooks.c.active_version, playbooks.c.canary_version, playbooks.c.canary_percent).where(
    playbooks.c.playbook_id == sa.bindparam("playbook_id")
)
_MOVE_CURSOR = (
    cursors.update()
    .where(cursors.c.name == sa.bindparam("b_name"), cursors.c.position < sa.bindparam("position"))
    .values(position=sa.bindparam("position"))
)
_CURSOR = sa.select(cursors.c.position).where(cursors.c.name == sa.bindparam("name"))
_POSITION = sa.func.coalesce(_CURSOR.scalar_subquery(), 0)
_EVENTS_AFTER = (
    sa.select(_POSITION, events.c.seq, events.c.event_id, events.c.source, events.c.type, events.c.data)
    .where(events.c.seq > _POSITION)
    .order_by(events.c.seq)
    .limit(sa.bindparam("limit"))
)
# The worker's housekeeping queries, built once: building them per call (the alias above all) cost more CPU than
# running them.
_NOW = sa.bindparam("now", type_=run_steps.c.due_at.type)
_DUE = (
    sa.select(run_steps.c.run_id, run_steps.c.step_id)
    .join(runs, runs.c.id == run_steps.c.run_id)
    .where(run_steps.c.status == _word("waiting"), run_steps.c.due_at <= _NOW, runs.c.status == _word("running"))
    .limit(sa.bindparam("limit"))
)
_SLA_DUE = (
    sa.select(run_steps.c.run_id, run_steps.c.step_id)
    .join(runs, runs.c.id == run_steps.c.run_id)
    .where(
        run_steps.c.status.not_in([_word("succeeded"), _word("failed"), _word("skipped"), _word("cancelled")]),
        sa.or_(
            sa.and_(run_steps.c.sla_state == _word("running"), run_steps.c.sla_warn_at <= _NOW),
            sa.and_(run_steps.c.sla_state == _word("near_breach"), run_steps.c.sla_due_at <= _NOW),
        ),
        runs.c.status == _word("running"),
    )
    .limit(sa.bindparam("limit"))
)
_PARENT_STEP = run_steps.alias("parent_step")
_CHILDREN_FINISHED = (
    sa.select(runs.c.parent_run_id, runs.c.parent_step_id, runs.c.id)
    .join(
        _PARENT_STEP,
        sa.and_(_PARENT_STEP.c.run_id == runs.c.parent_run_id, _PARENT_STEP.c.step_id == runs.c.parent_step_id),
    )
    .where(
        runs.c.parent_run_id.is_not(None),
        runs.c.status.in_([_word("succeeded"), _word("failed"), _word("cancelled")]),
        _PARENT_STEP.c.status == _word("waiting"),
        _PARENT_STEP.c.waiting_for == _word("child"),
    )
    .limit(sa.bindparam("limit"))
)
_WAITING_FOR_EVENT = (
    sa.select(run_steps.c.run_id, run_steps.c.step_id)
    .where(run_steps.c.status == _word("waiting"), run_steps.c.waiting_for == _word("event"))
    .limit(sa.bindparam("limit"))
)
_ACTIVE_PLAYBOOKS = sa.select(playbooks.c.playbook_id, playbooks.c.active_version).where(
    playbooks.c.active_version.is_not(None)
)
# Runs and their steps by id. SQLite gets an IN list; PostgreSQL one array parameter, so the statement's text is
# the same for any number of ids (rendered once, and prepared by psycopg like any other repeated statement).
_IDS: sa.BindParameter[str] = sa.bindparam("ids", expanding=True)
_BY_IDS = (sa.select(runs).where(runs.c.id.in_(_IDS)), sa.select(run_steps).where(run_steps.c.run_id.in_(_IDS)))
_ID_ARRAY = sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.String)))
_BY_IDS_POSTGRESQL = (
    sa.select(runs).where(runs.c.id == _ID_ARRAY),
    sa.select(run_steps).where(run_steps.c.run_id == _ID_ARRAY),
)
_RUN_UPDATE = (
    runs.update()
    .where(runs.c.id == sa.bindparam("b_id"), runs.c.state_version == sa.bindparam("b_version"))
    .values(
        status=sa.bindparam("b_status"),
        error=sa.bindparam("b_error"),
        finished_at=sa.bindparam("b_finished_at"),
        updated_at=sa.bindparam("b_updated_at"),
        state_version=sa.bindparam("b_next"),
    )
)
_STEP_COLUMNS = (
    "sla_warn_at",
    "sla_due_at",
    "sla_state",
    "status",
    "attempt",
    "due_at",
    "waiting_for",
    "output",
    "error",
    "started_at",
    "finished_at",
    "handler",
    "activated_by",
    "recovered_by",
)
_STEP_UPDATE = (
    run_steps.update()
    .where(run_steps.c.run_id == sa.bindparam("b_run_id"), run_steps.c.step_id == sa.bindparam("b_step_id"))
    .values({**{c: sa.bindparam(c) for c in _STEP_COLUMNS}, "lease_owner": None, "lease_expires_at": None})
)


class _SomeoneElseSaved(Exception):
    """A run in a batch was saved by another worker since it was loaded."""


@contextlib.contextmanager
def _driver_cursor(conn: sa.Connection, postgres: bool) -> Iterator[Any]:
    """A cursor of the driver, inside SQLAlchemy's transaction on ``conn``. The driver's errors are raised as
    SQLAlchemy raises them elsewhere, so callers handle one family of errors."""
    base: type[Exception] = sqlite3.Error
    if postgres:
        import psycopg  # the optional `postgres` extra: only when PostgreSQL is used

        base = psycopg.Error
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    except base as exc:
        raise sa.exc.DBAPIError.instance(None, None, exc, base) from exc
    finally:
        cursor.close()


_RUN_UPDATE_SQLITE = (
    "UPDATE runs SET status = ?, error = ?, finished_at = ?, updated_at = ?, state_version = ? "
    "WHERE id = ? AND state_version = ?"
)
_STEP_UPDATE_SQLITE = (
    "UPDATE run_steps SET status = ?, attempt = ?, due_at = ?, waiting_for = ?, output = ?, error = ?, "
    "started_at = ?, finished_at = ?, handler = ?, activated_by = ?, recovered_by = ?, sla_warn_at = ?, "
    "sla_due_at = ?, sla_state = ?, lease_owner = NULL, lease_expires_at = NULL "
    "WHERE run_id = ? AND step_id = ?"
)
_LOG_INSERT_SQLITE = "INSERT INTO run_log (run_id, step_id, activity, at, actor, attributes) VALUES (?, ?, ?, ?, ?, ?)"


def _as_is(value: datetime | None) -> datetime | None:
    return value


def _batch_rows(
    changes: Sequence[tuple[RunState, int, Sequence[Command]]], time: Callable[[datetime | None], Any]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A batch's run updates, step updates and log inserts as rows, in the column order of the statements above
    and of ``_pg_save``; ``time`` writes each timestamp (SQLite's text, or the ``datetime`` itself)."""
    run_rows = [
        (
            run.status,
            run.error,
            time(run.finished_at),
            time(_latest(commands) or run.created_at),
            version + 1,
            run.id,
            version,
        )
        for run, version, commands in changes
    ]
    step_rows = [
        (
            step.status,
            step.attempt,
            time(step.due_at),
            step.waiting_for,
            _json_text(step.output),
            step.error,
            time(step.started_at),
            time(step.finished_at),
            step.handler,
            step.activated_by,
            step.recovered_by,
            time(step.sla_warn_at),
            time(step.sla_due_at),
            step.sla_state,
            run.id,
            step.id,
        )
        for run, _, _ in changes
        for step in run.steps.values()
        if step.changed
    ]
    log_rows = [
        (
            c.run_id,
            c.step_id,
            c.activity,
            time(c.at),
            c.attributes.get("actor"),
            _json_text(c.attributes),
        )
        for _, _, commands in changes
        for c in commands
        if isinstance(c, Log)
    ]
    return run_rows, step_rows, log_rows


def _run_values(run: RunState, state_version: int, commands: Sequence[Command]) -> dict[str, Any]:
    return {
        "b_id": run.id,
        "b_version": state_version,
        "b_status": run.status,
        "b_error": run.error,
        "b_finished_at": run.finished_at,
        "b_updated_at": _latest(commands) or run.created_at,
        "b_next": state_version + 1,
    }


def _log_row(command: Log) -> dict[str, Any]:
    return {
        "run_id": command.run_id,
        "step_id": command.step_id,
        "activity": command.activity,
        "at": command.at,
        "actor": command.attributes.get("actor"),
        "attributes": _jsonable(command.attributes),
    }


def _run_state(row: sa.RowMapping, steps: dict[str, StepState]) -> RunState:
    return RunState(
        parent=(row["parent_run_id"], row["parent_step_id"]) if row["parent_run_id"] else None,
        id=row["id"],
        playbook_id=row["playbook_id"],
        version=row["version"],
        status=row["status"],
        input=row["input"] or {},
        steps=steps,
        created_at=as_utc(row["created_at"]) or row["created_at"],
        finished_at=as_utc(row["finished_at"]),
        error=row["error"],
    )


def _step_values(step: StepState) -> dict[str, Any]:
    row = _step_row("", step)
    del row["run_id"], row["step_id"]
    return row


def _latest(commands: Sequence[Command]) -> datetime | None:
    times = [c.at for c in commands if isinstance(c, Log)]
    return max(times) if times else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _json_text(value: Any) -> str:
    # SQLAlchemy's JSON type stores None as the JSON text 'null'; so does this.
    return orjson.dumps(_jsonable(value)).decode()


def _step_row(run_id: str, step: StepState) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step_id": step.id,
        "status": step.status,
        "attempt": step.attempt,
        "due_at": step.due_at,
        "waiting_for": step.waiting_for,
        "output": _jsonable(step.output),
        "error": step.error,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "handler": step.handler,
        "activated_by": step.activated_by,
        "recovered_by": step.recovered_by,
        "sla_warn_at": step.sla_warn_at,
        "sla_due_at": step.sla_due_at,
        "sla_state": step.sla_state,
    }


def _step_state(row: sa.RowMapping) -> StepState:
    return StepState(
        id=row["step_id"],
        status=row["status"],
        attempt=row["attempt"],
        due_at=as_utc(row["due_at"]),
        waiting_for=row["waiting_for"],
        output=row["output"],
        error=row["error"],
        started_at=as_utc(row["started_at"]),
        finished_at=as_utc(row["finished_at"]),
        handler=row["handler"],
        activated_by=row["activated_by"],
        recovered_by=row["recovered_by"],
        sla_warn_at=as_utc(row["sla_warn_at"]),
        sla_due_at=as_utc(row["sla_due_at"]),
        sla_state=row["sla_state"],
    )


def _run_dict(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "playbook": row["playbook_id"],
        "version": row["version"],
        "status": row["status"],
        "created_at": as_utc(row["created_at"]),
        "finished_at": as_utc(row["finished_at"]),
        "error": row["error"],
        "input": row["input"],
    }


def _task_dict(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "run_id": row["run_id"],
        "step_id": row["step_id"],
        "kind": row["kind"],
        "title": row["title"],
        "roles": row["roles"],
        "required": row["required"],
        "status": row["status"],
        "due_at": as_utc(row["due_at"]),
        "decisions": row["decisions"],
        "context": row["context"],
        "created_at": as_utc(row["created_at"]),
        "assignee": row["assignee"],
        "require": row["require_roles"] or [],
        "requested_by": row["requested_by"],
        "escalate_at": as_utc(row["escalate_at"]),
        "escalate_to": row["escalate_to"] or [],
        "escalated_at": as_utc(row["escalated_at"]),
    }
