"""Alerts: governance events that need people's attention become canonical escalation events.

An alert is ingested like any other event (``com.opsrail.escalation.opened`` from source ``opsrail/governance``),
so a playbook triggered by escalations notifies whoever should know, and the alert is kept, deduplicated and
visible in ``opsrail events list`` like everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from opsrail.engine import ALERT_SOURCE
from opsrail.model import Clock
from opsrail.services._ingestion import IngestionService

Alert = Callable[[str, str, dict[str, Any]], None]


def escalation_alert(ingestion: IngestionService, clock: Clock) -> Alert:
    def alert(kind: str, subject: str, details: dict[str, Any]) -> None:
        at = clock.now()
        reason = str(details.get("reason") or kind)
        scalars = {k: v for k, v in details.items() if isinstance(v, (str, int, float, bool)) and k != "reason"}
        event = {
            "specversion": "1.0",
            "id": f"{kind}:{subject}:{at.isoformat()}",
            "source": ALERT_SOURCE,
            "type": "com.opsrail.escalation.opened",
            "time": at.isoformat(),
            "subject": subject,
            "data": {
                "id": f"alert:{kind}:{subject}:{at.isoformat()}",
                "level": 1,
                "reason": reason,
                "status": "open",
                "opened_at": at.isoformat(),
                "attributes": {"alert": kind, "subject": subject, **scalars},
            },
        }
        ingestion.ingest_single(orjson.dumps(event), channel="governance")

    return alert
