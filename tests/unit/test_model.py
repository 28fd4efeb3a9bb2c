from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from opsrail.model import (
    KINDS,
    SCHEMA_NAMES,
    CloudEvent,
    Credit,
    Incident,
    NotFound,
    event_type,
    json_path,
    json_schema,
    kind_of,
)


def test_every_kind_of_the_operating_model_is_in_the_catalog() -> None:
    expected = {
        "account",
        "legal_entity",
        "subscription",
        "entitlement",
        "order",
        "quote",
        "incident",
        "implementation_task",
        "invoice",
        "credit",
        "change_order",
        "vendor",
        "escalation",
        "approval",
    }
    assert set(KINDS) == expected


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schemas_are_versioned_json_schema_documents(name: str) -> None:
    schema = json_schema(name)
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["$id"].startswith(f"urn:opsrail:schema:{name}:")
    assert schema["type"] == "object"


def test_canonical_objects_carry_external_ids_and_segments() -> None:
    schema = json_schema("account")
    assert {"external_ids", "segment"} <= set(schema["properties"])
    segment = schema["$defs"]["Segment"]["properties"]
    assert {"region", "channel", "product_line", "tier", "entity"} <= set(segment)


def test_unknown_schema_is_not_found_with_a_hint() -> None:
    with pytest.raises(NotFound) as info:
        json_schema("ticket")
    assert "incident" in (info.value.hint or "")


def test_kind_of_reads_opsrail_types_only() -> None:
    assert kind_of("com.opsrail.incident.opened") == "incident"
    assert kind_of(event_type("change_order", "approved")) == "change_order"
    assert kind_of("com.opsrail.nothing.opened") is None
    assert kind_of("com.opsrail.incident") is None
    assert kind_of("com.stripe.invoice.paid") is None


def test_cloudevent_requires_the_core_attributes() -> None:
    with pytest.raises(ValidationError) as info:
        CloudEvent.model_validate({"specversion": "1.0", "id": "", "type": "t"})
    locations = {err["loc"] for err in info.value.errors()}
    assert ("id",) in locations and ("source",) in locations


def test_cloudevent_extensions_follow_the_naming_rule() -> None:
    ok = CloudEvent.model_validate({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "traceparent": "x"})
    assert ok.extensions == {"traceparent": "x"}
    assert ok.problems() == []
    bad = CloudEvent.model_validate(
        {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "Bad_Name": 1, "nested": {"a": 1}}
    )
    assert [name for name, _ in bad.problems()] == ["Bad_Name", "nested"]


def test_cloudevent_time_must_carry_an_offset() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        CloudEvent.model_validate(
            {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "time": "2026-01-01T10:00:00"}
        )


def test_incident_severity_is_bounded_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        Incident(id="x", title="t", severity=5)
    with pytest.raises(ValidationError, match="extra"):
        Incident.model_validate({"id": "x", "title": "t", "sevrity": 1})


def test_money_is_decimal_and_currency_is_iso() -> None:
    credit = Credit(id="c1", account_id="a1", amount=Decimal("120.50"), currency="EUR", reason="SLA breach")
    assert credit.model_dump(mode="json")["amount"] == "120.50"
    with pytest.raises(ValidationError):
        Credit(id="c1", account_id="a1", amount=Decimal("1"), currency="eur", reason="x")


def test_json_path_rendering() -> None:
    assert json_path(("data", "lines", 0, "sku")) == "$.data.lines[0].sku"
    assert json_path(("weird key",), "$[3]") == "$[3]['weird key']"
