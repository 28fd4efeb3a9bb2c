"""Insights over what Opsrail stored: process maps and variants, conformance to the pinned playbook version,
outcome drift between segments, and automation health (the computations are in ``opsrail.insights``).

An item's segment (for drift) is its run input's own ``segment`` (canonical objects carry one), else the segment
its account last reported (``KpiService.segmenter``).

Windows are read like the KPIs' (``KpiService.window``: ISO 8601 dates or times, or a duration back such as
``P30D``). Process maps, variants, conformance and step health look at runs *started* in the window; drift at tasks
closed, decision records created and runs finished in it; health's decision figures at records created in it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from opsrail.insights import (
    DriftSettings,
    HealthInputs,
    HealthSettings,
    MonitoringSettings,
    Observation,
    Trace,
    TraceEvent,
    conformance,
    drift,
    health,
    monitor,
    process_map,
    variants,
)
from opsrail.ml import Progress, no_progress
from opsrail.model import Clock, InvalidInput, NotFound, OpsrailError
from opsrail.playbooks import Playbook
from opsrail.services._at_risk import LOG_TASKS, at_risk
from opsrail.services._kpis import SEGMENTS, KpiService
from opsrail.services._log_export import (
    ExportStore,
    archive_runs,
    export_log,
    export_path,
    media_type,
    trace_of,
)

MAX_RUNS = 20_000
"""Runs one report mines at most (the newest of the window); a report says when it stopped there."""

SETTLED = ("accepted", "overridden", "rejected")


class InsightStore(ExportStore, Protocol):
    def runs(
        self, since: datetime | None, until: datetime | None, playbook_id: str | None, limit: int
    ) -> list[dict[str, Any]]: ...

    def run_events(
        self, since: datetime | None, until: datetime | None, playbook_id: str | None, limit: int
    ) -> list[dict[str, Any]]: ...

    def closed_tasks(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def records(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def finished_runs(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def step_ends(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def step_counts(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def run_counts(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]: ...

    def in_flight(self) -> list[dict[str, Any]]: ...


class PlaybookSource(Protocol):
    def playbook(self, playbook_id: str, version: int | None) -> Playbook: ...

    def playbooks(self) -> list[dict[str, Any]]: ...

    def unresolved(self, playbook: Playbook) -> list[Any]: ...


class DecisionSource(Protocol):
    def catalog(self) -> list[dict[str, Any]]: ...

    def evaluate(self, name: str, inputs: dict[str, Any], *, version: int | None = None) -> Any: ...

    def evaluate_many(
        self, name: str, inputs: Sequence[dict[str, Any]], *, version: int | None = None
    ) -> list[Any]: ...

    def table(self, name: str, version: int | None = None) -> tuple[Any, str]: ...


def task_outcome(decisions: list[dict[str, Any]]) -> str:
    """How a closed task ended: ``rejected`` if anyone rejected it, ``overridden`` if a reviewer gave their own
    answer, ``approved`` if it was approved, ``closed`` if it closed without a decision (timed out, run ended)."""
    if any(not d.get("approved") for d in decisions):
        return "rejected"
    if any(d.get("value") is not None for d in decisions):
        return "overridden"
    return "approved" if decisions else "closed"


def _hours(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds() / 3600.0


class InsightService:
    def __init__(
        self,
        store: InsightStore,
        clock: Clock,
        kpis: KpiService,
        playbooks: PlaybookSource,
        decisions: DecisionSource,
    ) -> None:
        self.store = store
        self.clock = clock
        self.kpis = kpis
        self.playbooks = playbooks
        self.decisions = decisions

    def window(self, since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
        start, end = self.kpis.window(since, until)
        if start is not None and end is not None and start >= end:
            raise InvalidInput(
                f"the window is empty: since {start.isoformat()} is not before until {end.isoformat()}",
                hint="give a since earlier than until",
            )
        return start, end

    def _described(self, since: datetime | None, until: datetime | None, **extra: Any) -> dict[str, Any]:
        return {
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "as_of": self.clock.now().isoformat(),
            **extra,
        }

    # -- runs as traces -----------------------------------------------------------------------------------------------

    def traces(
        self, since: datetime | None, until: datetime | None, playbook_id: str | None, version: int | None = None
    ) -> tuple[list[Trace], bool]:
        """The window's runs (newest ``MAX_RUNS``) with their log events; and whether there were more."""
        rows = self.store.runs(since, until, playbook_id, MAX_RUNS + 1)
        capped = len(rows) > MAX_RUNS
        rows = [row for row in rows[:MAX_RUNS] if version is None or row["version"] == version]
        wanted = {row["id"] for row in rows}
        events: dict[str, list[TraceEvent]] = defaultdict(list)
        for entry in self.store.run_events(since, until, playbook_id, MAX_RUNS):
            if entry["run_id"] in wanted:
                events[entry["run_id"]].append(
                    TraceEvent(entry["step_id"], entry["activity"], entry["at"], entry["actor"])
                )
        traces = [trace_of(row, events.get(row["id"], ())) for row in reversed(rows)]  # oldest first
        return traces, capped

    def _known_playbook(self, playbook_id: str, version: int | None) -> None:
        if not any(item["id"] == playbook_id for item in self.playbooks.playbooks()):
            raise NotFound(f"no playbook {playbook_id!r}", hint="`opsrail playbooks list` names them")
        if version is not None:
            self.playbooks.playbook(playbook_id, version)  # raises NotFound naming the version

    def process(
        self,
        playbook_id: str,
        since: datetime | None,
        until: datetime | None,
        *,
        version: int | None = None,
        top: int = 10,
        order: str = "ended",
    ) -> dict[str, Any]:
        """The process map and the most frequent variants of a playbook's runs started in the window; ``order``
        ``playbook`` makes a variant the steps that ended and how, in the playbook's order (runs whose parallel
        steps ended in another order fall together)."""
        if not 1 <= top <= 1000:
            raise InvalidInput(f"top must be from 1 to 1000, not {top}")
        if order not in ("ended", "playbook"):
            raise InvalidInput(f"order must be 'ended' or 'playbook', not {order!r}")
        self._known_playbook(playbook_id, version)
        traces, capped = self.traces(since, until, playbook_id, version)
        places: dict[tuple[str, int], dict[str, int]] = {}

        def rank(trace: Trace, step: str) -> int:
            key = (trace.playbook_id, trace.version)
            if key not in places:
                playbook = self._playbook_or_none(*key)
                places[key] = {s.id: i for i, s in enumerate(playbook.steps)} if playbook is not None else {}
            return places[key].get(step, len(places[key]))

        return {
            "window": self._described(
                since,
                until,
                playbook=playbook_id,
                version=version,
                order=order,
                capped_at=MAX_RUNS if capped else None,
            ),
            "variants": variants(traces, top, rank=rank if order == "playbook" else None),
            "map": process_map(traces),
        }

    def conformance(
        self, playbook_id: str | None, since: datetime | None, until: datetime | None, *, version: int | None = None
    ) -> dict[str, Any]:
        """Each playbook version's runs replayed against that version (see ``opsrail.insights._conformance``)."""
        if playbook_id is not None:
            self._known_playbook(playbook_id, version)
        traces, capped = self.traces(since, until, playbook_id, version)
        cache: dict[tuple[str, int], Playbook | None] = {}

        def playbook_of(pid: str, number: int) -> Playbook | None:
            if (pid, number) not in cache:
                try:
                    cache[pid, number] = self.playbooks.playbook(pid, number)
                except OpsrailError:
                    cache[pid, number] = None
            return cache[pid, number]

        return {
            "window": self._described(
                since, until, playbook=playbook_id, version=version, capped_at=MAX_RUNS if capped else None
            ),
            "versions": conformance(traces, playbook_of),
        }

    # -- the event log ------------------------------------------------------------------------------------------

    def export_log(
        self,
        path: Path,
        since: datetime | None,
        until: datetime | None,
        *,
        playbook_id: str | None = None,
        fmt: str | None = None,
        overwrite: bool = False,
        include_open: bool = False,
        progress: Progress = no_progress,
    ) -> dict[str, Any]:
        """Write the runs started in the window (those that finished, or all with ``include_open``; oldest first) as
        an event log: CSV, XES or Parquet, from ``fmt`` or the file name (``.csv``, ``.csv.gz``, ``.xes``,
        ``.xes.gz``, ``.parquet``); see ``opsrail.services._log_export``."""
        chosen, zipped = export_path(path, fmt, overwrite=overwrite)
        if playbook_id is not None:
            self._known_playbook(playbook_id, None)
        segmenters = {name: self.kpis.segmenter(name) for name in SEGMENTS}
        written = export_log(
            self.store,
            segmenters,
            path,
            chosen,
            zipped,
            since,
            until,
            playbook_id,
            include_open=include_open,
            progress=progress,
        )
        return {"window": self._described(since, until, playbook=playbook_id), **written}

    def archive_runs(self, path: Path, run_ids: list[str], *, progress: Progress = no_progress) -> dict[str, Any]:
        """Write these runs to a new file ``path`` as the export writes them: retention's archive of what it deletes."""
        export_path(path, None, overwrite=False)
        segmenters = {name: self.kpis.segmenter(name) for name in SEGMENTS}
        return archive_runs(self.store, segmenters, path, run_ids, progress=progress)

    def export_log_file(
        self,
        fmt: str,
        zipped: bool,
        since: datetime | None,
        until: datetime | None,
        *,
        playbook_id: str | None = None,
        include_open: bool = False,
    ) -> tuple[Path, dict[str, Any]]:
        """:meth:`export_log` into a new temporary folder, for a download: the file (``runs.<fmt>[.gz]``) and what
        was written, with the ``media_type`` to serve it as. The caller removes the folder (``path.parent``) once
        the file is sent."""
        name = f"runs.{fmt}" + (".gz" if zipped and fmt != "parquet" else "")
        folder = Path(tempfile.mkdtemp(prefix="opsrail-log-"))
        try:
            written = self.export_log(folder / name, since, until, playbook_id=playbook_id, include_open=include_open)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return folder / name, {**written, "media_type": media_type(written["format"], written["gzip"])}

    def at_risk(self, model: str, *, playbook_id: str | None = None, limit: int = 20) -> dict[str, Any]:
        """The open runs scored by an event-log model trained on an export of the finished ones, most at risk first
        (``opsrail.services._at_risk``)."""
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be from 1 to 1000, not {limit}")
        if playbook_id is not None:
            self._known_playbook(playbook_id, None)
        segmenters = {name: self.kpis.segmenter(name) for name in SEGMENTS}
        return at_risk(
            self.store, segmenters, self.decisions, self.clock.now(), model, playbook_id=playbook_id, limit=limit
        )

    # -- model monitoring ---------------------------------------------------------------------------------------

    def models(
        self,
        since: datetime | None,
        until: datetime | None,
        *,
        by: str = "region",
        decision: str | None = None,
        settings: MonitoringSettings | None = None,
    ) -> dict[str, Any]:
        """How each model version decided in the window's records: routes, confidence, how people settled its
        answers (per week and per segment of ``by``) and calibration in production (``insights._monitoring``)."""
        if by not in SEGMENTS:
            raise InvalidInput(f"cannot split by {by!r}", hint=f"by one of: {', '.join(SEGMENTS)}")
        settings = settings or MonitoringSettings()
        if decision is not None and not any(item["name"] == decision for item in self.decisions.catalog()):
            raise NotFound(f"no decision table or model named {decision!r}", hint="`opsrail models list` names them")
        segment = self.segment_of(by)
        rows = [
            {**row, "segment": segment(row)}
            for row in self.store.records(since, until)
            if row["source"] == "model" and (decision is None or row["decision"] == decision)
        ]
        report = monitor(rows, settings)
        described = self._described(since, until, by=by, decision=decision)
        described["settings"] = {
            "edges": list(settings.edges),
            "min_bin": settings.min_bin,
            "min_gap": settings.min_gap,
            "alpha": settings.alpha,
        }
        return {"window": described, **report}

    # -- drift ----------------------------------------------------------------------------------------------------

    def segment_of(self, by: str) -> Callable[[dict[str, Any]], str]:
        """A row's segment: the object's own (canonical objects carry one: a quote's region), else its account's."""
        of_account = self.kpis.segmenter(by)

        def segment(row: dict[str, Any]) -> str:
            own = row.get("segment")
            value = own.get(by) if isinstance(own, dict) else None
            return str(value) if isinstance(value, str | int) and value != "" else of_account(row["account_id"])

        return segment

    def observations(self, by: str, since: datetime | None, until: datetime | None) -> list[Observation]:
        segment = self.segment_of(by)
        found = []
        for task in self.store.closed_tasks(since, until):
            found.append(
                Observation(
                    "task",
                    f"{task['playbook_id']}/{task['step_id']}",
                    segment(task),
                    task_outcome(task["decisions"] or []),
                    _hours(task["closed_at"], task["created_at"]),
                    None if task.get("rule") is None else f"rule {task['rule']}",
                )
            )
        for record in self.store.records(since, until):
            where = segment(record)
            # Like cases: a table's records by the rule they matched, a model's by its answer. A region whose tickets
            # are of a harder topic, and so go to review more often, is not a finding for that alone.
            rules = record.get("matched_rules") or []
            answer = record.get("answer")
            like = f"rule {rules[0]}" if rules else (f"answer {answer}" if answer is not None else None)
            found.append(Observation("route", record["decision"], where, record["route"], stratum=like))
            if record["status"] in SETTLED:
                found.append(Observation("settlement", record["decision"], where, record["status"], stratum=like))
        kinds: dict[tuple[str, int], dict[str, str]] = {}
        for end in self.store.step_ends(since, until):
            key = (end["playbook_id"], int(end["version"]))
            if key not in kinds:
                playbook = self._playbook_or_none(*key)
                kinds[key] = {s.id: s.kind for s in playbook.steps} if playbook is not None else {}
            if kinds[key].get(end["step_id"]) in (None, "approval"):  # approvals are observed as their tasks
                continue
            found.append(
                Observation(
                    "step",
                    f"{end['playbook_id']}/{end['step_id']}",
                    segment(end),
                    end["activity"].removeprefix("step."),
                )
            )
        for run in self.store.finished_runs(since, until):
            found.append(
                Observation(
                    "run",
                    run["playbook_id"],
                    segment(run),
                    run["status"],
                    _hours(run["finished_at"], run["created_at"]),
                )
            )
        return found

    def drift(
        self,
        by: str,
        since: datetime | None,
        until: datetime | None,
        settings: DriftSettings | None = None,
    ) -> dict[str, Any]:
        """Each segment of ``by`` (region, channel or tier) against the rest at every decision point."""
        settings = settings or DriftSettings()
        if by not in SEGMENTS:
            raise InvalidInput(f"cannot compare segments by {by!r}", hint=f"by one of: {', '.join(SEGMENTS)}")
        if settings.min_n < 2:
            raise InvalidInput(f"min_n must be 2 or more, not {settings.min_n}")
        if not 0.0 < settings.alpha < 1.0:
            raise InvalidInput(f"alpha must be between 0 and 1, not {settings.alpha}")
        if not 0.0 <= settings.min_difference < 1.0:
            raise InvalidInput(f"min_difference must be from 0 to 1, not {settings.min_difference}")
        if settings.min_ratio < 1.0:
            raise InvalidInput(f"min_ratio must be 1 or more, not {settings.min_ratio}")
        if settings.min_gap_minutes < 0.0:
            raise InvalidInput(f"min_gap_minutes must be 0 or more, not {settings.min_gap_minutes}")
        report = drift(self.observations(by, since, until), settings)
        return {"window": self._described(since, until, by=by), **report}

    # -- health -----------------------------------------------------------------------------------------------------

    def health(
        self, since: datetime | None, until: datetime | None, settings: HealthSettings | None = None
    ) -> dict[str, Any]:
        """Findings on rules, decisions, models and playbooks; see ``opsrail.insights._health``."""
        settings = settings or HealthSettings()
        steps = self._step_health(since, until)
        # A step that succeeded in the window resolved what it names where it ran (a worker may have connectors
        # this process has not configured): no warning for it.
        ran = {(s["playbook"], s["version"], s["step"]) for s in steps if s["succeeded"]}
        inputs = HealthInputs(
            steps=steps,
            # Event-log models also score open runs (`insights at-risk`), which writes no record: never "unused".
            catalog=[
                item["name"]
                for item in self.decisions.catalog()
                if not (item.get("kind") == "model" and item.get("task") in LOG_TASKS)
            ],
            versions=self._versions(),
            unresolved=self._unresolved(ran),
        )
        records = self.store.records(since, until)
        inputs.tables, inputs.decisions = self._decision_health(records)
        # The models report's calibration findings, so that health lists every warning about a model.
        inputs.overconfident = monitor(
            [{**r, "segment": None} for r in records if r["source"] == "model"], MonitoringSettings()
        )["findings"]
        return {"window": self._described(since, until), **health(inputs, settings)}

    def _playbook_or_none(self, playbook_id: str, version: int) -> Playbook | None:
        try:
            return self.playbooks.playbook(playbook_id, version)
        except OpsrailError:
            return None

    def _step_health(self, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        runs = {(r["playbook_id"], int(r["version"])): int(r["count"]) for r in self.store.run_counts(since, until)}
        counts: dict[tuple[str, int, str], Counter[str]] = defaultdict(Counter)
        for row in self.store.step_counts(since, until):
            if row["step_id"] is not None:
                counts[row["playbook_id"], int(row["version"]), row["step_id"]][row["activity"]] += int(row["count"])
        handlers: dict[tuple[str, int], set[str]] = {}
        kinds: dict[tuple[str, int], dict[str, str]] = {}
        steps = []
        for (pid, version, step), found in sorted(counts.items()):
            if (pid, version) not in handlers:
                playbook = self._playbook_or_none(pid, version)
                handlers[pid, version] = playbook.handler_ids() if playbook is not None else set()
                kinds[pid, version] = {s.id: s.kind for s in playbook.steps} if playbook is not None else {}
            steps.append(
                {
                    "playbook": pid,
                    "version": version,
                    "step": step,
                    "succeeded": found["step.succeeded"],
                    "failed": found["step.failed"],
                    "skipped": found["step.skipped"],
                    "retries": found["step.retry_due"],
                    "activated": found["step.activated"],
                    "sla_met": found["sla.met"],
                    "sla_breached": found["sla.breached"],
                    "runs": runs.get((pid, version), 0),
                    "handler": step in handlers[pid, version],
                    "kind": kinds[pid, version].get(step),
                }
            )
        return steps

    def _decision_health(self, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        tables: dict[tuple[str, int], dict[str, Any]] = {}
        decisions: dict[str, dict[str, Any]] = {}
        for record in records:
            name = record["decision"]
            decision = decisions.setdefault(
                name,
                {
                    "name": name,
                    "source": record["source"],
                    "records": 0,
                    "settled": Counter(),
                    "against": [],
                    "confidences": [],
                },
            )
            decision["records"] += 1
            if record["status"] in SETTLED:
                decision["settled"][record["status"]] += 1
                decision["against"].append(record["status"] != "accepted")
            if record["source"] == "model" and record["confidence"] is not None:
                decision["confidences"].append(float(record["confidence"]))
            if record["source"] == "table" and record["version"] is not None:
                table = tables.setdefault(
                    (name, int(record["version"])),
                    {"name": name, "version": int(record["version"]), "records": 0, "hits": Counter()},
                )
                table["records"] += 1
                table["hits"].update(set(record["matched_rules"] or []))
        found_tables = []
        for (name, version), table in sorted(tables.items()):
            try:
                document = self.decisions.table(name, version)[0]
            except OpsrailError:
                continue
            found_tables.append({**table, "rules": [rule.id for rule in document.rules], "hits": dict(table["hits"])})
        for decision in decisions.values():
            decision["settled"] = dict(decision["settled"])
        return found_tables, sorted(decisions.values(), key=lambda d: d["name"])

    def _versions(self) -> list[dict[str, Any]]:
        grouped: dict[str, dict[str, Any]] = {}
        for row in self.store.in_flight():
            item = grouped.setdefault(
                row["playbook_id"],
                {"playbook": row["playbook_id"], "active_version": row["active_version"], "in_flight": {}},
            )
            item["in_flight"][int(row["version"])] = int(row["count"])
        return [grouped[name] for name in sorted(grouped)]

    def _unresolved(self, ran: set[tuple[str, int, str]]) -> list[dict[str, Any]]:
        found = []
        for item in self.playbooks.playbooks():
            if not item["active"]:
                continue
            playbook = self._playbook_or_none(item["id"], item["version"])
            if playbook is None:
                continue
            warnings = [
                {"field": w.path, "message": w.message}
                for w in self.playbooks.unresolved(playbook)
                if (item["id"], item["version"], _step_of(playbook, w.path)) not in ran
            ]
            if warnings:
                found.append({"playbook": item["id"], "version": item["version"], "warnings": warnings})
        return found


def _step_of(playbook: Playbook, path: str) -> str | None:
    """The id of the step a ``$.steps[i]...`` path points at."""
    match = re.match(r"^\$\.steps\[(\d+)\]", path)
    if match is None or int(match.group(1)) >= len(playbook.steps):
        return None
    return playbook.steps[int(match.group(1))].id


__all__ = ["MAX_RUNS", "InsightService", "InsightStore", "task_outcome"]
