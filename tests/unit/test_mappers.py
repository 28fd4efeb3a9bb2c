"""Unit tests of the vendor source mappers (Jira, ServiceNow, Zendesk, Stripe, Alertmanager).

Every event a mapper produces here is run through ``normalise`` (which validates canonical data
against its kind's model) and through ``json.dumps`` (mapper output must be storable as it is).
Payloads follow the vendors' published webhook and API shapes; see tests/fixtures/vendor/.
"""

from __future__ import annotations

import copy
import csv
import gzip
import json
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsrail.ingest._normalise import NormalisedEvent, normalise
from opsrail.ingest.mappers._fields import parse_timestamp
from opsrail.ingest.mappers.alertmanager import AlertmanagerMapper
from opsrail.ingest.mappers.jira import JiraMapper, adf_to_text
from opsrail.ingest.mappers.servicenow import ServiceNowMapper
from opsrail.ingest.mappers.stripe import StripeMapper
from opsrail.ingest.mappers.zendesk import ZendeskMapper
from opsrail.model import MappingFailed

FIXTURES = Path(__file__).parents[1] / "fixtures" / "vendor"
UCI_SAMPLE = (
    Path(__file__).parents[2].parent
    / "shared"
    / "data"
    / "uci498_incident_sample"
    / "incident_event_log_first5998rows.csv.gz"
)

Mapper = JiraMapper | ServiceNowMapper | ZendeskMapper | StripeMapper | AlertmanagerMapper


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def run(mapper: Mapper, payload: Any, headers: Mapping[str, str] | None = None) -> list[NormalisedEvent]:
    """Map a payload and check what every mapper promises about each event it returns."""
    events = mapper.map(payload, headers or {})
    normalised = []
    for event in events:
        json.dumps(event)  # JSON-native all the way down: no datetimes, Decimals or sets
        result = normalise(event)
        assert result.event.time is None or result.event.time.tzinfo is not None
        normalised.append(result)
    return normalised


def only(mapper: Mapper, payload: Any, headers: Mapping[str, str] | None = None) -> NormalisedEvent:
    events = run(mapper, payload, headers)
    assert len(events) == 1
    return events[0]


def mapping_error(mapper: Mapper, payload: Any) -> MappingFailed:
    with pytest.raises(MappingFailed) as caught:
        mapper.map(payload, {})
    assert caught.value.hint, "a MappingFailed should say what to send instead"
    return caught.value


def paths(error: MappingFailed) -> list[str]:
    return [e.path for e in error.errors]


@pytest.mark.parametrize(
    ("mapper", "name"),
    [
        (JiraMapper(), "jira"),
        (ServiceNowMapper(), "servicenow"),
        (ZendeskMapper(), "zendesk"),
        (StripeMapper(), "stripe"),
        (AlertmanagerMapper(), "alertmanager"),
    ],
)
def test_mappers_are_named_and_described(mapper: Mapper, name: str) -> None:
    assert mapper.name == name
    assert mapper.description


@pytest.mark.parametrize(
    ("mapper", "fixture_name"),
    [
        (JiraMapper(), "jira_issue_created.json"),
        (JiraMapper(), "jira_issue_updated_resolved.json"),
        (JiraMapper(), "jira_comment_created.json"),
        (ServiceNowMapper(), "servicenow_table_api.json"),
        (ZendeskMapper(), "zendesk_ticket_created.json"),
        (ZendeskMapper(), "zendesk_status_changed_solved.json"),
        (ZendeskMapper(), "zendesk_trigger_ticket.json"),
        (StripeMapper(), "stripe_invoice_payment_failed.json"),
        (StripeMapper(), "stripe_subscription_updated.json"),
        (StripeMapper(), "stripe_charge_succeeded.json"),
        (AlertmanagerMapper(), "alertmanager_notification.json"),
    ],
)
def test_every_fixture_maps_to_valid_deterministic_events(mapper: Mapper, fixture_name: str) -> None:
    payload = fixture(fixture_name)
    untouched = copy.deepcopy(payload)
    first = run(mapper, payload)
    assert first
    assert payload == untouched, "a mapper must not modify the payload it is given"
    # Redelivery: the same payload gives the same event ids.
    assert [e.id for e in run(mapper, copy.deepcopy(payload))] == [e.id for e in first]


# ---------------------------------------------------------------------------------------------
# Jira
# ---------------------------------------------------------------------------------------------


