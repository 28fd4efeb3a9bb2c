"""The rows insights are computed from, on SQLite and PostgreSQL (SQLAlchemy Core, no dialect-specific SQL).

Each method answers one question and returns plain dicts; the mining, the tests and the thresholds are in
``opsrail.insights`` (pure), driven by ``opsrail.services._insights``. Windows are ``[since, until)``, None for
open ends; timestamps come back timezone-aware in UTC on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from opsrail.storage._tables import decision_records, playbooks, run_log, runs, tasks

FINISHED = ("succeeded", "failed", "cancelled")
TRACE_ACTIVITIES = (
    "step.ready",
    "step.waiting",
    "task.opened",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "step.activated",
    "step.retried",
    "step.retry_due",
    "decision.overridden",
    "run.migrated",
    "run.paused",
    "task.reassigned",
    "task.escalated",
)
"""What the mining reads of the run log (not the SLA, decision or bookkeeping entries)."""

_RUN_ACCOUNT = runs.c.input["account_id"].as_string()
_RUN_SEGMENT = runs.c.input["segment"]
_RUN_COLUMNS = (
    runs.c.id,
    runs.c.playbook_id,
    runs.c.version,
    runs.c.status,
    runs.c.created_at,
    runs.c.finished_at,
    _RUN_ACCOUNT.label("account_id"),
)
"""What every reading of runs as traces needs."""


def _within(column: Any, since: datetime | None, until: datetime | None) -> sa.ColumnElement[bool]:
    bounds = []
    if since is not None:
        bounds.append(column >= since)
    if until is not None:
        bounds.append(column < until)
    return sa.and_(sa.true(), *bounds)


class SqlInsightStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def _rows(self, query: sa.Select[Any], times: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Rows as dicts; the ``times`` columns timezone-aware (SQLite hands timestamps back naive)."""
        with self.engine.connect() as conn:
            result = conn.execute(query)
            keys = list(map(str, result.keys()))
            rows = result.all()
        found = [dict(zip(keys, row, strict=True)) for row in rows]
        for name in times:
            for item in found:
                value = item[name]
                if value is not None and value.tzinfo is None:
                    item[name] = value.replace(tzinfo=UTC)
        return found

    def _runs_in(self, since: datetime | None, until: datetime | None, playbook_id: str | None) -> Any:
        condition = _within(runs.c.created_at, since, until)
        if playbook_id is not None:
            condition = sa.and_(condition, runs.c.playbook_id == playbook_id)
        return condition

    def runs(
        self, since: datetime | None, until: datetime | None, playbook_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Runs started in the window (newest first, at most ``limit``): ``id``, ``playbook_id``, ``version``,
        ``status``, ``created_at``, ``finished_at``, ``account_id``."""
        query = (
            sa.select(*_RUN_COLUMNS)
            .where(self._runs_in(since, until, playbook_id))
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(limit)
        )
        return self._rows(query, ("created_at", "finished_at"))

    def run_events(
        self, since: datetime | None, until: datetime | None, playbook_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The run-log entries mining reads of the runs ``runs`` returns (the same arguments), in log order:
        ``run_id``, ``step_id``, ``activity``, ``at``, ``actor``. One statement: the runs are a subquery."""
        chosen = (
            sa.select(runs.c.id)
            .where(self._runs_in(since, until, playbook_id))
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(limit)
            .scalar_subquery()
        )
        return self._log_entries(run_log.c.run_id.in_(chosen))

    def _log_entries(self, of_runs: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
        query = (
            sa.select(run_log.c.run_id, run_log.c.step_id, run_log.c.activity, run_log.c.at, run_log.c.actor)
            .where(of_runs, run_log.c.activity.in_(TRACE_ACTIVITIES))
            .order_by(run_log.c.run_id, run_log.c.seq)
        )
        return self._rows(query, ("at",))

    def closed_tasks(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Tasks closed in the window: ``playbook_id``, ``step_id``, ``kind``, ``decisions``, ``created_at``,
        ``closed_at``, ``rule`` (the approval rule that opened it, if any), ``account_id`` and ``segment`` (the run
        input's)."""
        query = (
            sa.select(
                runs.c.playbook_id,
                tasks.c.step_id,
                tasks.c.kind,
                tasks.c.decisions,
                tasks.c.created_at,
                tasks.c.closed_at,
                tasks.c.context["rule"].label("rule"),
                _RUN_ACCOUNT.label("account_id"),
                _RUN_SEGMENT.label("segment"),
            )
            .select_from(tasks.join(runs, runs.c.id == tasks.c.run_id))
            .where(tasks.c.status == "closed", _within(tasks.c.closed_at, since, until))
        )
        return self._rows(query, ("created_at", "closed_at"))

    def records(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Decision records created in the window, oldest first: ``decision``, ``source``, ``version``,
        ``created_at``, ``route``, ``status``, ``confidence``, ``matched_rules``, ``answer`` (a model's label, if it
        gives one), ``account_id`` (the run input's, else the record's input), ``segment`` (the run input's)."""
        account = sa.func.coalesce(_RUN_ACCOUNT, decision_records.c.inputs["account_id"].as_string())
        query = (
            sa.select(
                decision_records.c.decision,
                decision_records.c.source,
                decision_records.c.version,
                decision_records.c.created_at,
                decision_records.c.route,
                decision_records.c.status,
                decision_records.c.confidence,
                decision_records.c.matched_rules,
                decision_records.c.outputs["label"].as_string().label("answer"),
                account.label("account_id"),
                _RUN_SEGMENT.label("segment"),
            )
            .select_from(decision_records.outerjoin(runs, runs.c.id == decision_records.c.run_id))
            .where(_within(decision_records.c.created_at, since, until))
            .order_by(decision_records.c.created_at, decision_records.c.id)
        )
        return self._rows(query, ("created_at",))

    def finished_runs(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Runs that finished in the window: ``playbook_id``, ``status``, ``created_at``, ``finished_at``,
        ``account_id``, ``segment``; child runs (started by a ``call`` step) are left out, their parent counts."""
        query = sa.select(
            runs.c.playbook_id,
            runs.c.status,
            runs.c.created_at,
            runs.c.finished_at,
            _RUN_ACCOUNT.label("account_id"),
            _RUN_SEGMENT.label("segment"),
        ).where(
            runs.c.status.in_(FINISHED),
            runs.c.parent_run_id.is_(None),
            _within(runs.c.finished_at, since, until),
        )
        return self._rows(query, ("created_at", "finished_at"))

    def step_ends(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Each step end (succeeded or failed) logged in the window: ``playbook_id``, ``version``, ``step_id``,
        ``activity``, ``account_id`` and ``segment`` (the run input's)."""
        query = (
            sa.select(
                runs.c.playbook_id,
                runs.c.version,
                run_log.c.step_id,
                run_log.c.activity,
                _RUN_ACCOUNT.label("account_id"),
                _RUN_SEGMENT.label("segment"),
            )
            .select_from(run_log.join(runs, runs.c.id == run_log.c.run_id))
            .where(
                run_log.c.activity.in_(("step.succeeded", "step.failed")),
                run_log.c.step_id.is_not(None),
                _within(run_log.c.at, since, until),
            )
        )
        return self._rows(query)

    def step_counts(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Per playbook, version, step and activity, how many run-log entries the window's runs have:
        ``playbook_id``, ``version``, ``step_id``, ``activity``, ``count``."""
        counted = (
            "step.succeeded",
            "step.failed",
            "step.skipped",
            "step.retry_due",
            "step.activated",
            "sla.met",
            "sla.breached",
        )
        inner = (
            sa.select(runs.c.playbook_id, runs.c.version, run_log.c.step_id, run_log.c.activity)
            .select_from(run_log.join(runs, runs.c.id == run_log.c.run_id))
            .where(_within(runs.c.created_at, since, until), run_log.c.activity.in_(counted))
            .subquery()
        )
        query = sa.select(
            inner.c.playbook_id, inner.c.version, inner.c.step_id, inner.c.activity, sa.func.count().label("count")
        ).group_by(inner.c.playbook_id, inner.c.version, inner.c.step_id, inner.c.activity)
        return self._rows(query)

    def run_counts(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Runs started in the window per playbook and version: ``playbook_id``, ``version``, ``count``."""
        query = (
            sa.select(runs.c.playbook_id, runs.c.version, sa.func.count().label("count"))
            .where(_within(runs.c.created_at, since, until))
            .group_by(runs.c.playbook_id, runs.c.version)
        )
        return self._rows(query)

    def in_flight(self) -> list[dict[str, Any]]:
        """Runs not finished, per playbook and version, with the playbook's active version: ``playbook_id``,
        ``version``, ``active_version``, ``count``."""
        query = (
            sa.select(
                runs.c.playbook_id,
                runs.c.version,
                sa.func.max(playbooks.c.active_version).label("active_version"),
                sa.func.count().label("count"),
            )
            .select_from(runs.outerjoin(playbooks, playbooks.c.playbook_id == runs.c.playbook_id))
            .where(runs.c.status.not_in(FINISHED))
            .group_by(runs.c.playbook_id, runs.c.version)
        )
        return self._rows(query)

    # -- the event log export ------------------------------------------------------------------------------------

    @staticmethod
    def _finished(finished: bool | None) -> sa.ColumnElement[bool]:
        if finished is None:
            return sa.true()
        return runs.c.status.in_(FINISHED) if finished else runs.c.status.not_in(FINISHED)

    def count_runs(
        self, since: datetime | None, until: datetime | None, playbook_id: str | None, *, finished: bool | None = None
    ) -> int:
        """How many runs started in the window (of one playbook, or all; finished, open, or either)."""
        query = (
            sa.select(sa.func.count())
            .select_from(runs)
            .where(self._runs_in(since, until, playbook_id), self._finished(finished))
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def export_runs(
        self,
        since: datetime | None,
        until: datetime | None,
        playbook_id: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
        *,
        finished: bool | None = None,
    ) -> list[dict[str, Any]]:
        """The next ``limit`` runs started in the window (finished, open, or either), oldest first, after the run
        ``after`` (its ``created_at`` and ``id``): ``id``, ``playbook_id``, ``version``, ``status``, ``created_at``,
        ``finished_at``, ``account_id``, ``segment`` (the run input's), ``parent_run_id``."""
        condition = sa.and_(self._runs_in(since, until, playbook_id), self._finished(finished))
        if after is not None:
            at, run_id = after
            condition = sa.and_(
                condition, sa.or_(runs.c.created_at > at, sa.and_(runs.c.created_at == at, runs.c.id > run_id))
            )
        query = (
            sa.select(*_RUN_COLUMNS, _RUN_SEGMENT.label("segment"), runs.c.parent_run_id)
            .where(condition)
            .order_by(runs.c.created_at, runs.c.id)
            .limit(limit)
        )
        return self._rows(query, ("created_at", "finished_at"))

    def runs_by_id(self, run_ids: Sequence[str]) -> list[dict[str, Any]]:
        """These runs, with the columns of ``export_runs``, oldest first."""
        if not run_ids:
            return []
        query = (
            sa.select(*_RUN_COLUMNS, _RUN_SEGMENT.label("segment"), runs.c.parent_run_id)
            .where(runs.c.id.in_(list(run_ids)))
            .order_by(runs.c.created_at, runs.c.id)
        )
        return self._rows(query, ("created_at", "finished_at"))

    def run_log_of(self, run_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The run-log entries mining reads of these runs, in log order: ``run_id``, ``step_id``, ``activity``,
        ``at``, ``actor``."""
        if not run_ids:
            return []
        return self._log_entries(run_log.c.run_id.in_(list(run_ids)))
