"""The Jira Cloud source mapper: issue webhooks become canonical incident events.

* ``jira:issue_created`` -> ``com.opsrail.incident.opened``
* ``jira:issue_updated`` -> ``com.opsrail.incident.resolved`` when the issue has just moved into a
  status of the "done" category, otherwise ``com.opsrail.incident.updated``
* ``jira:issue_deleted`` -> ``com.opsrail.incident.cancelled`` (status ``cancelled``)
* any other well-formed webhook (``comment_created``, ``jira:worklog_updated``, ...) passes through
  as ``com.atlassian.jira.<event>`` with the webhook body as data.

The incident id is ``jira:<issue key>``. The event source is the site's origin taken from the
issue's ``self`` link (``https://acme.atlassian.net``), or ``jira`` when there is none. The event id
is the ``X-Atlassian-Webhook-Identifier`` header, which Jira keeps the same when it retries a
delivery; without it, the id is derived from the issue id, the webhook event and its timestamp.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opsrail.ingest.mappers._base import cloudevent
from opsrail.ingest.mappers._fields import (
    ID_LIMIT,
    JIRA_PRIORITY_SEVERITY,
    SOURCE_LIMIT,
    TEXT_LIMIT,
    TITLE_LIMIT,
    Reader,
    child,
    clip,
    digest,
    drop_none,
    iso,
    severity_from_name,
    url_origin,
)
from opsrail.model import event_type

_DEFAULT_SOURCE = "jira"
_FOREIGN_PREFIX = "com.atlassian.jira."
_ISSUE_EVENTS = {
    "jira:issue_created": "opened",
    "jira:issue_updated": "updated",
    "jira:issue_deleted": "cancelled",
}
# Jira event names are short identifiers ("jira:issue_updated", "comment_created"); anything else in
# webhookEvent is not a Jira webhook and must not leak into an event type.
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_:.\-]{1,100}$")
_STATUS_BY_CATEGORY = {"new": "open", "indeterminate": "in_progress", "done": "resolved"}
# Changelog fields whose change means the issue was (re)resolved in this update.
_RESOLVING_FIELDS = frozenset({"status", "resolution"})
# Objects a non-issue webhook is about, most specific first: the first one's id identifies the
# change (a comment, not the issue it is on), and any one's "self" link tells which site sent it.
_SELF_CARRIERS = ("comment", "worklog", "attachment", "issue", "project", "version", "sprint", "board", "user")

# Atlassian Document Format nodes that end a line of text when flattened.
_ADF_BLOCKS = frozenset(
    {
        "paragraph",
        "heading",
        "blockquote",
        "codeBlock",
        "listItem",
        "panel",
        "rule",
        "tableRow",
        "mediaSingle",
        "expand",
        "nestedExpand",
        "taskItem",
        "decisionItem",
    }
)
_ADF_INLINE_ATTRS = ("text", "shortName", "url")


class JiraMapper:
    name = "jira"
    description = (
        "Jira Cloud webhooks: issue created/updated/deleted become incident events; "
        "other Jira events pass through as com.atlassian.jira.*"
    )

    def map(self, payload: Any, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        reader = Reader(
            "the Jira webhook could not be mapped",
            hint="send the unmodified JSON body of a Jira Cloud webhook (it has webhookEvent and issue)",
        )
        body = reader.obj(payload, "$")
        event_name = reader.req_text(body, "webhookEvent", "$")
        if not _EVENT_NAME.match(event_name):
            reader.fail("$.webhookEvent", f"not a Jira webhook event name: {event_name!r}")
        sent_at = reader.epoch(body, "timestamp", "$", millis=True)
        delivery = (headers.get("x-atlassian-webhook-identifier") or "").strip() or None
        if delivery is not None and len(delivery) > ID_LIMIT:
            # Jira's identifiers are short; an over-long header still identifies the delivery by its hash.
            delivery = digest(delivery)

        verb = _ISSUE_EVENTS.get(event_name)
        if verb is None:
            return [self._foreign(body, event_name, sent_at, delivery)]

        issue = reader.req_obj(body, "issue", "$")
        key = reader.req_key(issue, "key", "$.issue")
        fields = reader.req_obj(issue, "fields", "$.issue")
        issue_id = reader.key(issue, "id", "$.issue") or key
        origin = reader.source(url_origin(reader.text(issue, "self", "$.issue")), "$.issue.self")
        incident = _incident(reader, key, issue_id, origin, fields, body, event_name)

        if verb == "cancelled":
            incident["status"] = "cancelled"
        elif verb == "updated" and _just_resolved(reader, body, fields, incident):
            verb = "resolved"

        if delivery is not None:
            event_id = delivery
        elif sent_at is not None:
            event_id = f"{issue_id}:{event_name}:{body['timestamp']}"
        else:
            # No delivery id and no timestamp: the content itself is the only stable identity.
            event_id = f"{issue_id}:{event_name}:{digest(body)}"

        return [
            cloudevent(
                id=event_id,
                source=origin or _DEFAULT_SOURCE,
                type=event_type("incident", verb),
                subject=incident["id"],
                time=sent_at or _parsed(incident.get("updated_at")),
                data=incident,
            )
        ]

    def _foreign(
        self, body: dict[str, Any], event_name: str, sent_at: datetime | None, delivery: str | None
    ) -> dict[str, Any]:
        """A well-formed Jira webhook Opsrail has no canonical kind for, kept as Jira sent it."""
        # Read leniently: the body is passed through untouched, so only what identifies it matters.
        origin = None
        entity_id = None
        for carrier in _SELF_CARRIERS:
            value = body.get(carrier)
            if isinstance(value, dict):
                origin = origin or url_origin(_plain(value.get("self"), SOURCE_LIMIT))
                entity_id = entity_id or _plain(value.get("id"))
        issue = body.get("issue")
        issue_key = _plain(issue.get("key")) if isinstance(issue, dict) else None
        if delivery is not None:
            event_id = delivery
        elif sent_at is not None and entity_id is not None:
            event_id = f"{entity_id}:{event_name}:{body['timestamp']}"
        else:
            event_id = f"{event_name}:{digest(body)}"
        short_name = event_name.removeprefix("jira:")
        return cloudevent(
            id=event_id,
            source=origin or _DEFAULT_SOURCE,
            type=_FOREIGN_PREFIX + short_name,
            subject=f"jira:{issue_key}" if issue_key else None,
            time=sent_at,
            data=body,
        )


def _incident(
    reader: Reader,
    key: str,
    issue_id: str,
    origin: str | None,
    fields: dict[str, Any],
    body: dict[str, Any],
    event_name: str,
) -> dict[str, Any]:
    path = "$.issue.fields"
    priority = reader.opt_obj(fields, "priority", path)
    priority_name = reader.text(priority, "name", child(path, "priority")) if priority else None
    status = reader.opt_obj(fields, "status", path) or {}
    status_name = reader.text(status, "name", child(path, "status"))
    category = reader.opt_obj(status, "statusCategory", child(path, "status")) or {}
    category_key = reader.text(category, "key", f"{path}.status.statusCategory")
    issue_type = reader.opt_obj(fields, "issuetype", path) or {}
    project = reader.opt_obj(fields, "project", path) or {}
    resolution = reader.opt_obj(fields, "resolution", path) or {}
    assignee = reader.opt_obj(fields, "assignee", path) or {}
    reporter = reader.opt_obj(fields, "reporter", path) or {}
    components: list[str] = []
    for index, component in enumerate(reader.opt_list(fields, "components", path)):
        component_path = f"{path}.components[{index}]"
        if name := reader.text(reader.obj(component, component_path), "name", component_path):
            components.append(name)
    changelog = _changed_fields(reader, body)

    return drop_none(
        {
            "id": f"jira:{key}",
            "external_ids": {"itsm_id": key},
            "title": clip(reader.text(fields, "summary", path), TITLE_LIMIT) or key,
            "description": clip(_description(reader, fields.get("description"), f"{path}.description"), TEXT_LIMIT),
            "severity": severity_from_name(JIRA_PRIORITY_SEVERITY, priority_name),
            "priority": priority_name,
            "status": _status(category_key, status_name),
            "category": reader.text(issue_type, "name", child(path, "issuetype")),
            # Components are how Jira teams usually name the affected service.
            "service": components[0] if components else None,
            "assignee": _person(reader, assignee, child(path, "assignee")),
            "reporter": _person(reader, reporter, child(path, "reporter")),
            "opened_at": iso(reader.timestamp(fields, "created", path)),
            "updated_at": iso(reader.timestamp(fields, "updated", path)),
            "resolved_at": iso(reader.timestamp(fields, "resolutiondate", path)),
            "labels": reader.text_list(fields, "labels", path),
            "url": f"{origin}/browse/{key}" if origin else None,
            "attributes": drop_none(
                {
                    "issue_id": issue_id,
                    "project": reader.text(project, "key", child(path, "project")),
                    "issue_type": reader.text(issue_type, "name", child(path, "issuetype")),
                    "status_name": status_name,
                    "status_category": category_key,
                    "resolution": reader.text(resolution, "name", child(path, "resolution")),
                    "components": components or None,
                    "assignee_account_id": reader.text(assignee, "accountId", child(path, "assignee")),
                    "reporter_account_id": reader.text(reporter, "accountId", child(path, "reporter")),
                    "webhook_event": event_name,
                    "issue_event_type": reader.text(body, "issue_event_type_name", "$"),
                    "changed_fields": changelog or None,
                }
            ),
        }
    )


def _status(category_key: str | None, status_name: str | None) -> str:
    if category_key in _STATUS_BY_CATEGORY:
        return _STATUS_BY_CATEGORY[category_key]
    # Without a category (older payloads, trimmed test bodies) fall back on the usual status names.
    name = (status_name or "").strip().lower()
    if name in {"done", "resolved", "closed"}:
        return "resolved"
    if name in {"in progress", "in review", "work in progress"}:
        return "in_progress"
    return "open"


def _person(reader: Reader, person: dict[str, Any], path: str) -> str | None:
    return reader.text(person, "displayName", path) or reader.text(person, "accountId", path)


def _changed_fields(reader: Reader, body: dict[str, Any]) -> list[str]:
    """The names of the fields this update changed, from the webhook's changelog."""
    changelog = reader.opt_obj(body, "changelog", "$")
    if changelog is None:
        return []
    names: list[str] = []
    for index, item in enumerate(reader.opt_list(changelog, "items", "$.changelog")):
        entry = reader.obj(item, f"$.changelog.items[{index}]")
        field = reader.text(entry, "field", f"$.changelog.items[{index}]")
        if field:
            names.append(field)
    return names


