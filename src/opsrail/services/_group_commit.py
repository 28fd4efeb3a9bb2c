"""Group commit: many concurrent requests share one database transaction.

Each request hands its events to one writer thread and waits for the commit. The writer drains
whatever is queued, writes it in one transaction and only then resolves every waiting request, so
no receipt is given before its event is durable, and the commit cost (an fsync with
``synchronous=FULL``) is paid once per group instead of once per request.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class GroupCommitter(Generic[T, R]):
    """Runs ``write(items) -> results`` (one result per item, in order) on a single thread, in groups."""

    def __init__(self, write: Callable[[Sequence[T]], list[R]], *, max_items: int = 5000, name: str = "writer"):
        self._write = write
        self._max_items = max_items
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._thread.start()
                self._started = True

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            if self._started:
                self._queue.put(_STOP)
                self._thread.join(timeout)
                self._started = False

    @property
    def running(self) -> bool:
        return self._started

    def submit(self, items: Sequence[T]) -> Future[list[R]]:
        future: Future[list[R]] = Future()
        if not self._started:
            future.set_exception(RuntimeError("the writer is not running"))
            return future
        self._queue.put((list(items), future))
        return future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            jobs: list[tuple[list[T], Future[list[R]]]] = [first]  # type: ignore[list-item]
            count = len(jobs[0][0])
            stop_after = False
            while count < self._max_items:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop_after = True
                    break
                jobs.append(job)  # type: ignore[arg-type]
                count += len(job[0])  # type: ignore[index]
            self._flush(jobs)
            if stop_after:
                return

    def _flush(self, jobs: list[tuple[list[T], Future[list[R]]]]) -> None:
        items = [item for batch, _ in jobs for item in batch]
        try:
            results = self._write(items)
        except BaseException as exc:  # every waiter must hear about the failure, whatever it is
            for _, future in jobs:
                future.set_exception(exc)
            return
        offset = 0
        for batch, future in jobs:
            future.set_result(results[offset : offset + len(batch)])
            offset += len(batch)
