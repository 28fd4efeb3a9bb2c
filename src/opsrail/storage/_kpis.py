"""The rows the seed KPIs are computed from, on SQLite and PostgreSQL (SQLAlchemy Core, no dialect-specific SQL).

Each method answers one question with one or two statements and returns plain dicts; the arithmetic (durations,
percentiles, rates, segments) is done by ``opsrail.services._kpis.KpiService``. Counting and grouping happen in SQL
where both databases do it the same way: per object (``GROUP BY object_id`` with conditional ``MIN``/``MAX``), per
run, per kind. What SQL cannot do portably is left to Python on few rows: the entries of ``tasks.decisions`` (a
JSON array), and matching an escalation to its incident through a JSON field (a join on a JSON expression would be
a nested loop on SQLite).

Times:

* an event's time is its ``time`` attribute, or when it was received if it carries none;
* ``until`` is exclusive and nothing at or after it is read, so a window in the past answers what it answered then
  (up to later-arriving events); None reads everything. ``since`` is inclusive and only bounds what a method
  says it bounds (a duration's start is looked up whenever it was);
* timestamps come back timezone-aware in UTC on both databases.

Grouping never uses a JSON expression in ``GROUP BY`` directly (PostgreSQL sees each bound JSON key as a new
expression); a labelled subquery, or ``MAX`` over the expression, is used instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from opsrail.storage._tables import decision_records, events, run_log, run_steps, runs, tasks

ORDER_SIGNED = "com.opsrail.order.signed"
INCIDENT_OPENED = "com.opsrail.incident.opened"
ESCALATION_OPENED = "com.opsrail.escalation.opened"
INVOICE_HELD = "com.opsrail.invoice.held"
CREDIT_CREATED = "com.opsrail.credit.created"
CREDIT_APPROVED = "com.opsrail.credit.approved"
CHANGE_ORDER_CREATED = "com.opsrail.change_order.created"
BILLING_EXCEPTION_TYPES = (INVOICE_HELD, CREDIT_CREATED, CHANGE_ORDER_CREATED)
ENGINE_SOURCE = "opsrail/engine"
SETTLED = ("accepted", "overridden", "rejected")

_AT = sa.func.coalesce(events.c.time, events.c.received_at)
_EVENT_ACCOUNT = events.c.data["account_id"].as_string()
# A triggered run's input is its event's data; a run started by hand may name the account in its input too.
_RUN_ACCOUNT = runs.c.input["account_id"].as_string()


def _utc(value: datetime) -> datetime:
    # SQLite stores the wall-clock fields of what it is given: compare in UTC, as everything is stored.
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _within(column: Any, since: datetime | None, until: datetime | None) -> sa.ColumnElement[bool]:
    """``since <= column < until``; either bound may be absent."""
    bounds = []
    if since is not None:
        bounds.append(column >= _utc(since))
    if until is not None:
        bounds.append(column < _utc(until))
    return sa.and_(sa.true(), *bounds)


class SqlKpiStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def _rows(self, query: sa.Select[Any], times: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(query)
            keys = list(map(str, result.keys()))  # plain str: SQLAlchemy's quoted_name upsets JSON encoders
            rows = result.all()
        found = [dict(zip(keys, row, strict=True)) for row in rows]
        for item in found:
            for name in times:
                value = item[name]
                if value is not None and value.tzinfo is None:  # SQLite hands timestamps back naive
                    item[name] = value.replace(tzinfo=UTC)
        return found

    # -- provisioning -------------------------------------------------------------------------------------------

    def orders_signed(self, until: datetime | None) -> list[dict[str, Any]]:
        """Per order: ``order_id``, ``account_id``, ``signed_at`` (its first ``order.signed`` event)."""
        query = (
            sa.select(
                events.c.object_id.label("order_id"),
                sa.func.max(_EVENT_ACCOUNT).label("account_id"),
                sa.func.min(_AT).label("signed_at"),
            )
            .where(events.c.type == ORDER_SIGNED, events.c.object_id.is_not(None), _within(_AT, None, until))
            .group_by(events.c.object_id)
        )
        return self._rows(query, ("signed_at",))

    def implementation_progress(self, until: datetime | None) -> list[dict[str, Any]]:
        """Implementation tasks rolled up, from all their events, in two kinds of rows.

        * per order that tasks name (``order_id`` set, ``task_id`` None): ``account_id``, ``last_done_at`` (the
          latest update with status done of any of its tasks) and ``finished`` (1 when every one of its tasks was
          last reported done or cancelled: no update with another status after its last such update, else 0);
        * per task that names no order and was done (``order_id`` None): ``task_id``, ``account_id`` and
          ``first_done_at`` (its first update with status done).
        """
        # The JSON fields are read once per event, then rolled up per task, then per order.
        updates = (
            sa.select(
                events.c.object_id.label("task_id"),
                _AT.label("at"),
                events.c.data["status"].as_string().label("status"),
                events.c.data["order_id"].as_string().label("order_id"),
                _EVENT_ACCOUNT.label("account_id"),
            )
            .where(events.c.kind == "implementation_task", events.c.object_id.is_not(None), _within(_AT, None, until))
            .subquery()
        )
        done = updates.c.status == "done"
        last_open = sa.func.max(sa.case((updates.c.status.not_in(("done", "cancelled")), updates.c.at)))
        last_closed = sa.func.max(sa.case((updates.c.status.in_(("done", "cancelled")), updates.c.at)))
        per_task = (
            sa.select(
                updates.c.task_id,
                sa.func.max(updates.c.order_id).label("order_id"),
                sa.func.max(updates.c.account_id).label("account_id"),
                sa.func.min(sa.case((done, updates.c.at))).label("first_done_at"),
                sa.func.max(sa.case((done, updates.c.at))).label("last_done_at"),
                sa.case(
                    (sa.and_(last_closed.is_not(None), sa.or_(last_open.is_(None), last_open <= last_closed)), 1),
                    else_=0,
                ).label("finished"),
            )
            .group_by(updates.c.task_id)
            .subquery()
        )
        unlinked = sa.case((per_task.c.order_id.is_(None), per_task.c.task_id))
        query = (
            sa.select(
                per_task.c.order_id,
                unlinked.label("task_id"),
                sa.func.max(per_task.c.account_id).label("account_id"),
                sa.func.max(per_task.c.last_done_at).label("last_done_at"),
                sa.func.min(per_task.c.finished).label("finished"),
                sa.func.min(per_task.c.first_done_at).label("first_done_at"),
            )
            .where(sa.or_(per_task.c.order_id.is_not(None), per_task.c.first_done_at.is_not(None)))
            .group_by(per_task.c.order_id, unlinked)
        )
        return self._rows(query, ("last_done_at", "first_done_at"))

    # -- escalation -----------------------------------------------------------------------------------------------

    def incidents_opened(self, until: datetime | None) -> list[dict[str, Any]]:
        """Each ``incident.opened`` event: ``incident_id``, ``account_id``, ``source``, ``event_id``, ``opened_at``."""
        query = sa.select(
            events.c.object_id.label("incident_id"),
            _EVENT_ACCOUNT.label("account_id"),
            events.c.source,
            events.c.event_id,
            _AT.label("opened_at"),
        ).where(events.c.type == INCIDENT_OPENED, events.c.object_id.is_not(None), _within(_AT, None, until))
        return self._rows(query, ("opened_at",))

    def incident_escalations(self, until: datetime | None) -> list[dict[str, Any]]:
        """Each ``escalation.opened`` event that names an incident: ``incident_id``, ``at``."""
        incident = events.c.data["incident_id"].as_string()
        query = sa.select(incident.label("incident_id"), _AT.label("at")).where(
            events.c.type == ESCALATION_OPENED, incident.is_not(None), _within(_AT, None, until)
        )
        return self._rows(query, ("at",))

    def run_escalations(self, until: datetime | None) -> list[dict[str, Any]]:
        """Per triggered run's trigger (``trigger_source``, ``trigger_event_id``): ``at``, when the run first opened
        an approval task or escalated a task."""
        trigger = (runs.c.trigger_source, runs.c.trigger_event_id)
        approvals = (
            sa.select(*trigger, sa.func.min(tasks.c.created_at).label("at"))
            .join(tasks, tasks.c.run_id == runs.c.id)
            .where(
                runs.c.trigger_event_id.is_not(None),
                tasks.c.kind == "approval",
                _within(tasks.c.created_at, None, until),
            )
            .group_by(*trigger)
        )
        escalated = (
            sa.select(*trigger, sa.func.min(run_log.c.at).label("at"))
            .join(run_log, run_log.c.run_id == runs.c.id)
            .where(
                runs.c.trigger_event_id.is_not(None),
                run_log.c.activity == "task.escalated",
                _within(run_log.c.at, None, until),
            )
            .group_by(*trigger)
        )
        return self._rows(approvals, ("at",)) + self._rows(escalated, ("at",))

    # -- SLA clocks -------------------------------------------------------------------------------------------------

    def sla_clocks(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Steps with an SLA clock due in the window: ``run_id``, ``step_id``, ``sla_state``, ``account_id``."""
        query = (
            sa.select(
                run_steps.c.run_id,
                run_steps.c.step_id,
                run_steps.c.sla_state,
                _RUN_ACCOUNT.label("account_id"),
            )
            .join(runs, runs.c.id == run_steps.c.run_id)
            .where(run_steps.c.sla_due_at.is_not(None), _within(run_steps.c.sla_due_at, since, until))
        )
        return self._rows(query)

    def sla_breach_escalations(self, until: datetime | None) -> list[dict[str, Any]]:
        """The steps the engine published a breach escalation for: ``run_id``, ``step_id``."""
        query = sa.select(
            events.c.data[("attributes", "run_id")].as_string().label("run_id"),
            events.c.data[("attributes", "step_id")].as_string().label("step_id"),
        ).where(
            events.c.type == ESCALATION_OPENED,
            events.c.source == ENGINE_SOURCE,
            events.c.data[("attributes", "sla")].as_string() == "breached",
            _within(_AT, None, until),
        )
        return self._rows(query)

    # -- manual touches ---------------------------------------------------------------------------------------------

    def task_decisions(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Tasks that may hold a decision made in the window (opened before ``until``, open or closed since
        ``since``): ``task_id``, ``run_id``, ``decisions`` (the JSON list), ``decision_record`` (the record a review
        task settles), ``run_created_at``, ``account_id``."""
        query = (
            sa.select(
                tasks.c.id.label("task_id"),
                tasks.c.run_id,
                tasks.c.decisions,
                tasks.c.context["decision_record"].as_string().label("decision_record"),
                runs.c.created_at.label("run_created_at"),
                _RUN_ACCOUNT.label("account_id"),
            )
            .join(runs, runs.c.id == tasks.c.run_id)
            .where(_within(tasks.c.created_at, None, until))
        )
        if since is not None:
            query = query.where(sa.or_(tasks.c.closed_at.is_(None), tasks.c.closed_at >= _utc(since)))
        return self._rows(query, ("run_created_at",))

    def reassignments(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Per run, the ``task.reassigned`` entries in the window: ``run_id``, ``count``, ``run_created_at``,
        ``account_id``."""
        query = (
            sa.select(
                run_log.c.run_id,
                sa.func.count().label("count"),
                sa.func.max(runs.c.created_at).label("run_created_at"),
                sa.func.max(_RUN_ACCOUNT).label("account_id"),
            )
            .join(runs, runs.c.id == run_log.c.run_id)
            .where(run_log.c.activity == "task.reassigned", _within(run_log.c.at, since, until))
            .group_by(run_log.c.run_id)
        )
        return self._rows(query, ("run_created_at",))

    def overridden_records(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Decision records overridden in the window: ``record_id``, ``run_id``, ``run_created_at``, ``account_id``."""
        query = (
            sa.select(
                decision_records.c.id.label("record_id"),
                decision_records.c.run_id,
                runs.c.created_at.label("run_created_at"),
                sa.func.coalesce(_RUN_ACCOUNT, decision_records.c.inputs["account_id"].as_string()).label("account_id"),
            )
            .select_from(decision_records.outerjoin(runs, runs.c.id == decision_records.c.run_id))
            .where(decision_records.c.status == "overridden", _within(decision_records.c.reviewed_at, since, until))
        )
        return self._rows(query, ("run_created_at",))

    def runs_started(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Runs created in the window, per account: ``account_id``, ``count``."""
        inner = sa.select(_RUN_ACCOUNT.label("account_id")).where(_within(runs.c.created_at, since, until)).subquery()
        query = sa.select(inner.c.account_id, sa.func.count().label("count")).group_by(inner.c.account_id)
        return self._rows(query)

    # -- billing exceptions -----------------------------------------------------------------------------------------

    def billing_exceptions(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Invoice holds, credits and change orders created in the window, per type and account: ``type``,
        ``account_id``, ``events`` and ``objects`` (distinct object ids)."""
        inner = (
            sa.select(events.c.type, events.c.object_id, _EVENT_ACCOUNT.label("account_id"))
            .where(events.c.type.in_(BILLING_EXCEPTION_TYPES), _within(_AT, since, until))
            .subquery()
        )
        query = sa.select(
            inner.c.type,
            inner.c.account_id,
            sa.func.count().label("events"),
            sa.func.count(sa.distinct(inner.c.object_id)).label("objects"),
        ).group_by(inner.c.type, inner.c.account_id)
        return self._rows(query)

    # -- credit approval ----------------------------------------------------------------------------------------------

    def credit_cycles(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Per credit first approved in the window: ``credit_id``, ``account_id``, ``created_at`` (its first
        ``credit.created``, or None when it was not seen) and ``approved_at`` (its first ``credit.approved``)."""
        approved = sa.func.min(sa.case((events.c.type == CREDIT_APPROVED, _AT)))
        query = (
            sa.select(
                events.c.object_id.label("credit_id"),
                sa.func.max(_EVENT_ACCOUNT).label("account_id"),
                sa.func.min(sa.case((events.c.type == CREDIT_CREATED, _AT))).label("created_at"),
                approved.label("approved_at"),
            )
            .where(
                events.c.kind == "credit",
                events.c.type.in_((CREDIT_CREATED, CREDIT_APPROVED)),
                events.c.object_id.is_not(None),
                _within(_AT, None, until),
            )
            .group_by(events.c.object_id)
            .having(approved.is_not(None), _within(approved, since, until))
        )
        return self._rows(query, ("created_at", "approved_at"))

    def credit_approval_tasks(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Approval tasks closed in the window in a run that has a credit (started by a credit event, or one of
        its steps output a credit's id): ``task_id``, ``created_at``, ``closed_at``, ``account_id``."""
        trigger = events.alias("trigger")
        by_trigger = (
            sa.select(trigger.c.seq)
            .where(
                trigger.c.source == runs.c.trigger_source,
                trigger.c.event_id == runs.c.trigger_event_id,
                trigger.c.kind == "credit",
            )
            .exists()
        )
        credit = events.alias("credit")
        by_step = (
            sa.select(credit.c.seq)
            .select_from(
                run_steps.join(
                    credit,
                    sa.and_(credit.c.kind == "credit", credit.c.object_id == run_steps.c.output["id"].as_string()),
                )
            )
            .where(run_steps.c.run_id == runs.c.id)
            .exists()
        )
        query = (
            sa.select(
                tasks.c.id.label("task_id"),
                tasks.c.created_at,
                tasks.c.closed_at,
                _RUN_ACCOUNT.label("account_id"),
            )
            .join(runs, runs.c.id == tasks.c.run_id)
            .where(
                tasks.c.kind == "approval",
                tasks.c.closed_at.is_not(None),
                _within(tasks.c.closed_at, since, until),
                sa.or_(by_trigger, by_step),
            )
        )
        return self._rows(query, ("created_at", "closed_at"))

    # -- decision records ---------------------------------------------------------------------------------------------

    def _record_counts(self, condition: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
        account = sa.func.coalesce(_RUN_ACCOUNT, decision_records.c.inputs["account_id"].as_string())
        inner = (
            sa.select(decision_records.c.status, account.label("account_id"))
            .select_from(decision_records.outerjoin(runs, runs.c.id == decision_records.c.run_id))
            .where(condition)
            .subquery()
        )
        query = sa.select(inner.c.status, inner.c.account_id, sa.func.count().label("count")).group_by(
            inner.c.status, inner.c.account_id
        )
        return self._rows(query)

    def settled_decisions(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Decision records a person settled in the window (accepted, overridden, rejected), per status and
        account: ``status``, ``account_id``, ``count``."""
        return self._record_counts(
            sa.and_(decision_records.c.status.in_(SETTLED), _within(decision_records.c.reviewed_at, since, until))
        )

    def autonomous_decisions(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Decision records routed ``acted`` (no person in the loop) created in the window, per current status and
        account: ``status``, ``account_id``, ``count``."""
        return self._record_counts(
            sa.and_(decision_records.c.route == "acted", _within(decision_records.c.created_at, since, until))
        )

    # -- segments ----------------------------------------------------------------------------------------------------

    def account_segments(self) -> list[dict[str, Any]]:
        """Every ``com.opsrail.account.*`` event's segment: ``account_id``, ``at``, ``region``, ``channel``,
        ``tier`` (None when the event does not set it)."""
        query = sa.select(
            events.c.object_id.label("account_id"),
            _AT.label("at"),
            events.c.data[("segment", "region")].as_string().label("region"),
            events.c.data[("segment", "channel")].as_string().label("channel"),
            events.c.data[("segment", "tier")].as_string().label("tier"),
        ).where(events.c.kind == "account", events.c.object_id.is_not(None))
        return self._rows(query, ("at",))
