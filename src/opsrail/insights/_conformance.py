"""Conformance of runs to the playbook version each one pinned: did a run do what its version says, in its order?

A run is replayed over its version's steps (after its last migration, if it was migrated: earlier events belong
to the version it came from). Deviations:

``unknown_step``
    an event names a step the version does not have;
``order``
    a step started (became ready, began to wait or opened a task) before one of its ``needs`` had ended;
``handler_without_cause``
    a handler (a fallback, compensation or approval-timeout step) started without a failure or timeout naming it;
``repeated``
    a step succeeded twice;
``missing``
    the run succeeded, but a step that is not a handler never ended (succeeded, failed or skipped).

The engine enforces the version's order, so deviations point at state changed outside it (a migration that mapped
steps badly, a store edited by hand) or at an engine defect. *Interventions* are counted apart: people retrying a
step, overriding a decision, migrating or pausing a run, reassigning a task, and tasks escalated; they are within
the version's rules but are the manual touches a leader wants to see per version. ``fitness`` is the share of the
version's runs without a deviation; ``main_variant_share`` the share of its finished runs that followed its most
frequent variant, the "happy path".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opsrail.insights._stats import rounded
from opsrail.insights._traces import INTERVENTIONS, STARTS, TERMINAL, Trace, completions
from opsrail.playbooks import Playbook

DEVIATIONS = ("unknown_step", "order", "handler_without_cause", "repeated", "missing")


@dataclass(frozen=True, slots=True)
class Deviation:
    kind: str
    step: str
    detail: str


@dataclass(slots=True)
class RunConformance:
    run_id: str
    deviations: list[Deviation] = field(default_factory=list)
    interventions: Counter[str] = field(default_factory=Counter)


def check_run(trace: Trace, playbook: Playbook) -> RunConformance:
    """Replay one run's events over ``playbook`` (its pinned version); see the module's docstring."""
    result = RunConformance(trace.run_id)
    needs = {step.id: tuple(step.needs) for step in playbook.steps}
    handlers = playbook.handler_ids()
    ended: dict[str, str] = {}
    activated: set[str] = set()
    started: set[str] = set()
    last_migration = max((i for i, e in enumerate(trace.events) if e.activity == "run.migrated"), default=-1)
    for index, event in enumerate(trace.events):
        if event.activity in INTERVENTIONS:
            result.interventions[event.activity] += 1
        checked = index > last_migration
        step = event.step
        if step is None:
            continue
        if step not in needs:
            if checked:
                result.deviations.append(
                    Deviation("unknown_step", step, f"{event.activity} of a step not in the version")
                )
            continue
        if event.activity == "step.activated":
            activated.add(step)
        elif event.activity in STARTS and step not in started:
            started.add(step)
            if not checked:
                continue
            for need in needs[step]:
                if need not in ended:
                    result.deviations.append(Deviation("order", step, f"started before its need {need!r} ended"))
            if step in handlers and step not in activated:
                result.deviations.append(
                    Deviation("handler_without_cause", step, "a handler started without a failure or timeout naming it")
                )
        elif event.activity in TERMINAL:
            outcome = event.activity.removeprefix("step.")
            if checked and outcome == "succeeded" and ended.get(step) == "succeeded":
                result.deviations.append(Deviation("repeated", step, "succeeded twice"))
            ended[step] = outcome
            started.discard(step)
        elif event.activity == "step.retried":
            started.discard(step)
    if trace.status == "succeeded":
        for step in needs:
            if step not in ended and step not in handlers:
                result.deviations.append(Deviation("missing", step, "the run succeeded without this step ending"))
    return result


def conformance(traces: Iterable[Trace], playbook_of: Callable[[str, int], Playbook | None]) -> list[dict[str, Any]]:
    """Per playbook version: runs, runs checked, conformant runs, fitness, deviations by kind (count, runs, steps,
    an example run and what was wrong), interventions by kind, and the share of finished runs on the main variant.
    Runs whose version cannot be read are counted in ``unchecked``."""
    groups: dict[tuple[str, int], list[Trace]] = defaultdict(list)
    for trace in traces:
        groups[trace.playbook_id, trace.version].append(trace)
    report = []
    for (playbook_id, version), runs in sorted(groups.items()):
        playbook = playbook_of(playbook_id, version)
        if playbook is None:
            report.append({"playbook": playbook_id, "version": version, "runs": len(runs), "unchecked": len(runs)})
            continue
        deviations: dict[str, dict[str, Any]] = {}
        interventions: Counter[str] = Counter()
        conformant = 0
        for trace in runs:
            checked = check_run(trace, playbook)
            interventions.update(checked.interventions)
            conformant += not checked.deviations
            for kind in {d.kind for d in checked.deviations}:
                found = deviations.setdefault(kind, {"runs": 0, "count": 0, "steps": Counter(), "example": None})
                found["runs"] += 1
            for deviation in checked.deviations:
                found = deviations[deviation.kind]
                found["count"] += 1
                found["steps"][deviation.step] += 1
                if found["example"] is None:
                    found["example"] = {"run": trace.run_id, "step": deviation.step, "detail": deviation.detail}
        finished = [trace for trace in runs if trace.finished]
        paths = Counter(tuple(label for label, _ in completions(trace)) for trace in finished)
        main = paths.most_common(1)[0] if paths else None
        report.append(
            {
                "playbook": playbook_id,
                "version": version,
                "runs": len(runs),
                "unchecked": 0,
                "conformant": conformant,
                "fitness": rounded(conformant / len(runs)),
                "deviations": {
                    kind: {**found, "steps": dict(found["steps"].most_common())}
                    for kind, found in sorted(deviations.items(), key=lambda item: DEVIATIONS.index(item[0]))
                },
                "interventions": dict(sorted(interventions.items())),
                "finished": len(finished),
                "main_variant": list(main[0]) if main else None,
                "main_variant_share": rounded(main[1] / len(finished)) if main else None,
            }
        )
    return report
