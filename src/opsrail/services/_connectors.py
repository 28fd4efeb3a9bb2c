"""Connectors as a use case: register their operations with the engine (every call audited with its idempotency
key), list them with their operations, check each one's health, and keep the calls that failed for good in a
dead-letter queue from which a person can replay them (with the same parameters and idempotency key, so a replay
of something that did land after all changes nothing twice)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from opsrail.connectors import Connector, bind, describe
from opsrail.engine import CallContext, OperationFailed, Operations
from opsrail.model import Clock, Conflict, IdFactory, NotFound, require_one_of
from opsrail.services._audit import Auditor, not_audited


class ConnectorDeadLetters(Protocol):
    def add(self, record: dict[str, Any]) -> None: ...

    def get(self, letter_id: str) -> dict[str, Any] | None: ...

    def find(self, status: str | None, limit: int) -> list[dict[str, Any]]: ...

    def settle(self, letter_id: str, status: str, by: str | None, at: datetime, error: str | None = None) -> None: ...


class ConnectorService:
    def __init__(
        self,
        connectors: Sequence[Connector],
        dead_letters: ConnectorDeadLetters | None = None,
        clock: Clock | None = None,
        ids: IdFactory | None = None,
    ) -> None:
        self.connectors = list(connectors)
        self.dead_letters = dead_letters
        self.clock = clock
        self.ids = ids
        self.audit: Auditor = not_audited
        self.operations: Operations | None = None
        self._params: dict[tuple[str, str], dict[str, Any]] = {}

    def register(self, operations: Operations) -> list[str]:
        self.operations = operations
        names: list[str] = []
        for connector in self.connectors:
            names += bind(operations, connector, self._observe, self.dead_letter)
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

    def dead_letter(self, operation: str, params: dict[str, Any], call: CallContext, error: str) -> None:
        """Keep a call that failed for good (a permanent error, or the last attempt of its step)."""
        if self.dead_letters is None or self.clock is None or self.ids is None:
            return
        letter_id = self.ids.new("cdl")
        self.dead_letters.add(
            {
                "id": letter_id,
                "operation": operation,
                "params": params,
                "idempotency_key": call.idempotency_key,
                "run_id": call.run_id or None,
                "step_id": call.step_id or None,
                "error": error[:4000],
                "status": "dead",
                "created_at": self.clock.now(),
            }
        )
        self.audit(
            None,
            "connector.dead_lettered",
            letter_id,
            {"operation": operation, "run": call.run_id, "idempotency_key": call.idempotency_key},
        )

    def failures(self, status: str | None = "dead", limit: int = 100) -> list[dict[str, Any]]:
        """Calls that failed for good: ``status`` dead (waiting for a replay), replayed, or None for both."""
        require_one_of("status", status, ("dead", "replayed"))
        return self.dead_letters.find(status, limit) if self.dead_letters is not None else []

    async def replay(self, letter_id: str, by: str | None = None) -> dict[str, Any]:
        """Call the operation again with the same parameters and idempotency key."""
        if self.dead_letters is None or self.operations is None or self.clock is None:
            raise NotFound("connector dead letters are not kept here")
        letter = self.dead_letters.get(letter_id)
        if letter is None:
            raise NotFound(
                f"no connector dead letter {letter_id!r}", hint="list them with `opsrail connectors dead-letters`"
            )
        if letter["status"] == "replayed":
            raise Conflict(f"{letter_id} was replayed already", hint="a replayed call is not sent again")
        call = CallContext(letter["run_id"] or "", letter["step_id"] or "", 0, letter["idempotency_key"], True)
        try:
            result = await self.operations.call("action", letter["operation"], dict(letter["params"]), call)
        except OperationFailed as exc:
            self.dead_letters.settle(letter_id, "dead", by, self.clock.now(), f"replay failed: {exc}")
            self.audit(by, "connector.replay_failed", letter_id, {"operation": letter["operation"], "error": str(exc)})
            raise Conflict(
                f"the replay of {letter_id} failed: {exc}", hint="fix the cause, then replay again"
            ) from None
        self.dead_letters.settle(letter_id, "replayed", by, self.clock.now())
        self.audit(by, "connector.replayed", letter_id, {"operation": letter["operation"]})
        return {"id": letter_id, "operation": letter["operation"], "status": "replayed", "result": result}

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
