"""The Prometheus Alertmanager source mapper: webhook notifications become canonical incident events.

One notification (webhook payload version 4) carries a group of alerts; each alert becomes one
event: ``firing`` -> ``com.opsrail.incident.opened`` (status ``open``), ``resolved`` ->
``com.opsrail.incident.resolved`` (``resolved_at`` = ``endsAt``). Grafana's Alertmanager-compatible
webhook has the same shape and maps the same way.

The incident id is ``alertmanager:<fingerprint>``; an alert without a fingerprint gets one derived
from its sorted labels (Alertmanager's own fingerprint is a hash of the label set too), so the same
alert always gets the same incident. The event id is ``<fingerprint>:<status>:<startsAt>``:
Alertmanager repeats a firing notification every ``repeat_interval`` with the same ``startsAt``,
and those repeats dedupe, while the resolution, and a new firing of the same alert later, are new
events. The event source is the notification's ``externalURL``, or ``alertmanager`` without one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opsrail.ingest.mappers._base import cloudevent
from opsrail.ingest.mappers._fields import (
    ALERT_SEVERITY,
    TEXT_LIMIT,
    TITLE_LIMIT,
    Reader,
    child,
    clip,
    drop_none,
    is_zero_time,
    iso,
    severity_from_name,
    type_name,
)
from opsrail.model import event_type

DEFAULT_SOURCE = "alertmanager"
_VERB_BY_STATUS = {"firing": "opened", "resolved": "resolved"}
_STATUS_BY_ALERT_STATUS = {"firing": "open", "resolved": "resolved"}
# Annotations that become canonical fields; the rest (runbook_url, dashboard, ...) stay in attributes.
_CANONICAL_ANNOTATIONS = frozenset({"summary", "description"})


class AlertmanagerMapper:
    name = "alertmanager"
    description = "Prometheus Alertmanager webhook notifications (version 4): one incident event per alert"

    def map(self, payload: Any, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        reader = Reader(
            "the Alertmanager notification could not be mapped",
            hint="point an Alertmanager webhook_config receiver at this endpoint and send its body unmodified",
        )
        body = reader.obj(payload, "$")
        if "alerts" not in body:
            reader.missing("$.alerts", "'alerts'")
        alerts = reader.opt_list(body, "alerts", "$")
        source = reader.source(reader.text(body, "externalURL", "$"), "$.externalURL") or DEFAULT_SOURCE
        common_labels = _string_map(reader, body, "commonLabels", "$")
        common_annotations = _string_map(reader, body, "commonAnnotations", "$")
        group = drop_none(
            {
                "receiver": reader.text(body, "receiver", "$"),
                "group_key": reader.text(body, "groupKey", "$"),
                "truncated_alerts": reader.integer(body, "truncatedAlerts", "$") or None,
            }
        )
        events = []
        for index, item in enumerate(alerts):
            path = f"$.alerts[{index}]"
            alert = reader.obj(item, path)
            events.append(_event(reader, alert, path, source, common_labels, common_annotations, group))
        return events


def _event(
    reader: Reader,
    alert: dict[str, Any],
    path: str,
    source: str,
    common_labels: dict[str, str],
    common_annotations: dict[str, str],
    group: dict[str, Any],
) -> dict[str, Any]:
    alert_status = reader.req_text(alert, "status", path)
    if alert_status not in _VERB_BY_STATUS:
        reader.fail(child(path, "status"), f"expected 'firing' or 'resolved', got {alert_status!r}")
    # An alert's own labels and annotations already include the group's common ones; the common maps
    # only fill in for hand-written or trimmed payloads.
    labels = {**common_labels, **_string_map(reader, alert, "labels", path)}
    annotations = {**common_annotations, **_string_map(reader, alert, "annotations", path)}
    starts_at = reader.timestamp(alert, "startsAt", path)
    if starts_at is None or is_zero_time(starts_at):
        reader.missing(child(path, "startsAt"), "the time the alert started firing")
    ends_at = reader.timestamp(alert, "endsAt", path)
    if is_zero_time(ends_at):
        ends_at = None

    fingerprint = reader.key(alert, "fingerprint", path) or _fingerprint(labels)
    severity_label = labels.get("severity")
    alertname = labels.get("alertname")

    incident = drop_none(
        {
            "id": f"alertmanager:{fingerprint}",
            "external_ids": {"itsm_id": fingerprint},
            "title": clip(annotations.get("summary") or alertname, TITLE_LIMIT) or f"Alert {fingerprint}",
            "description": clip(annotations.get("description") or annotations.get("message"), TEXT_LIMIT),
            "severity": severity_from_name(ALERT_SEVERITY, severity_label),
            "priority": severity_label,
            "status": _STATUS_BY_ALERT_STATUS[alert_status],
            "service": labels.get("service") or labels.get("job"),
            "opened_at": iso(starts_at),
            "resolved_at": iso(ends_at) if alert_status == "resolved" else None,
            "labels": [f"{key}={value}" for key, value in sorted(labels.items())],
            "url": reader.text(alert, "generatorURL", path),
            "attributes": drop_none(
                {
                    **group,
                    "alertname": alertname,
                    "fingerprint": fingerprint,
                    "annotations": {k: v for k, v in sorted(annotations.items()) if k not in _CANONICAL_ANNOTATIONS}
                    or None,
                    "silence_url": reader.text(alert, "silenceURL", path),
                    "dashboard_url": reader.text(alert, "dashboardURL", path),
                    "panel_url": reader.text(alert, "panelURL", path),
                }
            ),
        }
    )
    occurred: datetime = ends_at if alert_status == "resolved" and ends_at is not None else starts_at
    return cloudevent(
        id=f"{fingerprint}:{alert_status}:{iso(starts_at)}",
        source=source,
        type=event_type("incident", _VERB_BY_STATUS[alert_status]),
        subject=incident["id"],
        time=occurred,
        data=incident,
    )


def _string_map(reader: Reader, parent: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    """A label or annotation set: an object of strings (Alertmanager's Go type is map[string]string)."""
    value = reader.opt_obj(parent, key, path) or {}
    result: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(item, str):
            reader.fail(child(child(path, key), name), f"expected a string, got {type_name(item)}", "type")
        result[name] = item
    return result


def _fingerprint(labels: Mapping[str, str]) -> str:
    """A stable stand-in for Alertmanager's fingerprint: a hash of the sorted label set.

    Sixteen hex digits, like Alertmanager's own 64-bit fingerprints, though the values differ (it
    uses FNV-1a over its own encoding); the point is only that the same labels always give the same id.
    """
    encoded = "\x1f".join(f"{key}\x1e{value}" for key, value in sorted(labels.items()))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:16]
