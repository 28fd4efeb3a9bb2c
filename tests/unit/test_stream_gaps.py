"""The change stream sends run-log entries up to the first missing number, and passes a gap only once it has been
open for the grace period (on PostgreSQL a missing number may be a transaction still committing)."""

from __future__ import annotations

from typing import Any

from opsrail.api._stream import GAP_GRACE_SECONDS, sendable


def _entries(*seqs: int) -> list[dict[str, Any]]:
    return [{"seq": s, "run_id": "run_1", "activity": "step.succeeded"} for s in seqs]


def _seqs(entries: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in entries]


def test_contiguous_entries_all_go_at_once() -> None:
    ready, gap = sendable(_entries(4, 5, 6), 3, None, now=100.0)
    assert _seqs(ready) == [4, 5, 6] and gap is None


def test_entries_wait_behind_a_missing_number_until_the_grace_has_passed() -> None:
    ready, gap = sendable(_entries(1, 2, 4, 5), 0, None, now=100.0)
    assert _seqs(ready) == [1, 2] and gap == (2, 100.0)
    # Number 3 is still missing shortly after: nothing more goes out, and the gap keeps its first sighting.
    ready, gap = sendable(_entries(4, 5), 2, gap, now=100.0 + GAP_GRACE_SECONDS / 2)
    assert ready == [] and gap == (2, 100.0)
    # It committed meanwhile: it goes out first, in order.
    ready, gap = sendable(_entries(3, 4, 5), 2, gap, now=100.0 + GAP_GRACE_SECONDS / 2)
    assert _seqs(ready) == [3, 4, 5] and gap is None


def test_a_gap_that_stays_open_is_passed_after_the_grace() -> None:
    ready, gap = sendable(_entries(5, 6), 3, None, now=10.0)
    assert ready == [] and gap == (3, 10.0)
    ready, gap = sendable(_entries(5, 6, 8), 3, gap, now=10.0 + GAP_GRACE_SECONDS)
    # 4 was rolled back: passed. 7 is a new gap with its own grace.
    assert _seqs(ready) == [5, 6] and gap == (6, 10.0 + GAP_GRACE_SECONDS)