class TestJira:
    mapper = JiraMapper()

    def test_issue_created_is_an_opened_incident(self) -> None:
        event = only(self.mapper, fixture("jira_issue_created.json"), {"x-atlassian-webhook-identifier": "wh-1"})
        assert event.event.type == "com.opsrail.incident.opened"
        assert event.id == "wh-1"
        assert event.source == "https://acme.atlassian.net"
        assert event.event.time == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        assert event.object_id == "jira:ENG-42"
        data = event.data
        assert data["external_ids"] == {"itsm_id": "ENG-42"}
        assert data["title"] == "SSO login fails for Contoso after IdP certificate rotation"
        assert data["severity"] == 2 and data["priority"] == "High"
        assert data["status"] == "open"
        assert data["opened_at"] == "2026-01-05T09:00:00Z"  # "+0100" offset without colon, in UTC
        assert data["labels"] == ["sso", "customer-impact"]
        assert data["service"] == "auth-service"
        assert data["category"] == "Bug"
        assert data["reporter"] == "Dana Responder"
        assert data["url"] == "https://acme.atlassian.net/browse/ENG-42"
        assert data["attributes"]["project"] == "ENG"
        assert data["description"] == (
            "SAML assertions are rejected since 08:40 UTC.\nReported by @Dana Responder\nTenant: contoso\nIdP: Entra ID"
        )
        assert "resolved_at" not in data

    def test_move_into_done_resolves(self) -> None:
        event = only(self.mapper, fixture("jira_issue_updated_resolved.json"))
        assert event.event.type == "com.opsrail.incident.resolved"
        assert event.data["status"] == "resolved"
        assert event.data["resolved_at"] == "2026-01-05T14:00:00Z"
        assert event.data["assignee"] == "Sam Engineer"
        assert event.data["description"].startswith("SAML assertions are rejected")
        # No delivery header: derived from issue id, webhook event and timestamp.
        assert event.id == "10042:jira:issue_updated:1767621600000"

    def test_editing_a_done_issue_is_an_update_not_a_second_resolution(self) -> None:
        payload = fixture("jira_issue_updated_resolved.json")
        payload["timestamp"] += 60_000
        payload["changelog"]["items"] = [
            {"field": "labels", "fieldtype": "jira", "fromString": "sso", "toString": "sso rca-done"}
        ]
        event = only(self.mapper, payload)
        assert event.event.type == "com.opsrail.incident.updated"
        assert event.data["status"] == "resolved"

    def test_done_without_changelog_resolves_on_resolution_date(self) -> None:
        payload = fixture("jira_issue_updated_resolved.json")
        del payload["changelog"]
        assert only(self.mapper, payload).event.type == "com.opsrail.incident.resolved"

    def test_progress_update_is_updated_in_progress(self) -> None:
        payload = fixture("jira_issue_updated_resolved.json")
        fields = payload["issue"]["fields"]
        fields["status"] = {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}
        fields["resolutiondate"] = None
        fields["resolution"] = None
        payload["changelog"]["items"] = [{"field": "status", "fromString": "To Do", "toString": "In Progress"}]
        event = only(self.mapper, payload)
        assert event.event.type == "com.opsrail.incident.updated"
        assert event.data["status"] == "in_progress"

    def test_issue_deleted_is_cancelled(self) -> None:
        payload = fixture("jira_issue_created.json")
        payload["webhookEvent"] = "jira:issue_deleted"
        event = only(self.mapper, payload)
        assert event.event.type == "com.opsrail.incident.cancelled"
        assert event.data["status"] == "cancelled"

    def test_comment_created_passes_through_as_a_jira_event(self) -> None:
        payload = fixture("jira_comment_created.json")
        event = only(self.mapper, payload)
        assert event.event.type == "com.atlassian.jira.comment_created"
        assert event.kind is None
        assert event.data == payload
        assert event.event.subject == "jira:ENG-42"
        assert event.source == "https://acme.atlassian.net"
        assert event.id == "10300:comment_created:1767607200000"

    def test_delivery_header_makes_the_event_id(self) -> None:
        payload = fixture("jira_issue_created.json")
        retry = only(self.mapper, payload, {"x-atlassian-webhook-identifier": "a1b2"})
        again = only(self.mapper, payload, {"x-atlassian-webhook-identifier": "a1b2"})
        other = only(self.mapper, payload, {"x-atlassian-webhook-identifier": "c3d4"})
        assert retry.id == again.id == "a1b2"
        assert other.id != retry.id

    def test_different_changes_get_different_ids(self) -> None:
        first = fixture("jira_issue_updated_resolved.json")
        second = copy.deepcopy(first)
        second["timestamp"] += 1
        assert only(self.mapper, first).id != only(self.mapper, second).id

    def test_no_timestamp_and_no_header_still_gives_a_stable_id(self) -> None:
        payload = fixture("jira_issue_created.json")
        del payload["timestamp"]
        changed = copy.deepcopy(payload)
        changed["issue"]["fields"]["summary"] = "Something else"
        event = only(self.mapper, payload)
        assert event.id == only(self.mapper, copy.deepcopy(payload)).id
        assert event.id != only(self.mapper, changed).id
        assert event.event.time == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # falls back on fields.updated

    def test_without_self_link_the_source_is_jira(self) -> None:
        payload = fixture("jira_issue_created.json")
        del payload["issue"]["self"]
        event = only(self.mapper, payload)
        assert event.source == "jira"
        assert "url" not in event.data

    @pytest.mark.parametrize(
        ("name", "severity"),
        [
            ("Highest", 1),
            ("Blocker", 1),
            ("High", 2),
            ("Critical", 2),
            ("Medium", 3),
            ("Major", 3),
            ("Low", 4),
            ("Lowest", 4),
            ("Minor", 4),
            ("Trivial", 4),
            ("P9-custom", None),
        ],
    )
    def test_priority_to_severity(self, name: str, severity: int | None) -> None:
        payload = fixture("jira_issue_created.json")
        payload["issue"]["fields"]["priority"] = {"name": name}
        assert only(self.mapper, payload).data.get("severity") == severity

    @pytest.mark.parametrize(
        ("mutate", "path"),
        [
            (lambda p: p.pop("webhookEvent"), "$.webhookEvent"),
            (lambda p: p.pop("issue"), "$.issue"),
            (lambda p: p["issue"].pop("key"), "$.issue.key"),
            (lambda p: p["issue"].update(fields="nope"), "$.issue.fields"),
            (lambda p: p["issue"]["fields"].update(created="yesterday"), "$.issue.fields.created"),
            (lambda p: p["issue"]["fields"].update(labels=["ok", 7]), "$.issue.fields.labels[1]"),
            (lambda p: p.update(timestamp="soon"), "$.timestamp"),
            (lambda p: p.update(webhookEvent="<script>"), "$.webhookEvent"),
        ],
    )
    def test_malformed_payload_names_the_field(self, mutate: Any, path: str) -> None:
        payload = fixture("jira_issue_created.json")
        mutate(payload)
        assert paths(mapping_error(self.mapper, payload)) == [path]

    def test_non_object_payload(self) -> None:
        assert paths(mapping_error(self.mapper, ["not", "a", "webhook"])) == ["$"]

    def test_adf_flattening_survives_deep_nesting(self) -> None:
        node: dict[str, Any] = {"type": "text", "text": "deep"}
        for _ in range(5000):
            node = {"type": "blockquote", "content": [node]}
        assert adf_to_text({"type": "doc", "content": [node]}) == "deep"


# ---------------------------------------------------------------------------------------------
# ServiceNow
# ---------------------------------------------------------------------------------------------


