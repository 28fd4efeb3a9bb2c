"""Operations that ``action``, ``decide`` and ``notify`` steps call, by name.

Built-in: ``core.set`` (returns its parameters), ``core.log`` (logs a message), ``core.fail`` (fails,
retryable or not, for tests and simple flows). Connectors register theirs later. Until decision tables and
models arrive, a ``decide`` step is answered by a stand-in that returns the step's ``with`` values plus the
decision's name, so playbooks that decide can already run end to end.
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


class OperationFailed(Exception):
    """An operation answered but could not do what was asked; ``retryable`` tells whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


Operation = Callable[[dict[str, Any], CallContext], Awaitable[Any]]


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

    def register(self, name: str, operation: Operation) -> None:
        self._actions[name] = operation

    def names(self) -> list[str]:
        return sorted(self._actions)

    async def call(self, kind: str, name: str, params: dict[str, Any], call: CallContext) -> Any:
        if kind == "decide":
            return {"decision": name, **params}
        operation = self._actions.get(name)
        if operation is None:
            raise OperationFailed(f"no operation named {name!r}; known: {', '.join(self.names())}", retryable=False)
        return await operation(params, call)