def _just_resolved(reader: Reader, body: dict[str, Any], fields: dict[str, Any], incident: dict[str, Any]) -> bool:
    """Whether an issue_updated webhook is the move into a done status, not a later edit of a done issue.

    With a changelog, only a change of status or resolution counts: editing the labels of an issue
    resolved last week must not resolve it again. Without one (some automation rules strip it),
    a set resolution date is the best evidence there is.
    """
    if incident.get("status") != "resolved":
        return False
    changed = {name.lower() for name in _changed_fields(reader, body)}
    if changed:
        return bool(changed & _RESOLVING_FIELDS)
    return fields.get("resolutiondate") not in (None, "")


def _description(reader: Reader, value: Any, path: str) -> str | None:
    """A description as plain text: Jira REST v2 sends a string, v3 an Atlassian Document Format tree."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return adf_to_text(value)
    reader.fail(path, "expected a string or an Atlassian Document Format object", "type")


def adf_to_text(document: dict[str, Any]) -> str:
    """Flatten an Atlassian Document Format tree to plain text, one line per block (paragraph, list item).

    Walks with an explicit stack rather than recursion: the tree comes from outside, and a deeply
    nested one must not be able to raise RecursionError.
    """
    parts: list[str] = []
    # Each entry is a node to visit, or the string "\n" to emit when a block node's children are done.
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            # End of a block: start a new line unless a nested block already did (a list item's
            # paragraph and the item itself end together and make one line break, not two).
            if parts and not parts[-1].endswith("\n"):
                parts.append(node)
            continue
        if not isinstance(node, dict):
            continue
        node_type = node.get("type") if isinstance(node.get("type"), str) else None
        if node_type == "text" and isinstance(node.get("text"), str):
            parts.append(node["text"])
        elif node_type == "hardBreak":
            parts.append("\n")
        elif node_type == "tableCell" or node_type == "tableHeader":
            parts.append(" ")
        else:
            attrs = node.get("attrs")
            if isinstance(attrs, dict) and node_type in {"mention", "emoji", "inlineCard", "date", "status"}:
                for name in _ADF_INLINE_ATTRS:
                    if isinstance(attrs.get(name), str):
                        parts.append(attrs[name])
                        break
        if node_type in _ADF_BLOCKS:
            stack.append("\n")
        content = node.get("content")
        if isinstance(content, list):
            stack.extend(reversed(content))
    return "\n".join(line.rstrip() for line in "".join(parts).splitlines()).strip()


def _plain(value: Any, limit: int = ID_LIMIT) -> str | None:
    """Short text or a number as text, else None: for reading a passed-through body leniently."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    return text if text and len(text) <= limit else None


def _parsed(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None
