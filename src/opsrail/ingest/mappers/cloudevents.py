"""The identity mapper: a payload that is already a CloudEvent, or a JSON array of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CloudEventsMapper:
    name = "cloudevents"
    description = "CloudEvents 1.0 in structured JSON mode (one event or a batch array)"

    def map(self, payload: Any, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        if isinstance(payload, list):
            return list(payload)
        return [payload]
