"""Telling a batch from a single event when a dead letter is replayed."""

from __future__ import annotations

from opsrail.services._ingestion import _looks_like_batch


def test_a_pretty_printed_single_event_is_not_a_batch() -> None:
    assert not _looks_like_batch(b'{\n  "specversion": "1.0",\n  "id": "a"\n}\n')


def test_ndjson_and_json_arrays_are_batches() -> None:
    assert _looks_like_batch(b'{"id": "a"}\n{"id": "b"}\n')
    assert _looks_like_batch(b'  [{"id": "a"}]')
    assert not _looks_like_batch(b'{"id": "a"}')
