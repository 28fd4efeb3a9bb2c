from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from opsrail.services import GroupCommitter


def test_concurrent_submissions_share_a_write_and_get_their_own_results() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def write(items: Sequence[int]) -> list[int]:
        gate.wait(5)
        calls.append(list(items))
        return [i * 10 for i in items]

    committer: GroupCommitter[int, int] = GroupCommitter(write)
    committer.start()
    try:
        first = committer.submit([1])
        # The writer is blocked on the first write; these queue up and must be written together.
        rest = [committer.submit([n, n + 1]) for n in (2, 4, 6)]
        gate.set()
        assert first.result(5) == [10]
        assert [f.result(5) for f in rest] == [[20, 30], [40, 50], [60, 70]]
    finally:
        committer.stop()
    assert len(calls) <= 2
    assert sorted(i for call in calls for i in call) == [1, 2, 3, 4, 5, 6, 7]


def test_a_failed_write_fails_every_waiter() -> None:
    def write(items: Sequence[int]) -> list[int]:
        raise RuntimeError("disk full")

    committer: GroupCommitter[int, int] = GroupCommitter(write)
    committer.start()
    try:
        future = committer.submit([1])
        with pytest.raises(RuntimeError, match="disk full"):
            future.result(5)
    finally:
        committer.stop()


def test_submitting_to_a_stopped_writer_fails_clearly() -> None:
    committer: GroupCommitter[int, int] = GroupCommitter(lambda items: list(items))
    with pytest.raises(RuntimeError, match="not running"):
        committer.submit([1]).result(1)
