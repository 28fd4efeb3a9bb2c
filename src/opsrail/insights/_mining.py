"""Process maps and variants mined from runs: what the runs of a playbook actually did, and how often.

An activity is a step's end: its id when it succeeded, ``id (failed)`` when it failed (a skipped step did no work
and is left out). A run's *variant* is its sequence of activities in the order they ended; parallel steps that end
in another order make another variant, as in any process-mining tool. The *process map* is the directly-follows
graph over every run, in the order of the flow (by the median place of a node or edge in its runs, then the most
frequent first): nodes are activities with how often they happened and how long the step took (from the
step becoming ready, starting to wait or opening a task, to its end), edges join consecutive activities of a run
with how often and the time between their ends. ``START`` and ``END`` stand for a run's start and its end
(finished runs only).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from opsrail.insights._stats import median_or_none, rounded
from opsrail.insights._traces import STARTS, TERMINAL, Trace, completions, step_label

START = "▶ start"
END = "■ end"
_ENDS = ("step.succeeded", "step.failed")


def _first(item: tuple[int, Any]) -> int:
    return item[0]


def _minutes(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 60.0


def variants(
    traces: Iterable[Trace], top: int = 10, *, rank: Callable[[Trace, str], int] | None = None
) -> dict[str, Any]:
    """The most frequent variants: activities, runs, share of runs, median run duration (finished runs, hours),
    the newest run that followed it, and how many other variants there are.

    With ``rank`` (a step's place in its run's playbook version), a variant is the steps that ended and how, in the
    playbook's order: runs whose parallel steps ended in another order fall together (a *path*)."""
    by_variant: dict[tuple[str, ...], list[Trace]] = defaultdict(list)
    total = 0
    for trace in traces:
        total += 1
        ended = completions(trace)
        if rank is not None:
            steps = [e.step for e in trace.events if e.step is not None and e.activity in _ENDS]
            ended = [item for _, item in sorted(zip((rank(trace, s) for s in steps), ended, strict=True), key=_first)]
        by_variant[tuple(label for label, _ in ended)].append(trace)
    ordered = sorted(by_variant.items(), key=lambda item: (-len(item[1]), item[0]))
    shown: list[dict[str, Any]] = []
    for activities, runs in ordered[:top]:
        hours = [
            (run.finished_at - run.created_at).total_seconds() / 3600.0
            for run in runs
            if run.finished and run.finished_at is not None
        ]
        newest = max(runs, key=lambda run: (run.created_at, run.run_id))
        statuses = Counter(run.status for run in runs)
        shown.append(
            {
                "activities": list(activities),
                "runs": len(runs),
                "share": rounded(len(runs) / total),
                "median_hours": rounded(median_or_none(hours)),
                "statuses": dict(sorted(statuses.items())),
                "example_run": newest.run_id,
            }
        )
    return {
        "runs": total,
        "variants": len(by_variant),
        "top": shown,
        "other_variants": max(0, len(by_variant) - len(shown)),
        "other_runs": total - sum(int(item["runs"]) for item in shown),
    }


def process_map(traces: Iterable[Trace]) -> dict[str, Any]:
    """The directly-follows graph of the runs: ``nodes`` (activity, count, runs, median step minutes, median place
    in its runs counting from 0) and ``edges`` (from, to, count, median minutes between the two ends), in the order
    of the flow."""
    node_count: Counter[str] = Counter()
    node_runs: Counter[str] = Counter()
    node_minutes: dict[str, list[float]] = defaultdict(list)
    edge_count: Counter[tuple[str, str]] = Counter()
    edge_minutes: dict[tuple[str, str], list[float]] = defaultdict(list)
    edge_positions: dict[tuple[str, str], list[int]] = defaultdict(list)
    node_positions: dict[str, list[int]] = defaultdict(list)
    runs = 0
    for trace in traces:
        runs += 1
        started: dict[str, datetime] = {}
        ends: list[tuple[str, datetime]] = []
        for event in trace.events:
            if event.step is None:
                continue
            if event.activity in STARTS:
                started.setdefault(event.step, event.at)
            elif event.activity in TERMINAL:
                began = started.pop(event.step, None)
                if event.activity == "step.skipped":
                    continue
                label = step_label(event.step, event.activity)
                node_count[label] += 1
                if began is not None:
                    node_minutes[label].append(_minutes(event.at, began))
                ends.append((label, event.at))
        for label in {label for label, _ in ends}:
            node_runs[label] += 1
        previous, previous_at = START, trace.created_at
        for position, (label, at) in enumerate(ends):
            edge_count[previous, label] += 1
            edge_minutes[previous, label].append(_minutes(at, previous_at))
            edge_positions[previous, label].append(position)
            node_positions[label].append(position)
            previous, previous_at = label, at
        if trace.finished:
            finished_at = trace.finished_at or previous_at
            edge_count[previous, END] += 1
            edge_minutes[previous, END].append(_minutes(finished_at, previous_at))
            edge_positions[previous, END].append(len(ends))
    nodes = [
        {
            "activity": label,
            "count": count,
            "runs": node_runs[label],
            "median_minutes": rounded(median_or_none(node_minutes[label]), 2),
            "position": rounded(median_or_none(node_positions[label]), 1),
        }
        for label, count in sorted(
            node_count.items(), key=lambda item: (median_or_none(node_positions[item[0]]) or 0.0, -item[1], item[0])
        )
    ]
    edges = [
        {
            "from": source,
            "to": target,
            "count": count,
            "median_minutes": rounded(median_or_none(edge_minutes[source, target]), 2),
        }
        for (source, target), count in sorted(
            edge_count.items(), key=lambda item: (median_or_none(edge_positions[item[0]]) or 0.0, -item[1], item[0])
        )
    ]
    return {"runs": runs, "nodes": nodes, "edges": edges}