class TestServiceNow:
    mapper = ServiceNowMapper()

    def test_table_api_result_with_raw_and_display_values(self) -> None:
        new, resolved = run(self.mapper, fixture("servicenow_table_api.json"))

        assert new.event.type == "com.opsrail.incident.opened"
        assert new.source == "servicenow"
        assert new.id == "INC0010023:0:20260105T084211Z"
        assert new.object_id == "servicenow:INC0010023"
        assert new.data["status"] == "new"
        assert new.data["severity"] == 1
        assert new.data["title"] == "Email delivery delayed for EU tenants"
        assert new.data["opened_at"] == "2026-01-05T08:42:11Z"
        assert new.data["segment"] == {"channel": "monitoring"}
        assert new.data["sla_met"] is True
        # A reference without a display value keeps its sys_id.
        assert new.data["assignment_group"] == "287ebd7da9fe198100f92cc8d1d2154e"
        assert new.data["attributes"]["location"] == "25ab9c4d0a0a0bb300f7dabdc0ca7c1c"
        assert new.data["attributes"]["sys_created_on"] == "2026-01-05T08:42:11+00:00"
        assert "close_code" not in new.data["attributes"]  # empty strings are missing values

        assert resolved.event.type == "com.opsrail.incident.resolved"
        assert resolved.id == "INC0010017:14:20260104T162005Z"
        data = resolved.data
        assert data["status"] == "resolved"
        assert data["severity"] == 3 and data["priority"] == "3 - Moderate"
        assert data["assignee"] == "Fred Luddy"
        assert data["reporter"] == "Beth Anglin"
        assert data["service"] == "vpn-gw-ams-1"
        assert data["resolved_at"] == "2026-01-04T16:20:05Z"
        assert "closed_at" not in data
        assert data["sla_met"] is False
        assert data["reassignment_count"] == 2 and data["reopen_count"] == 1
        assert data["attributes"]["location"] == "Amsterdam"
        assert data["attributes"]["close_code"] == "Solved (Permanently)"

    def test_accepted_envelopes(self) -> None:
        records = fixture("servicenow_table_api.json")["result"]
        ids = [e.id for e in run(self.mapper, {"result": records})]
        assert [e.id for e in run(self.mapper, records)] == ids
        assert [e.id for e in run(self.mapper, {"records": records})] == ids
        assert only(self.mapper, {"result": records[0]}).id == ids[0]
        assert only(self.mapper, records[0]).id == ids[0]
        assert run(self.mapper, {"result": []}) == []

    @pytest.mark.parametrize(
        ("state", "status", "verb"),
        [
            ("New", "new", "opened"),
            ("Active", "in_progress", "updated"),
            ("In Progress", "in_progress", "updated"),
            ("Awaiting User Info", "on_hold", "updated"),
            ("Awaiting Problem", "on_hold", "updated"),
            ("On Hold", "on_hold", "updated"),
            ("Resolved", "resolved", "resolved"),
            ("Closed", "closed", "closed"),
            ("Canceled", "cancelled", "cancelled"),
            ("1", "new", "opened"),
            ("2", "in_progress", "updated"),
            ("3", "on_hold", "updated"),
            ("6", "resolved", "resolved"),
            ("7", "closed", "closed"),
            ("8", "cancelled", "cancelled"),
            ("Waiting for Vendor", "in_progress", "updated"),
        ],
    )
    def test_states(self, state: str, status: str, verb: str) -> None:
        event = only(self.mapper, {"number": "INC0000001", "state": state, "sys_mod_count": "1"})
        assert event.data["status"] == status
        assert event.event.type == f"com.opsrail.incident.{verb}"
        assert event.data["attributes"]["state"] == state

    @pytest.mark.parametrize(
        ("priority", "severity"),
        [("1 - Critical", 1), ("2 - High", 2), ("3 - Moderate", 3), ("4 - Low", 4), ("5 - Planning", 4), ("5", 4)],
    )
    def test_priority_to_severity(self, priority: str, severity: int) -> None:
        event = only(self.mapper, {"number": "INC0000001", "incident_state": "New", "priority": priority})
        assert event.data["severity"] == severity

    def test_severity_from_impact_and_urgency_without_priority(self) -> None:
        record = {"number": "INC0000001", "state": "2", "impact": "1 - High", "urgency": "2 - Medium"}
        assert only(self.mapper, record).data["severity"] == 2

    def test_title_falls_back_to_category_then_number(self) -> None:
        base = {"number": "INC0000001", "state": "New"}
        assert only(self.mapper, {**base, "category": "Network", "subcategory": "?"}).data["title"] == "Network"
        assert only(self.mapper, base).data["title"] == "INC0000001"

    def test_open_record_does_not_claim_a_resolution(self) -> None:
        record = {
            "number": "INC0000001",
            "state": "Active",
            "resolved_at": "2016-03-01 10:00:00",
            "closed_at": "2016-03-06 10:00:00",
        }
        data = only(self.mapper, record).data
        assert "resolved_at" not in data and "closed_at" not in data
        assert data["attributes"]["recorded_resolved_at"] == "2016-03-01T10:00:00+00:00"
        assert data["attributes"]["recorded_closed_at"] == "2016-03-06T10:00:00+00:00"

    def test_event_id_without_a_version_is_a_content_hash(self) -> None:
        record = {"number": "INC0000001", "state": "New", "short_description": "a"}
        changed = {**record, "short_description": "b"}
        first = only(self.mapper, record).id
        assert first == only(self.mapper, dict(record)).id
        assert first != only(self.mapper, changed).id
        assert first.startswith("INC0000001:")

    @pytest.mark.parametrize(
        ("payload", "path"),
        [
            ({"result": [{"number": "INC1", "state": "New"}, {"state": "New"}]}, "$.result[1].number"),
            ({"result": [{"number": "INC1"}]}, "$.result[0].incident_state"),
            ({"result": "nope"}, "$.result"),
            ([{"number": "INC1", "state": "New"}, 5], "$[1]"),
            ({"number": "INC1", "state": "New", "opened_at": "31/31/2016 99:00"}, "$.opened_at"),
            ({"number": "INC1", "state": "New", "reopen_count": "many"}, "$.reopen_count"),
            ({"number": "INC1", "state": "New", "made_sla": "perhaps"}, "$.made_sla"),
            ({"number": "INC1", "state": ["New"]}, "$.state"),
            ({"number": "INC1", "state": {"display_value": ["x"]}}, "$.state.display_value"),
            ("INC1", "$"),
        ],
    )
    def test_malformed_payload_names_the_field(self, payload: Any, path: str) -> None:
        assert paths(mapping_error(self.mapper, payload)) == [path]

    def test_uci_498_real_event_log(self) -> None:
        if not UCI_SAMPLE.exists():
            pytest.skip(f"the UCI 498 sample is not present at {UCI_SAMPLE}")
        with gzip.open(UCI_SAMPLE, "rt", encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 5998

        events: list[NormalisedEvent] = []
        for row in rows:
            events.extend(run(self.mapper, row))  # run() normalises every event; any error fails here

        assert len(events) == 5998
        # The log repeats a (number, sys_mod_count) pair for different states of an incident (its
        # audit trail has gaps); those rows are distinct changes and must keep distinct event ids.
        versions = Counter((row["number"], row["sys_mod_count"]) for row in rows)
        repeated = {pair for pair, count in versions.items() if count > 1}
        assert len(repeated) == 5
        assert ("INC0000135", "7") in repeated
        assert len({e.id for e in events}) == len(events)
        for event, row in zip(events, rows, strict=True):
            assert event.id.startswith(f"{row['number']}:{row['sys_mod_count']}:")
            assert event.object_id == f"servicenow:{row['number']}"
            assert event.data["severity"] in {1, 2, 3, 4}
            assert event.data["title"]
            assert event.data["segment"]["channel"] == "phone"
            if row["location"] != "?":
                assert event.data["attributes"]["location"] == row["location"]

        states = Counter(row["incident_state"] for row in rows)
        assert (states["New"], states["Resolved"], states["Closed"]) == (1638, 929, 897)
        types = Counter(e.event.type for e in events)
        assert types["com.opsrail.incident.opened"] == states["New"]
        assert types["com.opsrail.incident.resolved"] == states["Resolved"]
        assert types["com.opsrail.incident.closed"] == states["Closed"]
        assert types["com.opsrail.incident.updated"] == len(rows) - 1638 - 929 - 897
        assert {e.data["status"] for e in events if e.event.type.endswith(".closed")} == {"closed"}
        assert all("closed_at" in e.data for e in events if e.event.type.endswith(".closed"))


# ---------------------------------------------------------------------------------------------
# Zendesk
# ---------------------------------------------------------------------------------------------


class TestZendesk:
    mapper = ZendeskMapper()

    def test_ticket_created_event_webhook(self) -> None:
        event = only(self.mapper, fixture("zendesk_ticket_created.json"))
        assert event.event.type == "com.opsrail.incident.opened"
        assert event.id == "cbe4028c-7239-495d-b020-f22348516046"
        assert event.source == "zendesk"
        assert event.event.time == datetime(2026, 1, 5, 9, 12, 7, 123456, tzinfo=UTC)  # nanoseconds truncated
        data = event.data
        assert data["id"] == "zendesk:35436"
        assert data["external_ids"] == {"itsm_id": "35436"}
        assert data["status"] == "new"
        assert data["severity"] == 1 and data["priority"] == "urgent"
        assert data["category"] == "incident"
        assert data["account_id"] == "zendesk-org:8447346622078"
        assert data["reporter"] == "zendesk-user:8447388090494"
        assert data["assignment_group"] == "zendesk-group:8447320466430"
        assert "assignee" not in data
        assert data["labels"] == ["sso", "enterprise"]
        assert data["segment"] == {"channel": "web_form"}

    def test_status_changed_to_solved_resolves(self) -> None:
        event = only(self.mapper, fixture("zendesk_status_changed_solved.json"))
        assert event.event.type == "com.opsrail.incident.resolved"
        assert event.data["status"] == "resolved"
        assert event.data["resolved_at"] == "2026-01-05T13:40:51Z"
        assert event.data["attributes"]["previous_status"] == "open"

    def test_status_changed_to_closed_closes(self) -> None:
        payload = fixture("zendesk_status_changed_solved.json")
        payload["id"] = "e0c5d3b1-0000-4000-8000-000000000001"
        payload["event"].update(current="CLOSED", previous="SOLVED")
        payload["detail"]["status"] = "CLOSED"
        event = only(self.mapper, payload)
        assert event.event.type == "com.opsrail.incident.closed"
        assert event.data["status"] == "closed"
        assert event.data["closed_at"] == "2026-01-05T13:40:51Z"

    def test_status_changed_to_pending_is_an_update_on_hold(self) -> None:
        payload = fixture("zendesk_status_changed_solved.json")
        payload["event"].update(current="PENDING", previous="OPEN")
        event = only(self.mapper, payload)
        assert event.event.type == "com.opsrail.incident.updated"
        assert event.data["status"] == "on_hold"

    def test_other_ticket_events_are_updates(self) -> None:
        payload = fixture("zendesk_ticket_created.json")
        payload["type"] = "zen:event-type:ticket.priority_changed"
        payload["event"] = {"current": "HIGH", "previous": "URGENT"}
        payload["detail"]["priority"] = "HIGH"
        payload["detail"]["status"] = "OPEN"
        event = only(self.mapper, payload)
        assert event.event.type == "com.opsrail.incident.updated"
        assert event.data["severity"] == 2
        assert event.data["status"] == "open"

    def test_soft_deleted_ticket_is_cancelled(self) -> None:
        payload = fixture("zendesk_ticket_created.json")
        payload["type"] = "zen:event-type:ticket.soft_deleted"
        event = only(self.mapper, payload)
        assert event.event.type == "com.opsrail.incident.cancelled"
        assert event.data["status"] == "cancelled"

    def test_non_ticket_event_passes_through(self) -> None:
        payload = {
            "type": "zen:event-type:user.active_changed",
            "account_id": 12514403,
            "id": "2b24ef10-19d4-4740-93cf-8f98ec4776c0",
            "time": "2026-01-05T05:33:18Z",
            "zendesk_event_version": "2022-06-20",
            "subject": "zen:user:6596848315901",
            "detail": {"id": "6596848315901", "role": "end-user", "organization_id": "0"},
            "event": {"current": False, "previous": True},
        }
        event = only(self.mapper, payload)
        assert event.event.type == "com.zendesk.user.active_changed"
        assert event.kind is None
        assert event.data == payload
        assert event.id == "2b24ef10-19d4-4740-93cf-8f98ec4776c0"

    def test_trigger_webhook_body(self) -> None:
        event = only(self.mapper, fixture("zendesk_trigger_ticket.json"))
        assert event.event.type == "com.opsrail.incident.updated"
        assert event.id == "35437:20260105T103000Z"
        data = event.data
        assert data["id"] == "zendesk:35437"
        assert data["status"] == "open"
        assert data["severity"] == 2
        assert data["category"] == "problem"
        assert data["labels"] == ["billing", "web_app"]
        assert data["segment"] == {"channel": "web form"}
        assert data["url"] == "https://acme.zendesk.com/agent/tickets/35437"
        assert "account_id" not in data

    @pytest.mark.parametrize(
        ("status", "verb", "canonical"),
        [
            ("new", "opened", "new"),
            ("open", "updated", "open"),
            ("pending", "updated", "on_hold"),
            ("hold", "updated", "on_hold"),
            ("Solved", "resolved", "resolved"),
            ("closed", "closed", "closed"),
        ],
    )
    def test_trigger_status_and_type(self, status: str, verb: str, canonical: str) -> None:
        payload = fixture("zendesk_trigger_ticket.json")
        payload["ticket"]["status"] = status
        event = only(self.mapper, payload)
        assert event.event.type == f"com.opsrail.incident.{verb}"
        assert event.data["status"] == canonical

    def test_trigger_body_may_have_its_own_type_key(self) -> None:
        payload = {"type": "ticket_update", **fixture("zendesk_trigger_ticket.json")}
        assert only(self.mapper, payload).object_id == "zendesk:35437"

    def test_trigger_on_a_new_ticket_opens(self) -> None:
        payload = fixture("zendesk_trigger_ticket.json")
        payload["ticket"]["updated_at"] = payload["ticket"]["created_at"]
        assert only(self.mapper, payload).event.type == "com.opsrail.incident.opened"

    def test_trigger_redelivery_and_new_update(self) -> None:
        payload = fixture("zendesk_trigger_ticket.json")
        later = copy.deepcopy(payload)
        later["ticket"]["updated_at"] = "2026-01-05T11:00:00Z"
        assert only(self.mapper, payload).id == only(self.mapper, copy.deepcopy(payload)).id
        assert only(self.mapper, payload).id != only(self.mapper, later).id

    @pytest.mark.parametrize(
        ("priority", "severity"), [("urgent", 1), ("HIGH", 2), ("Normal", 3), ("low", 4), ("-", None)]
    )
    def test_priority_to_severity(self, priority: str, severity: int | None) -> None:
        payload = fixture("zendesk_trigger_ticket.json")
        payload["ticket"]["priority"] = priority
        assert only(self.mapper, payload).data.get("severity") == severity

    @pytest.mark.parametrize(
        ("payload", "path"),
        [
            ({"hello": "world"}, "$.ticket"),
            ({"ticket": {"subject": "no id"}}, "$.ticket.id"),
            ({"ticket": "35436"}, "$.ticket"),
            ({"ticket": {"id": 1, "updated_at": "later"}}, "$.ticket.updated_at"),
            ({"ticket": {"id": 1, "tags": [1, 2]}}, "$.ticket.tags[0]"),
            ({"type": "ticket.created", "id": "x"}, "$.type"),
            ({"type": "zen:event-type:ticket.created", "id": "x"}, "$.detail"),
            ({"type": "zen:event-type:ticket.created", "id": "x", "detail": {"subject": "s"}}, "$.detail.id"),
        ],
    )
    def test_malformed_payload_names_the_field(self, payload: Any, path: str) -> None:
        assert paths(mapping_error(self.mapper, payload)) == [path]

    def test_ticket_id_can_come_from_the_event_subject(self) -> None:
        payload = fixture("zendesk_ticket_created.json")
        del payload["detail"]["id"]
        assert only(self.mapper, payload).object_id == "zendesk:35436"


# ---------------------------------------------------------------------------------------------
# Stripe
# ---------------------------------------------------------------------------------------------


class TestStripe:
    mapper = StripeMapper()

    def test_invoice_payment_failed(self) -> None:
        event = only(self.mapper, fixture("stripe_invoice_payment_failed.json"))
        assert event.event.type == "com.opsrail.invoice.payment_failed"
        assert event.id == "evt_1QZx8kLkdIwHu7ixq2W1Xb9T"
        assert event.source == "stripe"
        assert event.event.time == datetime.fromtimestamp(1767607200, tz=UTC)
        data = event.data
        assert data["id"] == "stripe:in_1QZx7uLkdIwHu7ixA3bC4dEf"
        assert data["external_ids"] == {"billing_id": "in_1QZx7uLkdIwHu7ixA3bC4dEf"}
        assert data["status"] == "open"
        assert data["amount_due"] == "1299.00"
        assert data["amount_paid"] == "0.00"
        assert data["currency"] == "EUR"
        assert data["attempt_count"] == 2
        assert data["number"] == "ACME-0042"
        assert data["account_id"] == "stripe-customer:cus_RSsQ1XyZ7aBcDe"
        assert data["subscription_id"] == "stripe:sub_1QA2b3LkdIwHu7ixZyXwVuTs"
        assert data["last_failure"] == "Your card has insufficient funds."
        assert data["issued_at"] == datetime.fromtimestamp(1767607100, tz=UTC).isoformat().replace("+00:00", "Z")
        assert data["attributes"]["charge"] == "ch_3QZx8jLkdIwHu7ix0aBcDeFg"
        assert data["attributes"]["payment_intent"] == "pi_3QZx8jLkdIwHu7ix1hIjKlMn"
        assert data["attributes"]["livemode"] is False

    @pytest.mark.parametrize(
        ("currency", "minor", "major"),
        [
            ("jpy", 129900, "129900"),
            ("krw", 5000, "5000"),
            ("kwd", 12345, "12.345"),
            ("usd", 5, "0.05"),
            ("isk", 50000, "500.00"),
        ],
    )
    def test_minor_units_use_the_currency_exponent(self, currency: str, minor: int, major: str) -> None:
        payload = fixture("stripe_invoice_payment_failed.json")
        invoice = payload["data"]["object"]
        invoice.update(currency=currency, amount_due=minor)
        data = only(self.mapper, payload).data
        assert data["amount_due"] == major
        assert data["currency"] == currency.upper()

    def test_due_date_from_epoch(self) -> None:
        payload = fixture("stripe_invoice_payment_failed.json")
        payload["data"]["object"]["due_date"] = 1768521600  # 2026-01-16T00:00:00Z
        assert only(self.mapper, payload).data["due_date"] == "2026-01-16"

    def test_new_api_versions_put_the_subscription_under_parent(self) -> None:
        payload = fixture("stripe_invoice_payment_failed.json")
        invoice = payload["data"]["object"]
        del invoice["subscription"]
        invoice["parent"] = {
            "type": "subscription_details",
            "subscription_details": {"subscription": "sub_1Rnew", "metadata": {}},
        }
        assert only(self.mapper, payload).data["subscription_id"] == "stripe:sub_1Rnew"

    @pytest.mark.parametrize("stripe_type", ["invoice.paid", "invoice.payment_succeeded"])
    def test_invoice_paid(self, stripe_type: str) -> None:
        payload = fixture("stripe_invoice_payment_failed.json")
        payload["type"] = stripe_type
        invoice = payload["data"]["object"]
        invoice.update(status="paid", amount_paid=129900, amount_remaining=0, payment_intent="pi_3QZx8j")
        event = only(self.mapper, payload)
        assert event.event.type == "com.opsrail.invoice.paid"
        assert event.data["status"] == "paid"
        assert event.data["amount_paid"] == "1299.00"
        assert "last_failure" not in event.data

    def test_subscription_updated(self) -> None:
        event = only(self.mapper, fixture("stripe_subscription_updated.json"))
        assert event.event.type == "com.opsrail.subscription.updated"
        assert event.id == "evt_1QZyA1LkdIwHu7ixm9N8o7P6"
        data = event.data
        assert data["id"] == "stripe:sub_1QA2b3LkdIwHu7ixZyXwVuTs"
        assert data["external_ids"] == {"billing_id": "sub_1QA2b3LkdIwHu7ixZyXwVuTs"}
        assert data["account_id"] == "stripe-customer:cus_RSsQ1XyZ7aBcDe"
        assert data["plan"] == "Business (monthly)"
        assert data["status"] == "past_due"
        assert data["quantity"] == 25
        assert data["mrr"] == "1225"  # 25 x EUR 49.00
        assert data["currency"] == "EUR"
        assert data["collection_paused"] is True
        assert data["started_at"] == datetime.fromtimestamp(1759654800, tz=UTC).isoformat().replace("+00:00", "Z")
        assert data["attributes"]["changed_fields"] == ["pause_collection", "status"]

    def test_yearly_price_mrr_is_a_twelfth(self) -> None:
        payload = fixture("stripe_subscription_updated.json")
        item = payload["data"]["object"]["items"]["data"][0]
        item["price"].update(nickname=None, unit_amount=100000, recurring={"interval": "year", "interval_count": 1})
        item["quantity"] = 1
        data = only(self.mapper, payload).data
        assert data["mrr"] == "83.3333"
        assert data["plan"] == "price_1QA2aZLkdIwHu7ixBusinessM"  # no nickname: the price id

    def test_mrr_is_omitted_for_metered_or_weekly_prices(self) -> None:
        payload = fixture("stripe_subscription_updated.json")
        price = payload["data"]["object"]["items"]["data"][0]["price"]
        price["recurring"] = {"interval": "week", "interval_count": 1}
        assert "mrr" not in only(self.mapper, payload).data
        price["recurring"] = {"interval": "month", "interval_count": 1, "usage_type": "metered"}
        assert "mrr" not in only(self.mapper, payload).data

    @pytest.mark.parametrize("verb", ["created", "deleted", "paused", "resumed"])
    def test_subscription_verbs(self, verb: str) -> None:
        payload = fixture("stripe_subscription_updated.json")
        payload["type"] = f"customer.subscription.{verb}"
        payload["data"]["object"]["status"] = {"deleted": "canceled", "paused": "paused"}.get(verb, "active")
        payload["data"]["object"]["pause_collection"] = None
        event = only(self.mapper, payload)
        assert event.event.type == f"com.opsrail.subscription.{verb}"
        assert event.data["collection_paused"] is False

    def test_incomplete_expired_is_canceled(self) -> None:
        payload = fixture("stripe_subscription_updated.json")
        payload["data"]["object"]["status"] = "incomplete_expired"
        data = only(self.mapper, payload).data
        assert data["status"] == "canceled"
        assert data["attributes"]["stripe_status"] == "incomplete_expired"

    def test_unmapped_event_passes_through(self) -> None:
        payload = fixture("stripe_charge_succeeded.json")
        event = only(self.mapper, payload)
        assert event.event.type == "com.stripe.charge.succeeded"
        assert event.kind is None
        assert event.data == payload
        assert event.id == "evt_3QZz1aLkdIwHu7ix0kLmNoPq"

    def test_redelivery_keeps_the_stripe_event_id(self) -> None:
        payload = fixture("stripe_invoice_payment_failed.json")
        retried = copy.deepcopy(payload)
        retried["pending_webhooks"] = 3  # Stripe's retry carries the same evt id
        assert only(self.mapper, payload).id == only(self.mapper, retried).id

    @pytest.mark.parametrize(
        ("mutate", "path"),
        [
            (lambda p: p.pop("id"), "$.id"),
            (lambda p: p.update(object="invoice"), "$.object"),
            (lambda p: p.pop("type"), "$.type"),
            (lambda p: p["data"].pop("object"), "$.data.object"),
            (lambda p: p.pop("data"), "$.data"),
            (lambda p: p["data"]["object"].pop("currency"), "$.data.object.currency"),
            (lambda p: p["data"]["object"].update(currency="euro"), "$.data.object.currency"),
            (lambda p: p["data"]["object"].pop("amount_due"), "$.data.object.amount_due"),
            (lambda p: p["data"]["object"].update(amount_due="lots"), "$.data.object.amount_due"),
            (lambda p: p["data"]["object"].pop("id"), "$.data.object.id"),
            (lambda p: p.update(created="yesterday"), "$.created"),
        ],
    )
    def test_malformed_invoice_event_names_the_field(self, mutate: Any, path: str) -> None:
        payload = fixture("stripe_invoice_payment_failed.json")
        mutate(payload)
        assert paths(mapping_error(self.mapper, payload)) == [path]

    @pytest.mark.parametrize(
        ("mutate", "path"),
        [
            (lambda o: o.pop("customer"), "$.data.object.customer"),
            (lambda o: o.update(status="exploded"), "$.data.object.status"),
            (lambda o: o.pop("items"), "$.data.object.items.data[0].price"),
            (lambda o: o["items"].update(data=["si_1"]), "$.data.object.items.data[0]"),
        ],
    )
    def test_malformed_subscription_event_names_the_field(self, mutate: Any, path: str) -> None:
        payload = fixture("stripe_subscription_updated.json")
        mutate(payload["data"]["object"])
        assert paths(mapping_error(self.mapper, payload)) == [path]


# ---------------------------------------------------------------------------------------------
# Alertmanager
# ---------------------------------------------------------------------------------------------


class TestAlertmanager:
    mapper = AlertmanagerMapper()

    def test_one_event_per_alert(self) -> None:
        firing, resolved = run(self.mapper, fixture("alertmanager_notification.json"))

        assert firing.event.type == "com.opsrail.incident.opened"
        assert firing.source == "http://alertmanager.example.org:9093"
        assert firing.id == "1a30ba71cca2921f:firing:2026-01-05T13:08:45.828000+00:00"
        assert firing.object_id == "alertmanager:1a30ba71cca2921f"
        data = firing.data
        assert data["status"] == "open"
        assert data["severity"] == 1 and data["priority"] == "critical"
        assert data["title"] == "BlackBox Probe Failure: https://app.example.org"
        assert data["description"].startswith("Instance https://app.example.org has been down")
        assert data["service"] == "web-app"
        assert "resolved_at" not in data  # endsAt 0001-01-01 means unset
        assert "alertname=ProbeFailure" in data["labels"] and "severity=critical" in data["labels"]
        assert data["labels"] == sorted(data["labels"])
        assert data["url"].startswith("http://prometheus.example.org:9090/graph")
        assert data["attributes"]["annotations"] == {"runbook_url": "https://runbooks.example.org/probe-failure"}
        assert data["attributes"]["receiver"] == "opsrail"

        assert resolved.event.type == "com.opsrail.incident.resolved"
        assert resolved.data["status"] == "resolved"
        assert resolved.data["resolved_at"] == "2026-01-05T13:10:15.828000Z"
        assert resolved.data["opened_at"] == "2026-01-05T11:58:15.828266Z"  # nanoseconds, +01:00 offset
        assert resolved.data["severity"] == 3
        assert resolved.data["service"] == "http_checks"  # no service label: the job
        assert resolved.event.time == datetime(2026, 1, 5, 13, 10, 15, 828000, tzinfo=UTC)

    def test_repeat_notification_dedupes_and_resolution_is_new(self) -> None:
        payload = fixture("alertmanager_notification.json")
        firing_id = run(self.mapper, payload)[0].id
        assert run(self.mapper, copy.deepcopy(payload))[0].id == firing_id

        resolved = copy.deepcopy(payload)
        resolved["alerts"][0].update(status="resolved", endsAt="2026-01-05T14:00:00Z")
        assert run(self.mapper, resolved)[0].id != firing_id

        refired = copy.deepcopy(payload)
        refired["alerts"][0]["startsAt"] = "2026-01-06T08:00:00Z"
        assert run(self.mapper, refired)[0].id != firing_id
        assert run(self.mapper, refired)[0].object_id == run(self.mapper, payload)[0].object_id

    def test_missing_fingerprint_is_derived_from_sorted_labels(self) -> None:
        payload = fixture("alertmanager_notification.json")
        alert = payload["alerts"][0]
        del alert["fingerprint"]
        reordered = copy.deepcopy(payload)
        reordered["alerts"][0]["labels"] = dict(reversed(list(alert["labels"].items())))
        first = run(self.mapper, payload)[0]
        assert first.object_id is not None and first.object_id.startswith("alertmanager:")
        assert first.object_id == run(self.mapper, reordered)[0].object_id
        relabelled = copy.deepcopy(payload)
        relabelled["alerts"][0]["labels"]["instance"] = "https://other.example.org"
        assert run(self.mapper, relabelled)[0].object_id != first.object_id

    def test_title_falls_back_to_alertname_and_source_to_alertmanager(self) -> None:
        payload = fixture("alertmanager_notification.json")
        del payload["externalURL"]
        del payload["alerts"][0]["annotations"]["summary"]
        event = run(self.mapper, payload)[0]
        assert event.data["title"] == "ProbeFailure"
        assert event.source == "alertmanager"

    @pytest.mark.parametrize(
        ("label", "severity"),
        [
            ("critical", 1),
            ("page", 1),
            ("error", 2),
            ("major", 2),
            ("high", 2),
            ("warning", 3),
            ("medium", 3),
            ("info", 4),
            ("low", 4),
            ("none", 4),
            ("P1", None),
        ],
    )
    def test_severity_label(self, label: str, severity: int | None) -> None:
        payload = fixture("alertmanager_notification.json")
        payload["alerts"] = payload["alerts"][:1]
        payload["alerts"][0]["labels"]["severity"] = label
        assert run(self.mapper, payload)[0].data.get("severity") == severity

    def test_empty_notification_gives_no_events(self) -> None:
        payload = fixture("alertmanager_notification.json")
        payload["alerts"] = []
        assert run(self.mapper, payload) == []

    @pytest.mark.parametrize(
        ("mutate", "path"),
        [
            (lambda p: p.pop("alerts"), "$.alerts"),
            (lambda p: p.update(alerts={"status": "firing"}), "$.alerts"),
            (lambda p: p["alerts"][1].pop("status"), "$.alerts[1].status"),
            (lambda p: p["alerts"][0].update(status="pending"), "$.alerts[0].status"),
            (lambda p: p["alerts"][0].pop("startsAt"), "$.alerts[0].startsAt"),
            (lambda p: p["alerts"][0].update(startsAt="noon"), "$.alerts[0].startsAt"),
            (lambda p: p["alerts"][0]["labels"].update(severity=1), "$.alerts[0].labels.severity"),
            (lambda p: p["alerts"].append("alert"), "$.alerts[2]"),
        ],
    )
    def test_malformed_payload_names_the_field(self, mutate: Any, path: str) -> None:
        payload = fixture("alertmanager_notification.json")
        mutate(payload)
        assert paths(mapping_error(self.mapper, payload)) == [path]


# ---------------------------------------------------------------------------------------------
# Robustness: whatever arrives, a mapper returns valid events or raises MappingFailed
# ---------------------------------------------------------------------------------------------

MAPPER_BY_PREFIX: dict[str, Mapper] = {
    "jira": JiraMapper(),
    "servicenow": ServiceNowMapper(),
    "zendesk": ZendeskMapper(),
    "stripe": StripeMapper(),
    "alertmanager": AlertmanagerMapper(),
}
# Replacement values chosen to hit every reader's edge: wrong types, blanks, ServiceNow's "?",
# Go's zero time, out-of-range numbers and over-long text.
ODD_VALUES: list[Any] = [None, 0, -1, 1.5, True, "", "?", "-", "x", "0001-01-01T00:00:00Z", [], {}, ["a"], {"a": 1}]
ODD_VALUES += [10**30, "9" * 600]
_DELETE = object()


def _locations(value: Any, here: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [here] if here else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _locations(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _locations(item, (*here, index))
    return found


def _replaced(payload: Any, location: tuple[str | int, ...], value: Any) -> Any:
    changed = copy.deepcopy(payload)
    parent = changed
    for part in location[:-1]:
        parent = parent[part]
    if value is _DELETE:
        del parent[location[-1]]
    else:
        parent[location[-1]] = value
    return changed


def _maps_or_refuses(mapper: Mapper, payload: Any) -> None:
    refusal: MappingFailed | None = None
    events: list[dict[str, Any]] = []
    try:
        events = mapper.map(payload, {})
    except MappingFailed as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.errors
        assert all(error.path.startswith("$") for error in refusal.errors)
    for event in events:
        json.dumps(event)
        normalise(event)  # an InvalidInput here means the mapper built invalid canonical data


@pytest.mark.parametrize("fixture_name", sorted(path.name for path in FIXTURES.glob("*.json")))
def test_every_single_field_corruption_maps_or_refuses(fixture_name: str) -> None:
    mapper = MAPPER_BY_PREFIX[fixture_name.split("_")[0]]
    payload = fixture(fixture_name)
    for location in _locations(payload):
        replacements = ODD_VALUES if isinstance(location[-1], int) else [*ODD_VALUES, _DELETE]
        for value in replacements:
            _maps_or_refuses(mapper, _replaced(payload, location, value))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@pytest.mark.parametrize("prefix", sorted(MAPPER_BY_PREFIX))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=json_values)
def test_arbitrary_json_maps_or_refuses(prefix: str, payload: Any) -> None:
    _maps_or_refuses(MAPPER_BY_PREFIX[prefix], payload)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_fixtures_with_an_arbitrary_subtree_map_or_refuse(data: st.DataObject) -> None:
    fixture_name = data.draw(st.sampled_from(sorted(path.name for path in FIXTURES.glob("*.json"))))
    payload = fixture(fixture_name)
    location = data.draw(st.sampled_from(_locations(payload)))
    replaced = _replaced(payload, location, data.draw(json_values))
    _maps_or_refuses(MAPPER_BY_PREFIX[fixture_name.split("_")[0]], replaced)


# ---------------------------------------------------------------------------------------------
# Shared parsing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-05-07T13:03:57.000+0000", datetime(2018, 5, 7, 13, 3, 57, tzinfo=UTC)),
        ("2018-05-07T15:03:57.000+0200", datetime(2018, 5, 7, 13, 3, 57, tzinfo=UTC)),
        ("2025-01-08T16:45:20.987654321Z", datetime(2025, 1, 8, 16, 45, 20, 987654, tzinfo=UTC)),
        ("2016-12-12 15:19:57", datetime(2016, 12, 12, 15, 19, 57, tzinfo=UTC)),
        ("29-02-2016 01:16", datetime(2016, 2, 29, 1, 16, tzinfo=UTC)),
        ("May 07, 2024", datetime(2024, 5, 7, tzinfo=UTC)),
        ("not a date", None),
        ("", None),
    ],
)
def test_parse_timestamp(text: str, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected
