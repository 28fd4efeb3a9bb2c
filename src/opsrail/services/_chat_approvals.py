"""Approvals from chat: a verified click on a Slack Approve or Reject button becomes the clicking person's decision
on the task, under the same authorization, separation of duties and four-eyes rules as the API and the CLI.

Slack users are mapped to people in the directory by the Slack connector's ``users`` setting
(``{"U0123ABC": "fiona"}``), else by their Slack user name; someone who is not in the directory cannot decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsrail.connectors import Connector
from opsrail.connectors.slack import InteractionRefused, SlackConnector
from opsrail.model import Forbidden, NotFound, Unauthenticated
from opsrail.services._automation import AutomationService
from opsrail.services._directory import DirectoryService


class ChatApprovals:
    def __init__(
        self,
        connectors: list[Connector],
        automation: AutomationService,
        directory: DirectoryService,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self.slack = next((c for c in connectors if isinstance(c, SlackConnector)), None)
        self.automation = automation
        self.directory = directory
        self.users = dict(users or {})

    def slack_interaction(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        if self.slack is None:
            raise NotFound("the Slack connector is not configured", hint='add "slack" to OPSRAIL_CONNECTORS')
        try:
            click = self.slack.interaction(headers, body)
        except InteractionRefused as exc:
            raise Unauthenticated(f"not a verified Slack interaction: {exc.reason}") from None
        name = self.users.get(click.user_id) or click.user_name
        roles = self.directory.roles_of(name)
        if roles is None:
            raise Forbidden(
                f"Slack user {click.user_id} ({click.user_name}) is not a person in the directory",
                hint="map them in the Slack connector's `users` setting, or `opsrail users create`",
            )
        principal = self.directory.principal(name, roles, "slack")
        comment = None if click.approve else f"rejected in Slack by {name}"
        task = self.automation.decide(
            self._task_id(click.task_id), approve=click.approve, by=principal, comment=comment
        )
        verdict = "approved" if click.approve else "rejected"
        return {
            "response_type": "in_channel",
            "replace_original": False,
            "text": f"{name} {verdict} task {task['id']} ({len(task['decisions'])} of {task['required']} decided)",
        }

    def _task_id(self, value: str) -> str:
        """A button carries a task id, or a run id when it was posted before the run's approval opened: then it
        means that run's open task (there must be exactly one)."""
        try:
            return str(self.automation.task(value)["id"])
        except NotFound:
            pass
        open_tasks = [t for t in self.automation.tasks(limit=1000) if t["run_id"] == value]
        if len(open_tasks) != 1:
            raise NotFound(
                f"no open task {value!r}" if not open_tasks else f"run {value} has {len(open_tasks)} open tasks",
                hint="the task was decided already, or the button names a run with several open tasks",
            )
        return str(open_tasks[0]["id"])
