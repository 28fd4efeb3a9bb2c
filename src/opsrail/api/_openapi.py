"""OpenAPI descriptions of bodies the routes read themselves (to keep raw bytes for dead letters)."""

from __future__ import annotations

from typing import Any

from opsrail.api._problems import PROBLEM_SCHEMA, PROBLEM_TYPE
from opsrail.model import json_schema

_EVENT = {k: v for k, v in json_schema("cloudevent").items() if not k.startswith(("$", "x-"))}
_RECEIPT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "source", "received_at", "status"],
    "properties": {
        "id": {"type": "string"},
        "source": {"type": "string"},
        "received_at": {"type": "string", "format": "date-time"},
        "status": {"type": "string"},
    },
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_TYPE: {"schema": PROBLEM_SCHEMA}}}


_COMMON: dict[int | str, dict[str, Any]] = {
    400: _problem("Invalid input; the payload was dead-lettered"),
    401: _problem("Missing or invalid API token"),
    403: _problem("The token's role may not do this"),
    413: _problem("Body larger than the limit; its head was dead-lettered"),
    415: _problem("Unsupported content type; the payload was dead-lettered"),
    503: _problem("The database is not available"),
}

EVENT_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/cloudevents+json": {"schema": _EVENT}, "application/json": {"schema": _EVENT}},
}
BATCH_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/cloudevents-batch+json": {"schema": {"type": "array", "items": _EVENT}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
}
VENDOR_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
}

RECEIPT_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted and stored", "content": {"application/json": {"schema": _RECEIPT}}},
    200: {"description": "Seen before; the first receipt", "content": {"application/json": {"schema": _RECEIPT}}},
    **_COMMON,
}
BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "One result per event", "content": {"application/json": {"schema": {"type": "object"}}}},
    **_COMMON,
}
INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "New events stored", "content": {"application/json": {"schema": {"type": "object"}}}},
    200: {"description": "All seen before", "content": {"application/json": {"schema": {"type": "object"}}}},
    404: _problem("Unknown source; the payload was dead-lettered"),
    422: _problem("The payload could not be mapped; it was dead-lettered"),
    **_COMMON,
}
