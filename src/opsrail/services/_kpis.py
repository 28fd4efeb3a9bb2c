"""The seed KPIs of service delivery, computed from what Opsrail stored: events, runs, tasks and decision records.

A window is ``[since, until)``: nothing at or after ``until`` is read, and without it everything stored so far
counts (the report's ``as_of`` says when that was); without ``since`` the window starts at the beginning. An
event's time is its ``time`` attribute (when it was received if it has none). Durations count in the window in
which they *end* (the order was provisioned, the incident escalated, the credit approved); a start before
``since`` is looked up. Counts count what *happened* in the window.

The KPIs:

``time_to_provision_hours``
    From an order's first ``com.opsrail.order.signed`` event to its provisioning. When implementation tasks name
    the order (``data.order_id``), it is provisioned once every one of them was last reported done or cancelled
    (at least one done), at the latest ``done`` update among them (any ``com.opsrail.implementation_task.*``
    event carries the task's status). When no task names the order, it is the first ``done`` update, at or after
    the signing, of a task of the same account that names no order. Mean, p50, p90.
``time_to_escalate_minutes``
    From an incident's first ``com.opsrail.incident.opened`` event to the earlier of the first
    ``com.opsrail.escalation.opened`` whose ``data.incident_id`` is the incident, and the first approval task
    opened or task escalated (run log ``task.escalated``) in a run that one of the incident's ``opened`` events
    started (``runs.trigger_source``/``trigger_event_id``), at or after the opening. Incidents never escalated
    are not counted. Mean, p50, p90.
``sla_breach_rate``
    Of the SLA clocks (run steps with ``sla_due_at``) due in the window and before now, the share that
    breached: ``sla_state`` is ``breached``, or the engine (source ``opsrail/engine``) published an
    ``escalation.opened`` for the step with ``data.attributes.sla == "breached"``. ``breached`` gives the count.
``manual_touches``
    Human acts in the window: each decision on a task (an entry of ``tasks.decisions``, at its ``at``), each
    ``task.reassigned`` in the run log, and each decision record overridden (``reviewed_at``) other than through
    its review task (that override is already the task's decision). ``by_source`` splits them.
``manual_touches_per_run``
    The touches on runs started in the window divided by the number of those runs (``n``); ``touches`` gives the
    numerator.
``billing_exceptions``
    In the window: each ``com.opsrail.invoice.held`` event (each hold), each credit memo created
    (``com.opsrail.credit.created``, distinct credits) and each change order created
    (``com.opsrail.change_order.created``, distinct change orders). ``by_kind`` splits them.
``credit_approval_cycle_hours``
    From a credit's first ``com.opsrail.credit.created`` to its first ``com.opsrail.credit.approved``, for credits
    approved in the window. ``tasks`` gives the same statistics for approval tasks closed in the window in runs
    that have a credit (started by a credit event, or one of their steps output a credit's id): created to closed.
``override_rate`` and ``acceptance_rate``
    Of the decision records a person settled in the window (``reviewed_at``; status ``accepted``, ``overridden``
    or ``rejected``), the share overridden, and the share accepted. ``autonomous`` counts the records created in
    the window that Opsrail acted on without a person (route ``acted``).

Each KPI has ``value`` (None when there is nothing to measure), ``unit`` and ``n`` (how many items the value is
computed from); durations add ``p50`` and ``p90`` (linear interpolation between the closest ranks). With ``by``
(``region``, ``channel`` or ``tier``), ``by`` maps each segment to the same figures: an item's segment is the one
its account last reported in a ``com.opsrail.account.*`` event (``data.segment``); the account is the item's
``data.account_id``, or for run-based items (SLA clocks, tasks, reassignments, decision records) the run input's
``account_id`` (a triggered run's input is its event's data); ``unknown`` when there is none.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from opsrail.model import Clock, InvalidInput

SEGMENTS = ("region", "channel", "tier")
UNKNOWN = "unknown"
KPI_NAMES = (
    "time_to_provision_hours",
    "time_to_escalate_minutes",
    "sla_breach_rate",
    "manual_touches",
    "manual_touches_per_run",
    "billing_exceptions",
    "credit_approval_cycle_hours",
    "override_rate",
    "acceptance_rate",
)
_BILLING_KINDS = {
    "com.opsrail.invoice.held": ("invoice_held", "events"),
    "com.opsrail.credit.created": ("credit_memo", "objects"),
    "com.opsrail.change_order.created": ("change_order", "objects"),
}
_DURATION = TypeAdapter(timedelta)
_HOUR = 3600.0
_MINUTE = 60.0

Segmenter = Callable[[str | None], str]


class KpiStore(Protocol):
    def orders_signed(self, until: datetime | None) -> list[dict[str, Any]]: ...

    def implementation_progress(self, until: datetime | None) -> list[dict[str, Any]]: ...

    def incidents_opened(self, until: datetime | None) -> list[dict[str, Any]]: ...

    def incident_escalations(self, until: datetime | None) -> list[dict[str, Any]]: ...

    def run_escalations(self, until: datetime | None) -> list[dict[str, Any]]: ...

    def sla_clocks(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def sla_breach_escalations(self, until: datetime | None) -> list[dict[str, Any]]: ...

    def task_decisions(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def reassignments(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def overridden_records(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def runs_started(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def billing_exceptions(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def credit_cycles(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def credit_approval_tasks(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def settled_decisions(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def autonomous_decisions(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def account_segments(self) -> list[dict[str, Any]]: ...


class KpiService:
    def __init__(self, store: KpiStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def window(self, since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
        """Read ``since`` and ``until`` as people write them: an ISO 8601 date or time (UTC when it names no
        offset), or a duration back from now (``P7D``: seven days ago). A date as ``until`` includes that day."""
        now = self.clock.now()
        return (
            parse_moment(since, "since", now) if since else None,
            parse_moment(until, "until", now, end=True) if until else None,
        )

    def compute(self, since: datetime | None, until: datetime | None, by: str | None = None) -> dict[str, Any]:
        """Every KPI over ``[since, until)`` (a time without an offset is UTC); with ``by``, split by the accounts'
        ``region``, ``channel`` or ``tier``."""
        if by is not None and by not in SEGMENTS:
            raise InvalidInput(f"cannot split KPIs by {by!r}", hint=f"by one of: {', '.join(SEGMENTS)}")
        now = _utc(self.clock.now())
        end = _utc(until) if until is not None else None
        start = _utc(since) if since is not None else None
        if start is not None and end is not None and start >= end:
            raise InvalidInput(
                f"the window is empty: since {start.isoformat()} is not before until {end.isoformat()}",
                hint="give a since earlier than until",
            )
        window = _Window(start, end)
        segment = self.segmenter(by) if by is not None else None
        touches, per_run = self._manual_touches(window, segment)
        override, acceptance = self._decision_rates(window, segment)
        kpis = {
            "time_to_provision_hours": self._provisioning(window, segment),
            "time_to_escalate_minutes": self._escalation(window, segment),
            "sla_breach_rate": self._sla(window, min(end, now) if end is not None else now, segment),
            "manual_touches": touches,
            "manual_touches_per_run": per_run,
            "billing_exceptions": self._billing(window, segment),
            "credit_approval_cycle_hours": self._credit_cycle(window, segment),
            "override_rate": override,
            "acceptance_rate": acceptance,
        }
        return {
            "window": {
                "since": start.isoformat() if start else None,
                "until": end.isoformat() if end else None,
                "by": by,
                "as_of": now.isoformat(),
            },
            "kpis": kpis,
        }

    # -- the KPIs -----------------------------------------------------------------------------------------------------

    def _provisioning(self, window: _Window, segment: Segmenter | None) -> dict[str, Any]:
        linked: dict[str, dict[str, Any]] = {}
        unlinked: dict[str, list[datetime]] = defaultdict(list)
        for row in self.store.implementation_progress(window.until):
            if row["order_id"] is not None:
                linked[row["order_id"]] = row
            elif row["account_id"]:
                unlinked[row["account_id"]].append(row["first_done_at"])
        measured: list[tuple[str | None, float]] = []
        for order in self.store.orders_signed(window.until):
            signed: datetime = order["signed_at"]
            tasks = linked.get(order["order_id"])
            if tasks is not None:
                ended = tasks["last_done_at"] if tasks["finished"] else None
            else:
                ended = min((at for at in unlinked.get(order["account_id"], ()) if at >= signed), default=None)
            if ended is not None and ended >= signed and window.holds(ended):
                measured.append((order["account_id"], (ended - signed).total_seconds() / _HOUR))
        return _durations(measured, "hours", segment)

    def _escalation(self, window: _Window, segment: Segmenter | None) -> dict[str, Any]:
        opened: dict[str, datetime] = {}
        accounts: dict[str, str | None] = {}
        triggers: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for row in self.store.incidents_opened(window.until):
            incident = row["incident_id"]
            if incident not in opened or row["opened_at"] < opened[incident]:
                opened[incident] = row["opened_at"]
            accounts[incident] = accounts.get(incident) or row["account_id"]
            triggers[incident].add((row["source"], row["event_id"]))
        escalations: dict[str, list[datetime]] = defaultdict(list)
        for row in self.store.incident_escalations(window.until):
            escalations[row["incident_id"]].append(row["at"])
        first_in_run: dict[tuple[str, str], datetime] = {}
        for row in self.store.run_escalations(window.until):
            key = (row["trigger_source"], row["trigger_event_id"])
            if key not in first_in_run or row["at"] < first_in_run[key]:
                first_in_run[key] = row["at"]
        measured: list[tuple[str | None, float]] = []
        for incident, start in opened.items():
            candidates = [
                *escalations.get(incident, ()),
                *(first_in_run[t] for t in triggers[incident] if t in first_in_run),
            ]
            ended = min((at for at in candidates if at >= start), default=None)
            if ended is not None and window.holds(ended):
                measured.append((accounts[incident], (ended - start).total_seconds() / _MINUTE))
        return _durations(measured, "minutes", segment)

    def _sla(self, window: _Window, upto: datetime, segment: Segmenter | None) -> dict[str, Any]:
        breached = {(r["run_id"], r["step_id"]) for r in self.store.sla_breach_escalations(window.until)}
        counted = _Tally()
        if window.since is None or window.since < upto:
            for clock in self.store.sla_clocks(window.since, upto):
                counted.add(clock["account_id"], "clocks")
                if clock["sla_state"] == "breached" or (clock["run_id"], clock["step_id"]) in breached:
                    counted.add(clock["account_id"], "breached")
        return _tallied(counted, "ratio", segment, _breach_rate)

    def _manual_touches(self, window: _Window, segment: Segmenter | None) -> tuple[dict[str, Any], dict[str, Any]]:
        touched = _Tally()
        on_new_runs = _Tally()

        def touch(account: str | None, source: str, run_created_at: datetime | None, count: int = 1) -> None:
            touched.add(account, source, count)
            if run_created_at is not None and window.holds(run_created_at):
                on_new_runs.add(account, "touches", count)

        overridden_on_tasks: set[str] = set()
        for task in self.store.task_decisions(window.since, window.until):
            for decision in task["decisions"] or ():
                if not isinstance(decision, dict):
                    continue
                if decision.get("value") is not None and task["decision_record"]:
                    overridden_on_tasks.add(task["decision_record"])
                at = _as_time(decision.get("at"))
                if at is not None and window.holds(at):
                    touch(task["account_id"], "task_decisions", task["run_created_at"])
        for row in self.store.reassignments(window.since, window.until):
            touch(row["account_id"], "reassignments", row["run_created_at"], int(row["count"]))
        for row in self.store.overridden_records(window.since, window.until):
            if row["record_id"] not in overridden_on_tasks:
                touch(row["account_id"], "overrides", row["run_created_at"])
        for row in self.store.runs_started(window.since, window.until):
            on_new_runs.add(row["account_id"], "runs", int(row["count"]))
        return (
            _tallied(touched, "touches", segment, _touch_count),
            _tallied(on_new_runs, "touches per run", segment, _touches_per_run),
        )

    def _billing(self, window: _Window, segment: Segmenter | None) -> dict[str, Any]:
        counted = _Tally()
        for row in self.store.billing_exceptions(window.since, window.until):
            kind, measure = _BILLING_KINDS[row["type"]]
            counted.add(row["account_id"], kind, int(row[measure]))
        return _tallied(counted, "exceptions", segment, _billing_count)

    def _credit_cycle(self, window: _Window, segment: Segmenter | None) -> dict[str, Any]:
        memos = [
            (row["account_id"], (row["approved_at"] - row["created_at"]).total_seconds() / _HOUR)
            for row in self.store.credit_cycles(window.since, window.until)
            if row["created_at"] is not None and row["approved_at"] >= row["created_at"]
        ]
        approvals = [
            (row["account_id"], (row["closed_at"] - row["created_at"]).total_seconds() / _HOUR)
            for row in self.store.credit_approval_tasks(window.since, window.until)
            if row["closed_at"] >= row["created_at"]
        ]
        result = _durations(memos, "hours", segment)
        result["tasks"] = _summary([hours for _, hours in approvals])
        if segment is not None:
            by_segment = _group(approvals, segment)
            for name in sorted(set(result["by"]) | set(by_segment)):
                entry = result["by"].setdefault(name, _summary([]))
                entry["tasks"] = _summary(by_segment.get(name, []))
            result["by"] = dict(sorted(result["by"].items()))
        return result

    def _decision_rates(self, window: _Window, segment: Segmenter | None) -> tuple[dict[str, Any], dict[str, Any]]:
        counted = _Tally()
        for row in self.store.settled_decisions(window.since, window.until):
            counted.add(row["account_id"], "settled", int(row["count"]))
            counted.add(row["account_id"], row["status"], int(row["count"]))
        for row in self.store.autonomous_decisions(window.since, window.until):
            counted.add(row["account_id"], "autonomous", int(row["count"]))
        return (
            _tallied(counted, "ratio", segment, _share("overridden")),
            _tallied(counted, "ratio", segment, _share("accepted")),
        )

    # -- segments -----------------------------------------------------------------------------------------------------

    def segmenter(self, by: str) -> Segmenter:
        """An account's segment: the latest value its account events gave for ``by``."""
        latest: dict[str, tuple[datetime, str]] = {}
        for row in self.store.account_segments():
            value = row[by]
            if value is None:
                continue
            seen = latest.get(row["account_id"])
            if seen is None or row["at"] >= seen[0]:
                latest[row["account_id"]] = (row["at"], str(value))

        def segment(account: str | None) -> str:
            found = latest.get(account) if account else None
            return found[1] if found else UNKNOWN

        return segment


