"""Decoding request bodies: one JSON event, a JSON array batch, or NDJSON lines.

Pure parsing. Each batch item keeps its own JSON text (an NDJSON line byte for byte) so that a
rejected item can be dead-lettered alone and replayed later without the rest of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from opsrail.ingest._normalise import json_type
from opsrail.model import FieldError, InvalidInput, UnsupportedMediaType

JSON_TYPES = ("application/json", "application/cloudevents+json")
BATCH_TYPES = ("application/cloudevents-batch+json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq")


def media_type(content_type: str | None) -> str:
    if not content_type:
        return "application/json"
    return content_type.split(";", 1)[0].strip().lower()


def decode_json(body: bytes, root: str = "$") -> Any:
    if not body.strip():
        raise InvalidInput("the request body is empty", hint="send a JSON document", errors=[FieldError(root, "empty")])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            "the request body is not valid JSON",
            hint="check quoting and commas; the position is in the error",
            errors=[FieldError(root, str(exc), "json")],
        ) from None


@dataclass(slots=True)
class BatchItem:
    """One item of a batch: its own JSON text (an NDJSON line as sent, an array item re-encoded), and either
    its decoded value or why it could not be decoded."""

    index: int
    raw: bytes
    value: Any = None
    error: InvalidInput | None = None


def split_batch(body: bytes, content_type: str | None) -> list[BatchItem]:
    """Split a batch body into items. NDJSON lines fail one by one; a broken JSON array fails as a whole."""
    kind = media_type(content_type)
    if kind in NDJSON_TYPES:
        items: list[BatchItem] = []
        loads = orjson.loads
        for line in body.splitlines():
            if not line or line[0] in b" \t\r\x1e" or line[-1] in b" \t\r":
                line = line.strip().lstrip(b"\x1e")  # json-seq records start with RS
                if not line:
                    continue
            index = len(items)
            try:
                items.append(BatchItem(index, line, loads(line)))
            except orjson.JSONDecodeError as exc:
                error = InvalidInput(
                    f"line {index + 1} is not valid JSON",
                    errors=[FieldError(f"$[{index}]", str(exc), "json")],
                )
                items.append(BatchItem(index, line, error=error))
        if not items:
            raise InvalidInput("the batch is empty", errors=[FieldError("$", "no events")])
        return items
    if kind in JSON_TYPES or kind in BATCH_TYPES:
        value = decode_json(body)
        if not isinstance(value, list):
            raise InvalidInput(
                "a JSON batch must be an array of CloudEvents",
                hint="send application/cloudevents-batch+json (an array) or application/x-ndjson (one event a line)",
                errors=[FieldError("$", f"expected an array, got {json_type(value)}", "type")],
            )
        if not value:
            raise InvalidInput("the batch is empty", errors=[FieldError("$", "no events")])
        return [BatchItem(i, orjson.dumps(v), v) for i, v in enumerate(value)]
    raise UnsupportedMediaType(
        f"content type {kind!r} is not accepted for batches",
        hint="use application/x-ndjson or application/cloudevents-batch+json",
    )


def check_single_media_type(content_type: str | None) -> None:
    kind = media_type(content_type)
    if kind not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"content type {kind!r} is not accepted here",
            hint="send application/cloudevents+json or application/json; batches go to POST /v1/events:batch",
        )


NUL_ESCAPE = b"\\u0000"


def nul_errors(value: Any, root: str = "$") -> list[FieldError]:
    """Where a decoded document holds the NUL character, which no database text column can store."""
    found: list[FieldError] = []
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                found.append(FieldError(path, "text may not contain the NUL character (\\u0000)", "nul"))
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    found.append(FieldError(path, "a key may not contain the NUL character (\\u0000)", "nul"))
                stack.append((f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]", child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
    return sorted(found, key=lambda e: e.path)


def refuse_nul(body: bytes, value: Any, root: str = "$") -> None:
    # Cheap test first: JSON can only carry NUL escaped, so most bodies are cleared by one byte search.
    if NUL_ESCAPE in body:
        errors = nul_errors(value, root)
        if errors:
            raise InvalidInput("text may not contain the NUL character", hint="remove it or encode it", errors=errors)
