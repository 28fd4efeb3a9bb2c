"""The catalog of canonical object kinds, their JSON Schemas and the event types that carry them.

A canonical event's type is ``com.opsrail.<kind>.<verb>`` (for example ``com.opsrail.incident.opened``);
its ``data`` is the object of that kind. Schemas are versioned: a change that makes an existing valid
document invalid bumps ``SCHEMA_VERSION``'s major number.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from opsrail.model._commercial import (
    Account,
    ChangeOrder,
    Credit,
    Entitlement,
    Invoice,
    LegalEntity,
    Order,
    Quote,
    Subscription,
    Vendor,
)
from opsrail.model._common import CanonicalObject
from opsrail.model._envelope import CloudEvent
from opsrail.model._errors import NotFound
from opsrail.model._operations import Approval, Escalation, ImplementationTask, Incident

SCHEMA_VERSION = "1.0.0"
EVENT_TYPE_PREFIX = "com.opsrail."

KINDS: dict[str, type[CanonicalObject]] = {
    "account": Account,
    "legal_entity": LegalEntity,
    "subscription": Subscription,
    "entitlement": Entitlement,
    "order": Order,
    "quote": Quote,
    "incident": Incident,
    "implementation_task": ImplementationTask,
    "invoice": Invoice,
    "credit": Credit,
    "change_order": ChangeOrder,
    "vendor": Vendor,
    "escalation": Escalation,
    "approval": Approval,
}

SCHEMA_NAMES: tuple[str, ...] = (*KINDS, "cloudevent")


@lru_cache(maxsize=4096)
def kind_of(event_type: str) -> str | None:
    """The canonical kind an event type carries, or None for a type outside Opsrail's namespace."""
    if not event_type.startswith(EVENT_TYPE_PREFIX):
        return None
    rest = event_type[len(EVENT_TYPE_PREFIX) :]
    kind, _, verb = rest.partition(".")
    if not verb or kind not in KINDS:
        return None
    return kind


def event_type(kind: str, verb: str) -> str:
    return f"{EVENT_TYPE_PREFIX}{kind}.{verb}"


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a canonical kind, or of the CloudEvent envelope."""
    if name == "cloudevent":
        model: type[Any] = CloudEvent
    elif name in KINDS:
        model = KINDS[name]
    else:
        raise NotFound(f"no schema named {name!r}", hint=f"known schemas: {', '.join(SCHEMA_NAMES)}")
    schema = model.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:opsrail:schema:{name}:{SCHEMA_VERSION}",
        "x-opsrail-version": SCHEMA_VERSION,
        **schema,
    }
