"""The ServiceNow source mapper: incident records become canonical incident events.

Accepts what the Table API returns for ``GET /api/now/table/incident`` (``{"result": [...]}`` or
``{"result": {...}}``), a JSONv2 export (``{"records": [...]}``), a bare array of records, or a
single record, e.g. one pushed by a business rule or read from a CSV export. Each record gives one
event; its type follows the record's state:

* New -> ``com.opsrail.incident.opened``
* Resolved -> ``com.opsrail.incident.resolved``, Closed -> ``com.opsrail.incident.closed``
* Canceled -> ``com.opsrail.incident.cancelled``
* anything else (Active, In Progress, Awaiting ..., On Hold) -> ``com.opsrail.incident.updated``

Field values may be raw strings (``"3 - Moderate"`` or ``"3"``), or objects as the Table API sends
them with ``sysparm_display_value=all`` (``{"display_value": ..., "value": ...}``) or for reference
fields (``{"link": ..., "value": <sys_id>}``). ``""`` and ``"?"`` (the UCI 498 export's marker) mean
missing. Date-times without an offset are UTC, which is what the Table API returns for raw values.

The incident id is ``servicenow:<number>``; the event source is ``servicenow``. The event id is
``<number>:<sys_mod_count>:<update time>``, the update time being ``sys_updated_on`` (or
``sys_updated_at``, as the UCI 498 export names it). The modification count identifies a version
of the record; the update time is part of the id because exported audit logs (UCI 498) repeat a
modification count for different states of the same incident, and those are different changes
that must not be dropped as duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opsrail.ingest.mappers._base import cloudevent
from opsrail.ingest.mappers._fields import (
    ID_LIMIT,
    SERVICENOW_PRIORITY_SEVERITY,
    TEXT_LIMIT,
    TITLE_LIMIT,
    Reader,
    child,
    clip,
    digest,
    drop_none,
    iso,
    leading_number,
    parse_timestamp,
    type_name,
)
from opsrail.model import event_type

SOURCE = "servicenow"

_MISSING = frozenset({"", "?"})
_STATE_NAMES = {
    "new": "new",
    "active": "in_progress",
    "in progress": "in_progress",
    "work in progress": "in_progress",
    "assigned": "in_progress",
    "on hold": "on_hold",
    "pending": "on_hold",
    "resolved": "resolved",
    "closed": "closed",
    "canceled": "cancelled",
    "cancelled": "cancelled",
}
# Raw state values. ServiceNow's incident_state choices 3-5 are the legacy "Awaiting ..." states,
# which the newer state field folds into 3 "On Hold"; all of them mean waiting on someone.
_STATE_CODES = {
    "1": "new",
    "2": "in_progress",
    "3": "on_hold",
    "4": "on_hold",
    "5": "on_hold",
    "6": "resolved",
    "7": "closed",
    "8": "cancelled",
}
_VERB_BY_STATUS = {"new": "opened", "resolved": "resolved", "closed": "closed", "cancelled": "cancelled"}
# ServiceNow's default priority lookup (dl_u_priority) from impact and urgency, used when a record
# carries both but no priority.
_PRIORITY_MATRIX = {
    (1, 1): 1,
    (1, 2): 2,
    (2, 1): 2,
    (1, 3): 3,
    (2, 2): 3,
    (3, 1): 3,
    (2, 3): 4,
    (3, 2): 4,
    (3, 3): 5,
}
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})

# Fields the canonical incident takes; every other non-empty field is kept in attributes.
_CONSUMED = frozenset(
    {
        "number",
        "incident_state",
        "state",
        "short_description",
        "description",
        "priority",
        "impact",
        "urgency",
        "category",
        "subcategory",
        "cmdb_ci",
        "assignment_group",
        "assigned_to",
        "caller_id",
        "opened_at",
        "sys_updated_at",
        "sys_updated_on",
        "resolved_at",
        "closed_at",
        "made_sla",
        "reassignment_count",
        "reopen_count",
        "sys_mod_count",
        "contact_type",
        "active",
    }
)


class ServiceNowMapper:
    name = "servicenow"
    description = (
        "ServiceNow incident records (Table API result, JSONv2 export, array or single record), "
        "one incident event per record"
    )

    def map(self, payload: Any, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        reader = Reader(
            "the ServiceNow incident record could not be mapped",
            hint="send incident records as the Table API returns them (GET /api/now/table/incident), "
            "each with at least number and state or incident_state",
        )
        return [_event(reader, record, path) for record, path in _records(reader, payload)]


def _records(reader: Reader, payload: Any) -> list[tuple[dict[str, Any], str]]:
    """The records in a payload, each with its JSON path."""
    if isinstance(payload, list):
        items, base = payload, "$"
    elif isinstance(payload, dict) and ("result" in payload or "records" in payload) and "number" not in payload:
        key = "result" if "result" in payload else "records"
        container = payload[key]
        if isinstance(container, dict):
            return [(container, f"$.{key}")]
        if not isinstance(container, list):
            reader.fail(f"$.{key}", f"expected an array or an object, got {type_name(container)}", "type")
        items, base = container, f"$.{key}"
    elif isinstance(payload, dict):
        return [(payload, "$")]
    else:
        reader.fail("$", f"expected an object or an array, got {type_name(payload)}", "type")
    return [(reader.obj(item, f"{base}[{index}]"), f"{base}[{index}]") for index, item in enumerate(items)]


def _value(reader: Reader, record: Mapping[str, Any], key: str, path: str) -> str | None:
    """A field's value as text, whichever of ServiceNow's encodings it uses; None when missing."""
    value = record.get(key)
    if isinstance(value, dict):
        # Prefer what a person sees ("Network", "Beth Anglin") to a sys_id.
        for part in ("display_value", "value"):
            text = _scalar(reader, value.get(part), child(child(path, key), part))
            if text is not None:
                return text
        return None
    return _scalar(reader, value, child(path, key))


def _scalar(reader: Reader, value: Any, path: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if isinstance(value, str):
        text = value.strip()
        return None if text in _MISSING else text
    reader.fail(path, f"expected a string, got {type_name(value)}", "type")


def _integer(reader: Reader, record: Mapping[str, Any], key: str, path: str) -> int | None:
    text = _value(reader, record, key, path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        reader.fail(child(path, key), f"expected an integer, got {text!r}", "type")


def _boolean(reader: Reader, record: Mapping[str, Any], key: str, path: str) -> bool | None:
    text = _value(reader, record, key, path)
    if text is None:
        return None
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    reader.fail(child(path, key), f"expected true or false, got {text!r}", "type")


def _datetime(reader: Reader, record: Mapping[str, Any], key: str, path: str) -> datetime | None:
    text = _value(reader, record, key, path)
    if text is None:
        return None
    parsed = parse_timestamp(text)
    if parsed is None:
        expected = "yyyy-mm-dd HH:MM:SS or dd-mm-yyyy HH:MM"
        reader.fail(child(path, key), f"not a recognised date-time: {text!r} (expected {expected})", "format")
    return parsed


def _status(state: str) -> str:
    lowered = state.strip().lower()
    if lowered in _STATE_CODES:
        return _STATE_CODES[lowered]
    if lowered in _STATE_NAMES:
        return _STATE_NAMES[lowered]
    if lowered.startswith("awaiting"):
        return "on_hold"
    # A state an instance added itself ("Assigned to vendor", ...): the incident is neither new nor
    # finished, so it is being worked. The raw state stays in attributes.state.
    return "in_progress"


def _severity(priority: str | None, impact: str | None, urgency: str | None) -> int | None:
    number = leading_number(priority)
    if number is None:
        impact_number, urgency_number = leading_number(impact), leading_number(urgency)
        if impact_number is not None and urgency_number is not None:
            number = _PRIORITY_MATRIX.get((impact_number, urgency_number))
    return SERVICENOW_PRIORITY_SEVERITY.get(number) if number is not None else None


def _event(reader: Reader, record: dict[str, Any], path: str) -> dict[str, Any]:
    number = _value(reader, record, "number", path)
    if number is None:
        reader.missing(child(path, "number"), "the incident number")
    if len(number) > ID_LIMIT:
        reader.fail(child(path, "number"), f"expected an incident number of at most {ID_LIMIT} characters", "too_long")
    state_key = "incident_state" if _value(reader, record, "incident_state", path) is not None else "state"
    state = _value(reader, record, state_key, path)
    if state is None:
        reader.missing(child(path, "incident_state"), "the incident's state (incident_state or state)")
    status = _status(state)

    short_description = _value(reader, record, "short_description", path)
    category = _value(reader, record, "category", path)
    subcategory = _value(reader, record, "subcategory", path)
    title = short_description or " / ".join(part for part in (category, subcategory) if part) or number
    priority = _value(reader, record, "priority", path)
    impact = _value(reader, record, "impact", path)
    urgency = _value(reader, record, "urgency", path)
    opened_at = _datetime(reader, record, "opened_at", path)
    # The Table API names it sys_updated_on; the UCI 498 export renamed it sys_updated_at.
    updated_key = "sys_updated_on" if _value(reader, record, "sys_updated_on", path) is not None else "sys_updated_at"
    updated_at = _datetime(reader, record, updated_key, path)
    resolved_at = _datetime(reader, record, "resolved_at", path)
    closed_at = _datetime(reader, record, "closed_at", path)
    mod_count = _nonnegative(reader, record, "sys_mod_count", path)
    contact_type = _value(reader, record, "contact_type", path)

    attributes: dict[str, Any] = {}
    for key in sorted(record):
        if key not in _CONSUMED and (text := _value(reader, record, key, path)) is not None:
            # Other date-times (sys_created_on, sys_created_at, ...) get the same UTC form as the canonical
            # ones, so attributes do not carry the instance's date format along.
            parsed = parse_timestamp(text) if key.endswith(("_at", "_on")) else None
            attributes[key] = iso(parsed) if parsed is not None else text
    attributes.update(
        drop_none(
            {
                "state": state,
                "active": _boolean(reader, record, "active", path),
                "sys_mod_count": mod_count,
            }
        )
    )
    # A record in an open state can still carry resolution times: the UCI 498 log back-fills the
    # final resolved_at/closed_at into every row, and ServiceNow keeps resolved_at after a reopen.
    # Copying them onto an open incident would claim a resolution that has not happened (yet), so
    # they are only canonical in a matching state and are otherwise kept as recorded.
    is_resolved = status in {"resolved", "closed"}
    if resolved_at is not None and not is_resolved:
        attributes["recorded_resolved_at"] = iso(resolved_at)
    if closed_at is not None and status != "closed":
        attributes["recorded_closed_at"] = iso(closed_at)

    incident = drop_none(
        {
            "id": f"servicenow:{number}",
            "external_ids": {"itsm_id": number},
            "segment": drop_none({"channel": contact_type.lower() if contact_type else None}),
            "title": clip(title, TITLE_LIMIT),
            "description": clip(_value(reader, record, "description", path), TEXT_LIMIT),
            "severity": _severity(priority, impact, urgency),
            "priority": priority,
            "status": status,
            "impact": impact,
            "urgency": urgency,
            "category": category,
            "subcategory": subcategory,
            "service": _value(reader, record, "cmdb_ci", path),
            "assignment_group": _value(reader, record, "assignment_group", path),
            "assignee": _value(reader, record, "assigned_to", path),
            "reporter": _value(reader, record, "caller_id", path),
            "opened_at": iso(opened_at),
            "updated_at": iso(updated_at),
            "resolved_at": iso(resolved_at) if is_resolved else None,
            "closed_at": iso(closed_at) if status == "closed" else None,
            "sla_met": _boolean(reader, record, "made_sla", path),
            "reassignment_count": _nonnegative(reader, record, "reassignment_count", path),
            "reopen_count": _nonnegative(reader, record, "reopen_count", path),
            "attributes": attributes,
        }
    )

    version = [number]
    if mod_count is not None:
        version.append(str(mod_count))
    if updated_at is not None:
        version.append(updated_at.strftime("%Y%m%dT%H%M%SZ"))
    if len(version) == 1:
        # Neither a modification count nor an update time: only the content identifies the version.
        version.append(digest(record))

    return cloudevent(
        id=":".join(version),
        source=SOURCE,
        type=event_type("incident", _VERB_BY_STATUS.get(status, "updated")),
        subject=incident["id"],
        time=updated_at or opened_at,
        data=incident,
    )


# ServiceNow integer fields are 32-bit.
_MAX_INTEGER = 2**31 - 1


def _nonnegative(reader: Reader, record: Mapping[str, Any], key: str, path: str) -> int | None:
    value = _integer(reader, record, key, path)
    if value is not None and not 0 <= value <= _MAX_INTEGER:
        reader.fail(child(path, key), f"expected a count from 0 to {_MAX_INTEGER}, got {value}", "range")
    return value
