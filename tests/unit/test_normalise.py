from __future__ import annotations

import pytest

from opsrail.ingest import normalise
from opsrail.model import InvalidInput
from tests.support import cloudevent, incident_event


def test_a_canonical_event_is_validated_and_normalised() -> None:
    normalised = normalise(incident_event(severity=2, labels=["eu"]))
    assert normalised.kind == "incident"
    assert normalised.object_id == "acme:INC-1"
    assert normalised.data["severity"] == 2
    assert normalised.data["status"] == "new"  # the model's default is filled in
    assert normalised.subject == "acme:INC-1"  # subject defaults to the object id


def test_errors_name_the_json_path_of_each_field() -> None:
    raw = incident_event(severity=9)
    raw["data"]["opened_at"] = "yesterday"
    with pytest.raises(InvalidInput) as info:
        normalise(raw, "$[4]")
    paths = {e.path for e in info.value.errors}
    assert paths == {"$[4].data.severity", "$[4].data.opened_at"}
    assert "incident" in info.value.detail


def test_envelope_errors_come_before_data_errors() -> None:
    with pytest.raises(InvalidInput) as info:
        normalise({"specversion": "0.3", "id": "1", "source": "s"})
    assert {e.path for e in info.value.errors} == {"$.specversion", "$.type"}


def test_foreign_types_are_kept_as_they_came() -> None:
    normalised = normalise(cloudevent(data={"anything": [1, 2]}))
    assert normalised.kind is None and normalised.object_id is None
    assert normalised.data == {"anything": [1, 2]}


def test_a_non_object_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        normalise([1, 2])
    assert info.value.errors[0].path == "$"


def test_cloudevents_rules_name_the_attribute() -> None:
    with pytest.raises(InvalidInput) as info:
        normalise(cloudevent(TraceParent="x", data={"a": 1}, data_base64="eA=="))
    assert [e.path for e in info.value.errors] == ["$.TraceParent", "$.data_base64"]


def test_a_typo_in_an_opsrail_type_is_refused_not_stored_unvalidated() -> None:
    for wrong in ("com.opsrail.incidnet.opened", "com.opsrail.incident"):
        with pytest.raises(InvalidInput) as info:
            normalise(cloudevent(type=wrong, data={"id": "x"}))
        assert info.value.errors[0].path == "$.type"
