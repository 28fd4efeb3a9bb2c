"""The registry of source mappers, by the name used in ``POST /v1/ingest/{source}``."""

from __future__ import annotations

from collections.abc import Mapping

from opsrail.ingest.mappers._base import SourceMapper
from opsrail.ingest.mappers.alertmanager import AlertmanagerMapper
from opsrail.ingest.mappers.cloudevents import CloudEventsMapper
from opsrail.ingest.mappers.jira import JiraMapper
from opsrail.ingest.mappers.servicenow import ServiceNowMapper
from opsrail.ingest.mappers.stripe import StripeMapper
from opsrail.ingest.mappers.zendesk import ZendeskMapper


def builtin_mappers() -> Mapping[str, SourceMapper]:
    mappers: list[SourceMapper] = [
        CloudEventsMapper(),
        JiraMapper(),
        ServiceNowMapper(),
        ZendeskMapper(),
        StripeMapper(),
        AlertmanagerMapper(),
    ]
    return {m.name: m for m in mappers}
