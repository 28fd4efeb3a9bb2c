"""Group commit: many concurrent requests share one database transaction.

Requests hand their items to the committer and await the commit. Whatever is queued when a flush starts
is written in one transaction, and only then is every waiting request resolved, so no receipt is given
before its event is durable and the commit cost is paid once per group instead of once per request.

Three ways to run the write:

* ``inline``: on the event loop's own thread. For an embedded SQLite file in WAL mode with
  ``synchronous=NORMAL`` a commit is a few hundred microseconds without fsync, far cheaper than handing
  work to another thread and back (which costs GIL switches on every request).
* ``write_async``: a coroutine on the event loop, for PostgreSQL through psycopg: the loop serves other
  requests while the group's one round trip is out, and no thread takes the GIL per group.
* threaded: on one dedicated thread, for another PostgreSQL driver or ``synchronous=FULL`` (an fsync).

In the last two, requests that arrive during a write form the next group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
Job = tuple[list[T], "asyncio.Future[list[R]]"]


class GroupCommitter(Generic[T, R]):
    """Runs ``write(items) -> results`` (one result per item, in order) for groups of concurrent submitters."""

    def __init__(
        self,
        write: Callable[[Sequence[T]], list[R]],
        *,
        inline: bool,
        write_async: Callable[[Sequence[T]], Awaitable[list[R]]] | None = None,
        max_items: int = 5000,
        name: str = "writer",
    ) -> None:
        self._write = write
        self._write_async = write_async
        self.inline = inline and write_async is None
        self._max_items = max_items
        self._name = name
        self._pending: list[Job[T, R]] = []
        self._flushing = False
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False

    def start(self) -> None:
        self._started = True
        if not self.inline and self._write_async is None and self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)

    def stop(self) -> None:
        self._started = False
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def running(self) -> bool:
        return self.inline or self._executor is not None or (self._write_async is not None and self._started)

    async def submit(self, items: Sequence[T]) -> list[R]:
        if not self.running:
            raise RuntimeError("the writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[R]] = loop.create_future()
        self._pending.append((list(items), future))
        if not self._flushing:
            self._flushing = True
            if self.inline:
                # Run after the callbacks already ready, so requests parsed in this loop turn join the group.
                loop.call_soon(self._flush_inline)
            elif self._write_async is not None:
                self._task = loop.create_task(self._flush_async())
            else:
                self._task = loop.create_task(self._flush_threaded())
        return await future

    def _take(self) -> list[Job[T, R]]:
        taken: list[Job[T, R]] = []
        count = 0
        while self._pending and (not taken or count + len(self._pending[0][0]) <= self._max_items):
            job = self._pending.pop(0)
            taken.append(job)
            count += len(job[0])
        return taken

    def _flush_inline(self) -> None:
        try:
            while self._pending:
                jobs = self._take()
                self._deliver(jobs, self._run(jobs))
        finally:
            self._flushing = False

    async def _flush_threaded(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                jobs = self._take()
                outcomes = await loop.run_in_executor(self._executor, self._run, jobs)
                self._deliver(jobs, outcomes)
        finally:
            self._flushing = False

    async def _flush_async(self) -> None:
        try:
            while self._pending:
                jobs = self._take()
                self._deliver(jobs, await self._run_async(jobs))
        finally:
            self._flushing = False

    async def _run_async(self, jobs: list[Job[T, R]]) -> list[list[R] | Exception]:
        """``_run`` for a coroutine writer: the same outcomes, the same fallback to one request at a time."""
        assert self._write_async is not None
        try:
            return _split(jobs, await self._write_async([item for batch, _ in jobs for item in batch]))
        except Exception as exc:
            if len(jobs) == 1:
                return [exc]
        outcomes: list[list[R] | Exception] = []
        for batch, _ in jobs:
            try:
                outcomes.append(await self._write_async(batch))
            except Exception as exc:  # handed to that request's waiter
                outcomes.append(exc)
        return outcomes

    def _run(self, jobs: list[Job[T, R]]) -> list[list[R] | Exception]:
        """Write the group in one transaction; return one outcome per job (its results, or its error)."""
        try:
            results = self._write([item for batch, _ in jobs for item in batch])
        except Exception as exc:
            if len(jobs) == 1:
                return [exc]
        else:
            return _split(jobs, results)
        # One request's bad data must not fail its neighbours: write each request on its own.
        outcomes: list[list[R] | Exception] = []
        for batch, _ in jobs:
            try:
                outcomes.append(self._write(batch))
            except Exception as exc:  # handed to that request's waiter
                outcomes.append(exc)
        return outcomes

    @staticmethod
    def _deliver(jobs: list[Job[T, R]], outcomes: list[list[R] | Exception]) -> None:
        for (_, future), outcome in zip(jobs, outcomes, strict=True):
            if future.cancelled():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def _split(jobs: list[Job[T, R]], results: list[R]) -> list[list[R] | Exception]:
    """The group's results cut back into one list per request."""
    outcomes: list[list[R] | Exception] = []
    offset = 0
    for batch, _ in jobs:
        outcomes.append(results[offset : offset + len(batch)])
        offset += len(batch)
    return outcomes
