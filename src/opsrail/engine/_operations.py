"""Operations that ``action``, ``decide`` and ``notify`` steps call, by name.

Built-in: ``core.set`` (returns its parameters), ``core.log`` (logs a message), ``core.fail`` (fails,
retryable or not, for tests and simple flows). Connectors and plugins register theirs. A ``decide`` step is
answered by the decider the decision layer installs (``set_decider``); without one (a bare engine in tests), a
stand-in returns the step's ``with`` values plus the decision's name.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("opsrail.engine")


@dataclass(frozen=True, slots=True)
class CallContext:
    run_id: str
    step_id: str
    attempt: int
    idempotency_key: str
    final: bool = False  # no retry follows if this attempt fails (its retry policy is used up)
    first_call: bool = False
    """The engine knows no earlier call can have used this idempotency key: the step's first attempt, executed
    once. A connector whose vendor has no idempotency header, and that looks for an earlier create before creating,
    may then create at once (any later call with the key, a retry or a replay, is not first and looks). False
    unless the engine says so."""


class OperationFailed(Exception):
    """An operation answered but could not do what was asked; ``retryable`` tells whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


Operation = Callable[[dict[str, Any], CallContext], Awaitable[Any]]
Decider = Callable[[str, dict[str, Any], CallContext], Awaitable[Any]]
"""``decider(name, inputs, call)``: a decision's output, or a ``ReviewNeeded`` for a person to settle."""


async def core_set(params: dict[str, Any], call: CallContext) -> Any:
    return params


async def core_log(params: dict[str, Any], call: CallContext) -> Any:
    log.info(str(params.get("message", "")), extra={"run_id": call.run_id, "step_id": call.step_id})
    return {"logged": True}


async def core_fail(params: dict[str, Any], call: CallContext) -> Any:
    raise OperationFailed(str(params.get("message", "failed on purpose")), retryable=bool(params.get("retryable")))


class Operations:
    """The registry the runner calls; names are ``<connector>.<operation>``."""

    def __init__(self) -> None:
        self._actions: dict[str, Operation] = {"core.set": core_set, "core.log": core_log, "core.fail": core_fail}
        self._decider: Decider | None = None

    def set_decider(self, decider: Decider) -> None:
        self._decider = decider

    def register(self, name: str, operation: Operation) -> None:
        self._actions[name] = operation

    def names(self) -> list[str]:
        return sorted(self._actions)

    async def call(self, kind: str, name: str, params: dict[str, Any], call: CallContext) -> Any:
        if kind == "decide":
            if self._decider is not None:
                return await self._decider(name, params, call)
            return {"decision": name, **params}
        operation = self._actions.get(name)
        if operation is None:
            raise OperationFailed(f"no operation named {name!r}; known: {', '.join(self.names())}", retryable=False)
        return await operation(params, call)
