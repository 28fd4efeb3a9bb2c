from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from opsrail.services import GroupCommitter

MODES = ["inline", "threaded", "async"]


def _committer(
    write: Callable[[Sequence[int]], list[int]], mode: str, max_items: int = 5000
) -> GroupCommitter[int, int]:
    """A writer in one of its three modes; the coroutine writer yields to the loop before it writes, as a real
    round trip would, so that requests arriving meanwhile queue up for the next group."""

    async def write_async(items: Sequence[int]) -> list[int]:
        await asyncio.sleep(0)
        return write(items)

    return GroupCommitter(
        write, inline=mode == "inline", write_async=write_async if mode == "async" else None, max_items=max_items
    )


@pytest.mark.parametrize("mode", MODES)
def test_concurrent_submissions_share_a_write_and_get_their_own_results(mode: str) -> None:
    calls: list[list[int]] = []

    def write(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        return [i * 10 for i in items]

    committer = _committer(write, mode)
    committer.start()

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(committer.submit([n, n + 1]) for n in range(0, 20, 2)))

    try:
        results = asyncio.run(main())
    finally:
        committer.stop()
    assert results == [[n * 10, (n + 1) * 10] for n in range(0, 20, 2)]
    # Ten concurrent submitters, far fewer transactions: the first alone, then the rest together.
    assert len(calls) <= 2
    assert sorted(i for call in calls for i in call) == list(range(20))


@pytest.mark.parametrize("mode", ["inline", "async"])
def test_groups_respect_the_size_limit(mode: str) -> None:
    calls: list[int] = []

    def write(items: Sequence[int]) -> list[int]:
        calls.append(len(items))
        return list(items)

    committer = _committer(write, mode, max_items=4)
    committer.start()

    async def main() -> None:
        await asyncio.gather(*(committer.submit([1, 2]) for _ in range(5)))

    asyncio.run(main())
    assert calls == [4, 4, 2]


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_write_fails_every_waiter_of_its_group(mode: str) -> None:
    def write(items: Sequence[int]) -> list[int]:
        raise RuntimeError("disk full")

    committer = _committer(write, mode)
    committer.start()

    async def main() -> list[list[int] | BaseException]:
        return list(await asyncio.gather(committer.submit([1]), committer.submit([2]), return_exceptions=True))

    try:
        outcomes = asyncio.run(main())
    finally:
        committer.stop()
    assert all(isinstance(o, RuntimeError) and str(o) == "disk full" for o in outcomes)


@pytest.mark.parametrize("mode", ["threaded", "async"])
def test_submitting_to_a_stopped_writer_fails_clearly(mode: str) -> None:
    committer = _committer(lambda items: list(items), mode)
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(committer.submit([1]))
    committer.start()
    committer.stop()
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(committer.submit([1]))


@pytest.mark.parametrize("mode", MODES)
def test_one_bad_request_does_not_fail_its_group(mode: str) -> None:
    def write(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky")
        return [i + 1 for i in items]

    committer = _committer(write, mode)
    committer.start()

    async def main() -> list[list[int] | BaseException]:
        return list(
            await asyncio.gather(
                committer.submit([1]), committer.submit([13]), committer.submit([2, 3]), return_exceptions=True
            )
        )

    try:
        first, bad, rest = asyncio.run(main())
    finally:
        committer.stop()
    assert first == [2] and rest == [3, 4]
    assert isinstance(bad, ValueError)
