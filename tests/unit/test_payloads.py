from __future__ import annotations

import orjson
import pytest

from opsrail.ingest import split_batch
from opsrail.model import InvalidInput, UnsupportedMediaType


def test_ndjson_lines_fail_one_by_one() -> None:
    body = b'{"a": 1}\n\nnot json\n{"b": 2}\n'
    items = split_batch(body, "application/x-ndjson")
    assert [i.index for i in items] == [0, 1, 2]
    assert items[0].value == {"a": 1} and items[2].value == {"b": 2}
    assert items[1].error is not None and items[1].raw == b"not json"
    assert items[1].error.errors[0].path == "$[1]"


def test_a_json_batch_is_an_array() -> None:
    items = split_batch(orjson.dumps([{"a": 1}, {"b": 2}]), "application/cloudevents-batch+json; charset=utf-8")
    assert [orjson.loads(i.raw) for i in items] == [{"a": 1}, {"b": 2}]
    with pytest.raises(InvalidInput, match="array"):
        split_batch(b'{"a": 1}', "application/json")


def test_empty_and_unsupported_batches_are_refused() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        split_batch(b"\n\n", "application/x-ndjson")
    with pytest.raises(UnsupportedMediaType):
        split_batch(b"a,b", "text/csv")
