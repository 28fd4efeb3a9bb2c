"""Giving a task to someone: only to a person who may decide it."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsrail.model import InvalidInput
from opsrail.wiring import Container
from tests.support import drain, publish

FINANCE_APPROVAL = """
id: needs-finance
version: 1
steps:
  - id: approve
    approval: {roles: [finance_controller]}
"""


def test_a_task_is_given_only_to_someone_who_may_decide_it(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, FINANCE_APPROVAL)
    container.automation.start("needs-finance", {}, actor="carol")
    drain(container)
    [task] = container.automation.tasks()
    for to, why in (
        ("zed", "'zed' is neither a person in the user directory nor an API token"),  # a typo: nobody would have it
        ("olive", "'olive' may not decide this task"),  # an operator, without the task's role
        ("carol", "'carol' may not decide this task"),  # a controller, but the one who requested it
    ):
        with pytest.raises(InvalidInput, match=why):
            container.automation.reassign(task["id"], to, by="olive")
    assert container.automation.assignees(task) == ["fiona"]  # what the console offers: carol asked for it
    assert container.automation.reassign(task["id"], "fiona", by="olive")["assignee"] == "fiona"
    container.directory.disable("fiona")
    with pytest.raises(InvalidInput, match="'fiona' is disabled"):
        container.automation.reassign(task["id"], "fiona", by="olive")


def test_a_task_may_be_given_to_a_service_account_s_token(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, FINANCE_APPROVAL)
    container.automation.start("needs-finance", {}, actor="carol")
    drain(container)
    [task] = container.automation.tasks()
    container.tokens.create("finance_controller", "billing-bot")
    assert container.automation.reassign(task["id"], "billing-bot", by="olive")["assignee"] == "billing-bot"
    container.tokens.create("operator", "ops-bot")
    assert container.automation.service_accounts(task) == ["billing-bot"]  # offered beside the people
    container.tokens.create("finance_controller", "fiona")  # a person's name: offered as the person only
    assert container.automation.service_accounts(task) == ["billing-bot"]
    with pytest.raises(InvalidInput, match="'ops-bot' may not decide this task"):
        container.automation.reassign(task["id"], "ops-bot", by="olive")
