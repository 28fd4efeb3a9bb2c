"""Retention policies: how long each kind of data keeps its payload, applied on demand, each run audited."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from opsrail.model import Clock, InvalidInput
from opsrail.services._audit import Auditor, not_audited

RETAINED_KINDS = ("events", "dead_letters", "decision_records", "model_versions")

PruneModels = Callable[..., dict[str, Any]]
"""``prune_models(before=…, by=…, dry_run=…)``: the decision service's pruning of old model versions."""


class RetentionStore(Protocol):
    def apply(self, kind: str, before: Any, *, dry_run: bool = False) -> int: ...


class RetentionService:
    def __init__(self, store: RetentionStore, clock: Clock, policies: Mapping[str, timedelta]) -> None:
        unknown = sorted(set(policies) - set(RETAINED_KINDS))
        if unknown:
            raise InvalidInput(
                f"no retention for {', '.join(unknown)}", hint=f"OPSRAIL_RETENTION keys: {', '.join(RETAINED_KINDS)}"
            )
        self.store = store
        self.clock = clock
        self.policies = dict(policies)
        self.audit: Auditor = not_audited
        self.prune_models: PruneModels | None = None

    def run(self, *, dry_run: bool = False, actor: str | None = None) -> dict[str, Any]:
        """Apply every policy once; returns, per kind, the cut-off time and how many rows were touched."""
        now = self.clock.now()
        done: dict[str, Any] = {}
        for kind, keep in sorted(self.policies.items()):
            before = now - keep
            done[kind] = {
                "keep": keep.total_seconds(),
                "before": before.isoformat(),
                "rows": self._apply(kind, before, dry_run, actor),
            }
        if not dry_run:
            self.audit(actor, "retention.applied", None, done)
        return {"dry_run": dry_run, "kinds": done}

    def _apply(self, kind: str, before: datetime, dry_run: bool, actor: str | None) -> int:
        if kind != "model_versions":
            return self.store.apply(kind, before, dry_run=dry_run)
        # Old model versions go through the decision service: it knows which version answers and audits each one.
        if self.prune_models is None:
            raise InvalidInput("model versions cannot be pruned here", hint="run `opsrail retention run` with the CLI")
        pruned = self.prune_models(before=before, by=actor or "retention", dry_run=dry_run)
        return len(pruned["pruned"])
