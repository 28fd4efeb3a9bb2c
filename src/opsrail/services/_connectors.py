"""Connectors as a use case: register their operations with the engine (every call audited with its idempotency
key), list them with their operations, and check each one's health."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from opsrail.connectors import Connector, bind, describe
from opsrail.engine import CallContext, Operations
from opsrail.services._audit import Auditor, not_audited


class ConnectorService:
    def __init__(self, connectors: Sequence[Connector]) -> None:
        self.connectors = list(connectors)
        self.audit: Auditor = not_audited

    def register(self, operations: Operations) -> list[str]:
        names: list[str] = []
        for connector in self.connectors:
            names += bind(operations, connector, self._observe)
        return names

    def _observe(self, operation: str, call: CallContext, outcome: str, error: str | None) -> None:
        self.audit(
            None,
            "connector.called",
            operation,
            {
                "run": call.run_id,
                "step": call.step_id,
                "attempt": call.attempt,
                "idempotency_key": call.idempotency_key,
                "outcome": outcome,
                "error": error,
            },
        )

    def catalogue(self) -> list[dict[str, Any]]:
        return [describe(c) for c in self.connectors]

    async def check(self) -> list[dict[str, Any]]:
        async def one(connector: Connector) -> dict[str, Any]:
            try:
                health = await asyncio.wait_for(connector.check(), timeout=15)
            except Exception as exc:  # a check never raises; if one does, it is a finding
                health = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
            return {"name": connector.name, **health}

        return list(await asyncio.gather(*(one(c) for c in self.connectors)))
