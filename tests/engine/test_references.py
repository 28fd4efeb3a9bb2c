"""What a published playbook names and this process cannot find: decisions, child playbooks, connector operations."""

from __future__ import annotations

from pathlib import Path

from opsrail.wiring import Container
from tests.support import publish

REFERENCE_TABLES = Path(__file__).parents[2] / "src" / "opsrail" / "decisions" / "reference"

NAMES_THINGS = """
id: names-things
version: 1
steps:
  - id: route
    decide: incident-ruoter
    with: {severity: 1, topic: "Access"}
  - id: file
    action: ledger.create_invoce
    with: {account: "acme"}
  - id: tell
    notify: {channel: core.lgo, message: "hello"}
  - id: child
    call: {playbook: child-flow}
  - id: fine
    action: core.set
    with: {x: 1}
"""

CHILD = """
id: child-flow
version: 1
steps:
  - id: a
    action: core.set
    with: {y: 2}
"""


def test_what_a_playbook_names_and_nobody_offers_is_listed_until_it_exists(
    container: Container, tmp_path: Path
) -> None:
    publish(container, tmp_path, NAMES_THINGS)
    playbook = container.automation.playbook("names-things", None)
    found = {e.path: (e.code, e.message) for e in container.automation.unresolved(playbook)}
    assert found == {
        "$.steps[0].decide": (
            "unknown_decision",
            "no published table or model named 'incident-ruoter'",
        ),
        "$.steps[1].action": (
            "unknown_operation",
            "no configured connector offers 'ledger.create_invoce' (did you mean 'ledger.create_invoice'?)",
        ),
        "$.steps[2].notify.channel": (
            "unknown_operation",
            "no configured connector offers 'core.lgo' (did you mean 'core.log'?)",
        ),
        "$.steps[3].call.playbook": ("unknown_playbook", "no published playbook 'child-flow'"),
    }

    # Publishing what was missing resolves it; a near name is suggested once there is one.
    container.decisions.publish_table(REFERENCE_TABLES / "incident-router.yaml")
    publish(container, tmp_path, CHILD, name="child.yaml")
    messages = {e.path: e.message for e in container.automation.unresolved(playbook)}
    assert messages["$.steps[0].decide"].endswith("(did you mean 'incident-router'?)")
    assert "$.steps[3].call.playbook" not in messages


def test_an_action_of_a_connector_that_is_not_configured_says_so(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, "id: filer\nversion: 1\nsteps:\n  - id: a\n    action: jira.create_issue\n")
    [warning] = container.automation.unresolved(container.automation.playbook("filer", None))
    assert warning.message == "'jira.create_issue' needs the jira connector, not configured here (OPSRAIL_CONNECTORS)"
