"""Writes held back while a step runs, to be committed in the transaction that saves the step's result.

On SQLite every write transaction takes the single write lock in turn, so a step that writes a ledger record,
a decision record and a few audit entries, each in its own transaction, spends most of its time queueing for that
lock. While the runner executes a step it opens a :class:`StepWrites` for it (a context variable, so it follows
the operation into the tasks and threads it starts); a store that knows how to hold its writes hands them to it
instead of writing, and answers what it would have answered after its commit. The runner gives each step's held
writes to ``RunStore.save_batch``, which applies them in the same transaction as the batch's results: a step's
effects and its result land together or not at all, and a batch of steps costs one commit.

Held writes are invisible to reads until that commit; an operation must not read back what it wrote in the same
step. A write that cannot be applied at commit (someone else took the record or the idempotency key meanwhile)
undoes the rest of its step's writes, and the runner executes that step again without holding, so the operation
then meets the conflict itself, as it would have without holding.

The engine never looks inside a held write: what it is and how it is applied belong to the store that made it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class StepWrites:
    """The writes one step's operation asked for. Thread-safe: operations may write from worker threads."""

    __slots__ = ("_items", "_lock", "_open")

    def __init__(self) -> None:
        self._items: list[object] = []
        self._lock = threading.Lock()
        self._open = True

    def hold(self, item: object) -> bool:
        """Keep ``item`` for the step's commit; False once the step has ended (the caller then writes itself)."""
        with self._lock:
            if not self._open:
                return False
            self._items.append(item)
            return True

    def close(self) -> list[object]:
        """End the step: no more writes are held (one arriving later, from an operation that outlived its
        timeout, is written by its store directly), and those held so far are returned in the order given."""
        with self._lock:
            self._open = False
            return list(self._items)


_current: ContextVar[StepWrites | None] = ContextVar("opsrail_step_writes", default=None)


@contextmanager
def holding_writes() -> Iterator[StepWrites]:
    """Hold the writes of everything run inside the block (and the tasks and threads it starts) for one step."""
    writes = StepWrites()
    token = _current.set(writes)
    try:
        yield writes
    finally:
        _current.reset(token)
        writes.close()


def hold(item: object) -> bool:
    """Hand a write to the step in progress; False when no step holds writes here (write it now, as usual)."""
    writes = _current.get()
    return writes is not None and writes.hold(item)


def holds_writes() -> bool:
    """Whether writes made here would be held for a step's commit."""
    return _current.get() is not None