def parse_moment(text: str, name: str, now: datetime, *, end: bool = False) -> datetime:
    """An ISO 8601 date or time (UTC unless it names an offset), or a duration back from ``now`` (``P7D``).

    With ``end``, a date means the end of that day, so that ``until=2026-01-31`` includes the 31st.
    """
    value = text.strip()
    hint = "e.g. 2026-01-05, 2026-01-05T08:00Z, or P7D for seven days back from now"
    try:
        if value[:1] in ("P", "p"):
            duration = _DURATION.validate_python(value.upper())
            if duration <= timedelta(0):
                raise ValueError("not a positive duration")
            return _utc(now - duration)
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return _utc(datetime.fromisoformat(value))
        return datetime.combine(day, time(), UTC) + (timedelta(days=1) if end else timedelta(0))
    except OverflowError:
        raise InvalidInput(f"{name} {text!r} is beyond the dates this can count with", hint=hint) from None
    except (ValueError, ValidationError):
        raise InvalidInput(f"{name} {text!r} is not an ISO 8601 date, time or positive duration", hint=hint) from None


# -- arithmetic ------------------------------------------------------------------------------------------------------


class _Window:
    __slots__ = ("since", "until")

    def __init__(self, since: datetime | None, until: datetime | None) -> None:
        self.since = since
        self.until = until

    def holds(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (self.until is None or moment < self.until)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return _utc(moment)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _percentile(ordered: Sequence[float], q: float) -> float:
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _summary(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"value": None, "n": 0, "p50": None, "p90": None}
    ordered = sorted(values)
    return {
        "value": _round(sum(ordered) / len(ordered)),
        "n": len(ordered),
        "p50": _round(_percentile(ordered, 0.5)),
        "p90": _round(_percentile(ordered, 0.9)),
    }


def _group(items: Iterable[tuple[str | None, float]], segment: Segmenter) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for account, value in items:
        groups[segment(account)].append(value)
    return groups


def _durations(items: Sequence[tuple[str | None, float]], unit: str, segment: Segmenter | None) -> dict[str, Any]:
    summary = _summary([value for _, value in items])
    result: dict[str, Any] = {"value": summary.pop("value"), "unit": unit, **summary}
    if segment is not None:
        result["by"] = {name: _summary(values) for name, values in sorted(_group(items, segment).items())}
    return result


class _Tally:
    """Named counts per account."""

    __slots__ = ("accounts",)

    def __init__(self) -> None:
        self.accounts: dict[str | None, Counter[str]] = defaultdict(Counter)

    def add(self, account: str | None, name: str, count: int = 1) -> None:
        self.accounts[account][name] += count


def _tallied(
    tally: _Tally, unit: str, segment: Segmenter | None, finish: Callable[[Counter[str]], dict[str, Any]]
) -> dict[str, Any]:
    """Sum the counts (overall and per segment) and turn each sum into figures with ``finish``."""
    total: Counter[str] = Counter()
    for counts in tally.accounts.values():
        total.update(counts)
    figures = finish(total)
    result: dict[str, Any] = {"value": figures.pop("value"), "unit": unit, **figures}
    if segment is not None:
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        for account, counts in tally.accounts.items():
            groups[segment(account)].update(counts)
        result["by"] = {name: finish(counts) for name, counts in sorted(groups.items())}
    return result


def _ratio(numerator: int, denominator: int) -> float | None:
    return _round(numerator / denominator) if denominator else None


def _breach_rate(counts: Counter[str]) -> dict[str, Any]:
    return {
        "value": _ratio(counts["breached"], counts["clocks"]),
        "n": counts["clocks"],
        "breached": counts["breached"],
    }


def _touch_count(counts: Counter[str]) -> dict[str, Any]:
    sources = {name: counts[name] for name in ("task_decisions", "reassignments", "overrides")}
    total = sum(sources.values())
    return {"value": total, "n": total, "by_source": sources}


def _touches_per_run(counts: Counter[str]) -> dict[str, Any]:
    return {"value": _ratio(counts["touches"], counts["runs"]), "n": counts["runs"], "touches": counts["touches"]}


def _billing_count(counts: Counter[str]) -> dict[str, Any]:
    kinds = {name: counts[name] for name, _ in _BILLING_KINDS.values()}
    total = sum(kinds.values())
    return {"value": total, "n": total, "by_kind": kinds}


def _share(status: str) -> Callable[[Counter[str]], dict[str, Any]]:
    def finish(counts: Counter[str]) -> dict[str, Any]:
        return {
            "value": _ratio(counts[status], counts["settled"]),
            "n": counts["settled"],
            status: counts[status],
            "autonomous": counts["autonomous"],
        }

    return finish
