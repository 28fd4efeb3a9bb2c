"""The Zendesk source mapper: ticket webhooks become canonical incident events.

Two shapes are accepted:

* Zendesk event webhooks (``{"type": "zen:event-type:ticket.created", "id": ..., "time": ...,
  "detail": {...}, "event": {...}}``). ``ticket.created`` -> ``com.opsrail.incident.opened``;
  ``ticket.status_changed`` to solved -> ``incident.resolved``, to closed or archived ->
  ``incident.closed``; ``ticket.soft_deleted``/``ticket.permanently_deleted`` (or a status change to
  deleted) -> ``incident.cancelled``; any other ``ticket.*`` -> ``incident.updated``. Non-ticket
  events (``user.*``, ``organization.*``) pass through as ``com.zendesk.<domain>.<action>``.
  The event id is Zendesk's event ``id``, which a retried delivery repeats.
* The JSON body of a trigger or automation webhook that a Zendesk admin writes with placeholders,
  ``{"ticket": {"id": "{{ticket.id}}", "status": "{{ticket.status}}", ...}}``. The type follows the
  ticket's status (new -> opened, solved -> resolved, closed -> closed, otherwise updated) and the
  event id is ``<ticket id>:<updated_at>``, so a retry of the same update dedupes.

Event webhooks send enum values in capitals (``"SOLVED"``, ``"HIGH"``) and placeholders render them
capitalised (``"Solved"``); both are read case-insensitively. The incident id is
``zendesk:<ticket id>``; the organization becomes ``account_id`` ``zendesk-org:<id>``, people and
groups ``zendesk-user:<id>`` and ``zendesk-group:<id>``. The event source is ``zendesk``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opsrail.ingest.mappers._base import cloudevent
from opsrail.ingest.mappers._fields import (
    TEXT_LIMIT,
    TITLE_LIMIT,
    ZENDESK_PRIORITY_SEVERITY,
    Reader,
    child,
    clip,
    digest,
    drop_none,
    iso,
    severity_from_name,
)
from opsrail.model import event_type

SOURCE = "zendesk"
_EVENT_TYPE_PREFIX = "zen:event-type:"
_FOREIGN_PREFIX = "com.zendesk."
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")
_STATUS = {
    "new": "new",
    "open": "open",
    "pending": "on_hold",
    "hold": "on_hold",
    "on-hold": "on_hold",
    "solved": "resolved",
    "closed": "closed",
    # Event webhooks also report these lifecycle states of a ticket.
    "archived": "closed",
    "scrubbed": "closed",
    "deleted": "cancelled",
}
_VERB_BY_STATUS = {"resolved": "resolved", "closed": "closed", "cancelled": "cancelled"}
_DELETION_EVENTS = frozenset({"ticket.soft_deleted", "ticket.permanently_deleted"})
# Placeholders render an unset value as "-" (e.g. {{ticket.priority}} on a ticket without one).
_UNSET = frozenset({"-", "none", "null"})
# Event-webhook ticket details send ids as strings; "0" is how they say "none".
_NO_ID = frozenset({"0"})


class ZendeskMapper:
    name = "zendesk"
    description = (
        "Zendesk ticket webhooks (event webhooks zen:event-type:ticket.* and trigger webhooks with a "
        "ticket object) become incident events; other Zendesk events pass through as com.zendesk.*"
    )

    def map(self, payload: Any, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        reader = Reader(
            "the Zendesk webhook could not be mapped",
            hint="send a Zendesk event webhook body unmodified, or a trigger webhook whose JSON body "
            'has a "ticket" object with at least id and status',
        )
        body = reader.obj(payload, "$")
        declared = body.get("type")
        if isinstance(declared, str) and declared.startswith(_EVENT_TYPE_PREFIX):
            return [self._event_webhook(reader, body)]
        # A trigger body is whatever JSON the admin wrote, so it may well have its own "type" key.
        if "ticket" in body:
            return [self._trigger_webhook(reader, body)]
        if "type" in body:
            return [self._event_webhook(reader, body)]
        reader.fail(
            "$.ticket",
            "expected a Zendesk event webhook (with type and detail) or a trigger webhook (with ticket)",
            "missing",
        )

    def _event_webhook(self, reader: Reader, body: dict[str, Any]) -> dict[str, Any]:
        zendesk_type = reader.req_text(body, "type", "$")
        name = zendesk_type.removeprefix(_EVENT_TYPE_PREFIX)
        if name == zendesk_type or not _EVENT_NAME.match(name):
            reader.fail("$.type", f"not a Zendesk event type (zen:event-type:<domain>.<action>): {zendesk_type!r}")
        occurred = reader.timestamp(body, "time", "$")
        event_id = reader.key(body, "id", "$") or f"{name}:{digest(body)}"
        if not name.startswith("ticket."):
            return cloudevent(id=event_id, source=SOURCE, type=_FOREIGN_PREFIX + name, time=occurred, data=body)

        detail = reader.req_obj(body, "detail", "$")
        change = reader.opt_obj(body, "event", "$") or {}
        ticket_id = reader.key(detail, "id", "$.detail") or _ticket_id_from_subject(reader.text(body, "subject", "$"))
        if ticket_id is None:
            reader.missing("$.detail.id", "the ticket id")

        status_text = reader.text(detail, "status", "$.detail")
        if name == "ticket.status_changed" and isinstance(change.get("current"), str):
            # The detail is a snapshot that may lag the change; the event says what it changed to.
            status_text = change["current"]
        status = _status(status_text)
        if name in _DELETION_EVENTS:
            status = "cancelled"

        if name == "ticket.created":
            verb = "opened"
        elif name in _DELETION_EVENTS or name == "ticket.status_changed":
            verb = _VERB_BY_STATUS.get(status, "updated")
        else:
            verb = "updated"

        extra = drop_none(
            {
                "zendesk_event": name,
                "zendesk_account_id": reader.text(body, "account_id", "$"),
                "previous_status": _lower(_plain(change.get("previous"))) if name == "ticket.status_changed" else None,
                "sequence_id": _sequence_id(change),
            }
        )
        incident = _incident(reader, detail, "$.detail", ticket_id, status, occurred, extra)
        return cloudevent(
            id=event_id,
            source=SOURCE,
            type=event_type("incident", verb),
            subject=incident["id"],
            time=occurred,
            data=incident,
        )

    def _trigger_webhook(self, reader: Reader, body: dict[str, Any]) -> dict[str, Any]:
        ticket = reader.req_obj(body, "ticket", "$")
        ticket_id = reader.req_key(ticket, "id", "$.ticket")
        status = _status(reader.text(ticket, "status", "$.ticket"))
        created = reader.timestamp(ticket, "created_at", "$.ticket")
        updated = reader.timestamp(ticket, "updated_at", "$.ticket")

        if status in _VERB_BY_STATUS:
            verb = _VERB_BY_STATUS[status]
        elif status == "new" or (created is not None and created == updated):
            verb = "opened"
        else:
            verb = "updated"

        incident = _incident(reader, ticket, "$.ticket", ticket_id, status, updated, {})
        if updated is not None:
            event_id = f"{ticket_id}:{updated.strftime('%Y%m%dT%H%M%SZ')}"
        else:
            # A body without updated_at: the content is the only thing that tells two updates apart.
            event_id = f"{ticket_id}:{digest(ticket)}"
        return cloudevent(
            id=event_id,
            source=SOURCE,
            type=event_type("incident", verb),
            subject=incident["id"],
            time=updated or created,
            data=incident,
        )


def _incident(
    reader: Reader,
    ticket: dict[str, Any],
    path: str,
    ticket_id: str,
    status: str,
    occurred: datetime | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The canonical incident of a ticket object (an event webhook's detail or a trigger's ticket)."""
    priority = _lower(_unset(reader.text(ticket, "priority", path)))
    created = reader.timestamp(ticket, "created_at", path)
    updated = reader.timestamp(ticket, "updated_at", path)
    # Zendesk's ticket object has no solved_at; the update that solved or closed it is the best time.
    finished_at = iso(updated or occurred)
    organization = _id(reader.text(ticket, "organization_id", path))
    via = ticket.get("via")
    if isinstance(via, dict):
        channel = reader.text(via, "channel", child(path, "via"))
    else:
        # Placeholders render {{ticket.via}} as text, e.g. "Web Form".
        channel = reader.text(ticket, "via", path)
    url = _unset(reader.text(ticket, "url", path))
    if url and not url.startswith(("http://", "https://")):
        # {{ticket.url}} renders without a scheme: "acme.zendesk.com/agent/tickets/35436".
        url = f"https://{url}"

    attributes = drop_none(
        {
            **extra,
            "zendesk_status": _lower(_unset(reader.text(ticket, "status", path))),
            "requester_id": _id(reader.text(ticket, "requester_id", path)),
            "submitter_id": _id(reader.text(ticket, "submitter_id", path)),
            "brand_id": _id(reader.text(ticket, "brand_id", path)),
            "form_id": _id(reader.text(ticket, "form_id", path)),
            "external_id": _unset(reader.text(ticket, "external_id", path)),
            "custom_status": _plain(ticket.get("custom_status")),
            "is_public": ticket.get("is_public") if isinstance(ticket.get("is_public"), bool) else None,
            "actor_id": _id(reader.text(ticket, "actor_id", path)),
        }
    )
    requester = _id(reader.text(ticket, "requester_id", path))
    assignee = _id(reader.text(ticket, "assignee_id", path))
    group = _id(reader.text(ticket, "group_id", path))
    return drop_none(
        {
            "id": f"zendesk:{ticket_id}",
            "external_ids": {"itsm_id": ticket_id},
            "segment": drop_none({"channel": _lower(channel)}),
            "title": clip(reader.text(ticket, "subject", path) or reader.text(ticket, "title", path), TITLE_LIMIT)
            or f"Zendesk ticket {ticket_id}",
            "description": clip(reader.text(ticket, "description", path), TEXT_LIMIT),
            "severity": severity_from_name(ZENDESK_PRIORITY_SEVERITY, priority),
            "priority": priority,
            "status": status,
            "category": _lower(_unset(reader.text(ticket, "type", path))),
            "account_id": f"zendesk-org:{organization}" if organization else None,
            "assignment_group": f"zendesk-group:{group}" if group else None,
            "assignee": f"zendesk-user:{assignee}" if assignee else None,
            "reporter": f"zendesk-user:{requester}" if requester else None,
            "opened_at": iso(created),
            "updated_at": iso(updated),
            "resolved_at": finished_at if status in {"resolved", "closed"} else None,
            "closed_at": finished_at if status == "closed" else None,
            "labels": _tags(reader, ticket, path),
            "url": url,
            "attributes": attributes,
        }
    )


