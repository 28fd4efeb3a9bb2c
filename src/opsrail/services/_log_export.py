"""The runs as an event log file (CSV, XES or Parquet) for process-mining tools and for training models.

A case is a run started in the window that has finished (oldest first, so a ``tax2017`` or ``temporal`` split
trains on the earlier runs; runs still open are left out unless asked for, since a model would take their last
event for their end); its events are its step ends (``opsrail.insights.log_events``). Case attributes: the
playbook, the pinned version, when it started, the account, the parent run (a ``call`` step's child), the segment
by region, channel and tier (the run input's own, else the account's, as drift reads them), and the run's status
and end as ``outcome:status`` and ``outcome:finished``: how the case ended, which the model trainers never use as
a feature (a prefix of an open case cannot know it). Event attributes: the step, its outcome, when the attempt's
work started, who ended it, the attempt, and ``lifecycle:transition`` ``complete``. The runs are read in batches,
so the export's memory does not grow with the log (except Parquet's, which holds the rows in column chunks until
it writes).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from opsrail.insights import Trace, TraceEvent, log_events
from opsrail.ml import Progress, format_of, no_progress, writing_event_log
from opsrail.model import InvalidInput
from opsrail.services._kpis import SEGMENTS, UNKNOWN, Segmenter

BATCH_RUNS = 1_000
MEDIA_TYPES = {"csv": "text/csv", "xes": "application/xml", "parquet": "application/vnd.apache.parquet"}


def media_type(fmt: str, zipped: bool) -> str:
    """The media type a download of the log is served with."""
    return "application/gzip" if zipped else MEDIA_TYPES[fmt]


CASE_COLUMNS: dict[str, Any] = {
    "playbook": "string",
    "version": "int",
    "started": "date",
    "outcome:status": "string",
    "outcome:finished": "date",
    "account": "string",
    "parent_run": "string",
    **dict.fromkeys(SEGMENTS, "string"),
}
EVENT_COLUMNS: dict[str, Any] = {
    "lifecycle:transition": "string",
    "org:resource": "string",
    "start_timestamp": "date",
    "step": "string",
    "outcome": "string",
    "attempt": "int",
}


class ExportStore(Protocol):
    def count_runs(
        self, since: datetime | None, until: datetime | None, playbook_id: str | None, *, finished: bool | None = None
    ) -> int: ...

    def export_runs(
        self,
        since: datetime | None,
        until: datetime | None,
        playbook_id: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
        *,
        finished: bool | None = None,
    ) -> list[dict[str, Any]]: ...

    def runs_by_id(self, run_ids: list[str]) -> list[dict[str, Any]]: ...

    def run_log_of(self, run_ids: list[str]) -> list[dict[str, Any]]: ...


def export_path(path: Path, fmt: str | None, *, overwrite: bool) -> tuple[str, bool]:
    """The format and gzip flag for ``path``, after checking that it can be written."""
    try:
        chosen, zipped = format_of(path, fmt)
    except ValueError as exc:
        raise InvalidInput(str(exc), hint="or name the format with --format") from None
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder", hint="give a file name, such as runs.xes.gz")
    if not path.parent.is_dir():
        raise InvalidInput(f"no folder {path.parent}", hint="create it first, or export elsewhere")
    if path.exists() and not overwrite:
        raise InvalidInput(f"{path} exists", hint="pass --force to replace it")
    return chosen, zipped


def _segments(row: dict[str, Any], segmenters: dict[str, Segmenter]) -> dict[str, str | None]:
    own = row.get("segment")
    found: dict[str, str | None] = {}
    for name, of_account in segmenters.items():
        value = own.get(name) if isinstance(own, dict) else None
        if isinstance(value, str | int) and value != "":
            found[name] = str(value)
        else:
            account = of_account(row["account_id"])
            found[name] = None if account == UNKNOWN else account
    return found


def trace_of(row: dict[str, Any], events: Iterable[TraceEvent]) -> Trace:
    """A run row (``id``, ``playbook_id``, ``version``, ``status``, ``created_at``, ``finished_at``) and its log
    events as a trace."""
    return Trace(
        run_id=row["id"],
        playbook_id=row["playbook_id"],
        version=int(row["version"]),
        status=row["status"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        events=tuple(events),
    )


def cases(
    store: ExportStore, batch: list[dict[str, Any]], segmenters: dict[str, Segmenter]
) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]]:
    """Each run of ``batch`` with its case attributes and its events (``log_events``), as the export writes them."""
    entries: dict[str, list[TraceEvent]] = defaultdict(list)
    for entry in store.run_log_of([row["id"] for row in batch]):
        entries[entry["run_id"]].append(TraceEvent(entry["step_id"], entry["activity"], entry["at"], entry["actor"]))
    for row in batch:
        trace = trace_of(row, entries.get(row["id"], ()))
        events = [
            {
                "concept:name": event.activity,
                "time:timestamp": event.end,
                "lifecycle:transition": "complete",
                "org:resource": event.resource,
                "start_timestamp": event.start,
                "step": event.step,
                "outcome": event.outcome,
                "attempt": event.attempt,
            }
            for event in log_events(trace)
        ]
        attributes = {
            "playbook": row["playbook_id"],
            "version": int(row["version"]),
            "started": row["created_at"],
            "outcome:status": row["status"],
            "outcome:finished": row["finished_at"],
            "account": row["account_id"],
            "parent_run": row["parent_run_id"],
            **_segments(row, segmenters),
        }
        yield row, attributes, events


def export_log(
    store: ExportStore,
    segmenters: dict[str, Segmenter],
    path: Path,
    fmt: str,
    zipped: bool,
    since: datetime | None,
    until: datetime | None,
    playbook_id: str | None,
    *,
    include_open: bool = False,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Write the window's runs to ``path`` (finished ones only unless ``include_open``); returns what was written
    (``runs``, ``events``, ``bytes``, ...)."""
    finished = None if include_open else True
    total = store.count_runs(since, until, playbook_id, finished=finished)
    left_out = 0 if include_open else store.count_runs(since, until, playbook_id, finished=False)

    def batches() -> Iterator[list[dict[str, Any]]]:
        after: tuple[datetime, str] | None = None
        while batch := store.export_runs(since, until, playbook_id, after, BATCH_RUNS, finished=finished):
            after = (batch[-1]["created_at"], batch[-1]["id"])
            yield batch

    written = _write(store, segmenters, path, fmt, zipped, batches(), total, progress)
    return {**written, "open_runs_left_out": left_out, "bytes": path.stat().st_size}


