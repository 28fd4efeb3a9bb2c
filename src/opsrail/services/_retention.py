"""Retention policies: how long each kind of data keeps its payload, applied on demand, each run audited.

Old finished runs are deleted with their steps, tasks and log, after they are written to an archive file (an event
log, as ``opsrail insights export`` writes runs) in the archive folder; deleting them without an archive must be
asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from opsrail.model import Clock, InvalidInput
from opsrail.services._audit import Auditor, not_audited

RETAINED_KINDS = ("events", "dead_letters", "decision_records", "model_versions", "runs")

PruneModels = Callable[..., dict[str, Any]]
"""``prune_models(before=…, by=…, dry_run=…)``: the decision service's pruning of old model versions."""
ArchiveRuns = Callable[[Path, list[str]], dict[str, Any]]
"""``archive_runs(path, run_ids)``: the insight service's writing of runs as an event log file."""


class RetentionStore(Protocol):
    def apply(self, kind: str, before: Any, *, dry_run: bool = False) -> int: ...

    def runs_to_purge(self, before: datetime) -> list[str]: ...

    def purge_runs(self, run_ids: Sequence[str], before: datetime) -> int: ...


class RetentionService:
    def __init__(
        self,
        store: RetentionStore,
        clock: Clock,
        policies: Mapping[str, timedelta],
        *,
        archive_dir: Path | None = None,
    ) -> None:
        unknown = sorted(set(policies) - set(RETAINED_KINDS))
        if unknown:
            raise InvalidInput(
                f"no retention for {', '.join(unknown)}", hint=f"OPSRAIL_RETENTION keys: {', '.join(RETAINED_KINDS)}"
            )
        self.store = store
        self.clock = clock
        self.policies = dict(policies)
        self.archive_dir = archive_dir
        self.audit: Auditor = not_audited
        self.prune_models: PruneModels | None = None
        self.archive_runs: ArchiveRuns | None = None

    def run(
        self,
        *,
        dry_run: bool = False,
        actor: str | None = None,
        archive_dir: Path | None = None,
        no_archive: bool = False,
    ) -> dict[str, Any]:
        """Apply every policy once; returns, per kind, the cut-off time and how many rows were touched.

        Runs are archived to ``archive_dir`` (else the service's folder, ``OPSRAIL_RETENTION_ARCHIVE``) before they
        are deleted; with neither, only ``no_archive`` lets them go. That is checked before anything changes.
        """
        folder = None if no_archive else (archive_dir or self.archive_dir)
        if "runs" in self.policies and not dry_run:
            self._check_archive(folder, no_archive)
        now = self.clock.now()
        done: dict[str, Any] = {}
        for kind, keep in sorted(self.policies.items()):
            before = now - keep
            rows, extra = self._apply(kind, before, dry_run, actor, folder)
            done[kind] = {"keep": keep.total_seconds(), "before": before.isoformat(), "rows": rows, **extra}
        if not dry_run:
            self.audit(actor, "retention.applied", None, done)
        return {"dry_run": dry_run, "kinds": done}

    def _check_archive(self, folder: Path | None, no_archive: bool) -> None:
        if no_archive:
            return
        if folder is None:
            raise InvalidInput(
                "old runs are deleted only after they are archived, and no archive folder is set",
                hint="set OPSRAIL_RETENTION_ARCHIVE to a folder or pass --archive DIR (--no-archive deletes them "
                "without an archive)",
            )
        if not folder.is_dir():
            raise InvalidInput(f"no archive folder {folder}", hint="create it first, or name another with --archive")
        if self.archive_runs is None:
            raise InvalidInput("runs cannot be archived here", hint="run `opsrail retention run` with the CLI")

    def _apply(
        self, kind: str, before: datetime, dry_run: bool, actor: str | None, folder: Path | None
    ) -> tuple[int, dict[str, Any]]:
        if kind == "runs":
            return self._purge_runs(before, dry_run, folder)
        if kind != "model_versions":
            return self.store.apply(kind, before, dry_run=dry_run), {}
        # Old model versions go through the decision service: it knows which version answers and audits each one.
        if self.prune_models is None:
            raise InvalidInput("model versions cannot be pruned here", hint="run `opsrail retention run` with the CLI")
        pruned = self.prune_models(before=before, by=actor or "retention", dry_run=dry_run)
        return len(pruned["pruned"]), {}

    def _purge_runs(self, before: datetime, dry_run: bool, folder: Path | None) -> tuple[int, dict[str, Any]]:
        """Archive, then delete, the finished runs that ended before ``before`` (whole families only)."""
        run_ids = self.store.runs_to_purge(before)
        if dry_run or not run_ids:
            return len(run_ids), {}
        extra: dict[str, Any] = {"archive": None}
        if folder is not None:
            assert self.archive_runs is not None  # checked before anything changed
            path = _archive_path(folder, before)
            written = self.archive_runs(path, run_ids)
            extra = {
                "archive": str(path),
                "sha256": _sha256(path),
                "bytes": written["bytes"],
                "archived_runs": written["runs"],
                "archived_events": written["events"],
                "runs_without_step_ends": written["runs_without_step_ends"],
            }
        return self.store.purge_runs(run_ids, before), extra


def _archive_path(folder: Path, before: datetime) -> Path:
    """``runs-ended-before-20260101T000000Z.csv.gz`` in ``folder``, numbered when that name is taken."""
    stem = f"runs-ended-before-{before.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    path = folder / f"{stem}.csv.gz"
    number = 2
    while path.exists():
        path = folder / f"{stem}-{number}.csv.gz"
        number += 1
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
