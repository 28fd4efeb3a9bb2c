"""Open runs scored by an event-log model trained on the finished ones: which will breach, run long, or do what next.

The loop: ``opsrail insights export runs.csv`` writes the finished runs; ``opsrail models train sla-breach --log
runs.csv --target PT8H --name run-sla`` (or ``remaining-time``, ``next-activity``) learns from them; ``opsrail
insights at-risk run-sla`` gives each open run's prefix (its step ends so far, as the export writes them, with its
case attributes) to that model. Runs are read oldest first (the longest open are the likeliest to be late), at
most ``MAX_OPEN`` of them; a run none of whose steps has ended has no prefix to score and is counted. Each batch of
runs is scored in one call of the model (``evaluate_many``, no explanations); only the runs the report shows are
explained (the features that pushed each answer most, ``why``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from opsrail.model import InvalidInput, NotFound
from opsrail.services._kpis import Segmenter
from opsrail.services._log_export import BATCH_RUNS, ExportStore, cases

MAX_OPEN = 5_000
LOG_TASKS = ("sla-breach", "remaining-time", "next-activity")


class Scorer(Protocol):
    def catalog(self) -> list[dict[str, Any]]: ...

    def evaluate(self, name: str, inputs: dict[str, Any], *, version: int | None = None) -> Any: ...

    def evaluate_many(
        self, name: str, inputs: Sequence[dict[str, Any]], *, version: int | None = None
    ) -> list[Any]: ...


def _task_of(scorer: Scorer, model: str) -> str:
    found = next((item for item in scorer.catalog() if item["name"] == model), None)
    if found is None:
        raise NotFound(
            f"no model named {model!r}",
            hint="export the finished runs and train one: `opsrail insights export runs.csv` then "
            "`opsrail models train sla-breach --log runs.csv --target PT8H --name run-sla`",
        )
    task = found.get("task")
    if found.get("kind") != "model" or task not in LOG_TASKS:
        raise InvalidInput(
            f"{model} is {'a decision table' if found.get('kind') != 'model' else f'a {task} model'}; scoring open "
            "runs needs an event-log model (sla-breach, remaining-time or next-activity)",
            hint="train one on `opsrail insights export`, e.g. `opsrail models train sla-breach --log runs.csv "
            "--target PT8H`",
        )
    return str(task)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _inputs(attributes: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "events": [
            {
                "activity": event["concept:name"],
                "timestamp": event["time:timestamp"].isoformat(),
                **{k: _jsonable(v) for k, v in event.items() if k not in ("concept:name", "time:timestamp")},
            }
            for event in events
        ],
        "attributes": {k: _jsonable(v) for k, v in attributes.items() if v is not None and "outcome:" not in k},
    }


def at_risk(
    store: ExportStore,
    segmenters: dict[str, Segmenter],
    scorer: Scorer,
    now: datetime,
    model: str,
    *,
    playbook_id: str | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """The open runs (of one playbook, or all) scored by ``model``, most at risk first, at most ``limit``."""
    task = _task_of(scorer, model)
    scored: list[dict[str, Any]] = []
    prefixes: dict[str, dict[str, Any]] = {}
    not_scored = seen = 0
    version: int | None = None
    after: tuple[datetime, str] | None = None
    while seen < MAX_OPEN:
        batch = store.export_runs(None, None, playbook_id, after, min(BATCH_RUNS, MAX_OPEN - seen), finished=False)
        if not batch:
            break
        seen += len(batch)
        after = (batch[-1]["created_at"], batch[-1]["id"])
        runs = [
            (row, events, _inputs(attributes, events)) for row, attributes, events in cases(store, batch, segmenters)
        ]
        not_scored += sum(1 for _, events, _ in runs if not events)
        runs = [run for run in runs if run[1]]
        if not runs:
            continue
        evaluations = _scored(scorer, model, [inputs for _, _, inputs in runs], version)
        version = evaluations[0].version  # every run scored by the same version
        for (row, events, inputs), evaluation in zip(runs, evaluations, strict=True):
            scored.append(_row(task, row, events, evaluation, now))
            prefixes[row["id"]] = inputs
    capped = seen >= MAX_OPEN and bool(store.export_runs(None, None, playbook_id, after, 1, finished=False))
    scored.sort(key=_risk_order(task))
    shown = scored[:limit]
    for item in shown:  # only what is shown is explained: the explanation costs more than the answer
        explained = scorer.evaluate(model, prefixes[item["run_id"]], version=version)
        item["why"] = [
            {"feature": part["feature"], "value": part.get("value"), "weight": part["weight"]}
            for part in explained.explanation[:3]
        ]
    return {
        "model": {"name": model, "version": version, "task": task},
        "as_of": now.isoformat(),
        "open_runs": seen,
        "scored": len(scored),
        "not_scored": not_scored,
        "capped_at": MAX_OPEN if capped else None,
        "runs": shown,
    }


def _scored(scorer: Scorer, model: str, inputs: list[dict[str, Any]], version: int | None) -> list[Any]:
    try:
        return scorer.evaluate_many(model, inputs, version=version)
    except InvalidInput as exc:
        raise InvalidInput(
            f"{exc.detail}; was {model} trained on runs exported by `opsrail insights export`?",
            hint="train it on an export of the finished runs",
        ) from None


def _row(
    task: str, row: dict[str, Any], events: list[dict[str, Any]], evaluation: Any, now: datetime
) -> dict[str, Any]:
    last = events[-1]
    outputs = evaluation.outputs
    found: dict[str, Any] = {
        "run_id": row["id"],
        "playbook": row["playbook_id"],
        "version": int(row["version"]),
        "started": row["created_at"].isoformat(),
        "open_hours": round((now - row["created_at"]).total_seconds() / 3600, 3),
        "steps_ended": len(events),
        "last_activity": last["concept:name"],
        "last_at": last["time:timestamp"].isoformat(),
        "confidence": round(float(evaluation.confidence), 4),
        "accepted": bool(evaluation.accepted),
    }
    if task == "sla-breach":
        found["breach_probability"] = round(float(outputs.get("value", 0.0)), 4)
        found["label"] = outputs.get("label")
    elif task == "remaining-time":
        seconds = max(0.0, float(outputs.get("value", 0.0)))
        end = last["time:timestamp"] + timedelta(seconds=seconds)
        found["remaining_hours"] = round(seconds / 3600, 3)
        found["predicted_end"] = end.isoformat()
        found["overdue"] = end < now  # the model expected it to have ended by now
    else:
        found["next_activity"] = outputs.get("label")
    return found


def _risk_order(task: str) -> Any:
    if task == "sla-breach":
        return lambda item: (-item["breach_probability"], item["started"])
    if task == "remaining-time":
        return lambda item: (item["predicted_end"], item["started"])
    return lambda item: (item["started"],)