def archive_runs(
    store: ExportStore,
    segmenters: dict[str, Segmenter],
    path: Path,
    run_ids: list[str],
    *,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Write exactly these runs to ``path`` (format from its name), as the export writes runs: the archive that
    retention keeps of the runs it deletes."""
    fmt, zipped = format_of(path, None)

    def batches() -> Iterator[list[dict[str, Any]]]:
        for start in range(0, len(run_ids), BATCH_RUNS):
            yield store.runs_by_id(run_ids[start : start + BATCH_RUNS])

    written = _write(store, segmenters, path, fmt, zipped, batches(), len(run_ids), progress)
    return {**written, "bytes": path.stat().st_size}


def _write(
    store: ExportStore,
    segmenters: dict[str, Segmenter],
    path: Path,
    fmt: str,
    zipped: bool,
    batches: Iterable[list[dict[str, Any]]],
    total: int,
    progress: Progress,
) -> dict[str, Any]:
    began = time.perf_counter()
    written_runs = events_written = empty = 0
    progress("export", 0.0)
    with writing_event_log(path, fmt, zipped=zipped, case_columns=CASE_COLUMNS, event_columns=EVENT_COLUMNS) as writer:
        for batch in batches:
            for row, attributes, events in cases(store, batch, segmenters):
                if not events:
                    empty += 1  # a run no step of which ended: a case needs an event
                    continue
                writer.case(row["id"], attributes, events)
                written_runs += 1
                events_written += len(events)
            progress("export", (written_runs + empty) / max(total, 1))
    progress("export", 1.0)
    return {
        "path": str(path),
        "format": fmt,
        "gzip": zipped,
        "runs": written_runs,
        "events": events_written,
        "runs_without_step_ends": empty,
        "seconds": round(time.perf_counter() - began, 3),
    }