def _status(text: str | None) -> str:
    value = _lower(_unset(text))
    # A ticket whose status a trigger body leaves out is at least open: it exists and is not finished.
    return _STATUS.get(value, "open") if value else "open"


def _tags(reader: Reader, ticket: dict[str, Any], path: str) -> list[str]:
    tags = ticket.get("tags")
    if isinstance(tags, str):
        # {{ticket.tags}} renders as one space-separated string.
        return tags.split()
    return reader.text_list(ticket, "tags", path)


def _ticket_id_from_subject(subject: str | None) -> str | None:
    """The ticket id in an event's subject, ``zen:ticket:35436``."""
    if subject and (match := re.fullmatch(r"zen:ticket:(\d{1,30})", subject)):
        return match.group(1)
    return None


def _sequence_id(change: dict[str, Any]) -> str | None:
    meta = change.get("meta")
    sequence = meta.get("sequence") if isinstance(meta, dict) else None
    return _plain(sequence.get("id")) if isinstance(sequence, dict) else None


def _id(value: str | None) -> str | None:
    value = _unset(value)
    return None if value is None or value in _NO_ID else value


def _unset(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in _UNSET else value


def _lower(value: str | None) -> str | None:
    return value.strip().lower() if value else None


def _plain(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value).strip() or None
