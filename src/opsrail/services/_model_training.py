"""Which training function each model task uses, with the options the CLI and API pass, and the past cases a
text model keeps for similar-case retrieval."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsrail import ml
from opsrail.knowledge import Document
from opsrail.ml import Progress, TrainedModel
from opsrail.model import InvalidInput

TASKS = ("text-classifier", "next-activity", "remaining-time", "sla-breach")
_MAX_CASES = 100_000


def file_error(data: Path, exc: ValueError) -> InvalidInput:
    """A reader's or model's complaint about ``data`` as an input error that names the file once (the readers' own
    messages mostly name it already)."""
    message = str(exc)
    return InvalidInput(message if str(data) in message else f"{data}: {message}")


def train(task: str, data: Path, options: Mapping[str, Any], progress: Progress) -> TrainedModel:
    """Train a model of ``task`` on ``data``; a problem with the data is an :class:`InvalidInput`."""
    try:
        if task == "text-classifier":
            if not options.get("text") or not options.get("label"):
                raise InvalidInput("a text classifier needs --text COLUMN and --label COLUMN")
            return ml.train_text_classifier(
                data,
                text=str(options["text"]),
                label=str(options["label"]),
                target_precision=float(options.get("target_precision") or 0.95),
                seed=int(options.get("seed") or 0),
                progress=progress,
            )
        log_options: dict[str, Any] = {
            "case": options.get("case"),
            "activity": options.get("activity"),
            "timestamp": options.get("timestamp"),
            "split": options.get("split") or "tax2017",
            "seed": int(options.get("seed") or 0),
            "progress": progress,
        }
        if task == "next-activity":
            return ml.train_next_activity(data, **log_options)
        if task == "remaining-time":
            return ml.train_remaining_time(data, **log_options)
        if task == "sla-breach":
            target_seconds = options.get("target_seconds")
            target_column = options.get("target_column")
            if target_seconds is None and not target_column:
                raise InvalidInput("an SLA-breach model needs --target PT8H (a duration) or --target COLUMN")
            return ml.train_sla_breach(
                data,
                target_seconds=float(target_seconds) if target_seconds is not None else None,
                target_column=target_column,
                **log_options,
            )
    except ValueError as exc:
        raise file_error(data, exc) from None
    raise InvalidInput(f"unknown model task {task!r}", hint=f"one of: {', '.join(TASKS)}")


def case_documents(task: str, data: Path, model: TrainedModel) -> list[Document]:
    """The labelled rows a text classifier was trained on, as past cases for similar-case retrieval."""
    if task != "text-classifier":
        return []
    records = ml.labelled_records(data, text=model.columns["text"], label=model.columns["label"])
    documents = []
    for number, body, label in records:
        text = body.strip()
        if not text:
            continue
        documents.append(
            Document(
                id=f"{data.name}:{number}",
                kind="case",
                title=f"{label}: {text[:60]}",
                text=text,
                source=f"{data.name}#line-{number}",
                metadata={"label": label},
            )
        )
        if len(documents) >= _MAX_CASES:
            break
    return documents
