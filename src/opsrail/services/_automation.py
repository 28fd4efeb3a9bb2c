"""Use cases for playbooks, runs and human tasks, on top of the engine and its store."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, get_args

from opsrail.connectors import CATALOG
from opsrail.engine import (
    Command,
    Control,
    Engine,
    Migrated,
    RunState,
    RunStatus,
    RunStore,
    TaskDecided,
    advance,
    migrate_state,
)
from opsrail.governance import Principal, Resource
from opsrail.ingest import nul_errors
from opsrail.model import ROLES, Clock, Conflict, FieldError, InvalidInput, NotFound, require_one_of
from opsrail.playbooks import Playbook, load_playbook
from opsrail.services._audit import Auditor, not_audited
from opsrail.services._authorization import AuthorizationService
from opsrail.services._directory import DirectoryService
from opsrail.services._run_input import input_skeleton, run_input_problem


class AutomationStore(RunStore, Protocol):
    def publish(
        self, playbook: Playbook, document: str, filename: str, by: str | None, now: datetime, activate: bool = True
    ) -> bool: ...

    def activate(self, playbook_id: str, version: int, now: datetime, canary_percent: int | None = None) -> None: ...

    def list_playbooks(self) -> list[dict[str, Any]]: ...

    def list_runs(self, status: str | None, playbook_id: str | None, limit: int) -> list[dict[str, Any]]: ...

    def timeline(self, run_id: str) -> list[dict[str, Any]]: ...

    def log_after(self, seq: int, limit: int) -> list[dict[str, Any]]: ...

    def open_tasks(
        self, role: str | None, limit: int, *, assignee: str | None = None, roles: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]: ...

    def assign_task(
        self, task_id: str, assignee: str | None, *, actor: str, at: datetime, comment: str | None
    ) -> None: ...

    def task(self, task_id: str) -> dict[str, Any]: ...

    def record_decision(
        self, task_id: str, decision: dict[str, Any], check: Callable[[dict[str, Any]], None] | None = None
    ) -> list[dict[str, Any]]: ...

    def escalate_due(self, at: datetime) -> list[dict[str, Any]]: ...

    def migrate_run(
        self, run: RunState, state_version: int, renamed: dict[str, str], commands: Sequence[Command]
    ) -> bool: ...


ReviewObserver = Callable[[dict[str, Any], bool, str, "str | None", "dict[str, Any] | None"], None]
ValueCheck = Callable[[dict[str, Any], dict[str, Any]], None]
"""``observer(task, approved, by, comment, value)``: told when a review or decision-approval task is settled."""


class AutomationService:
    def __init__(self, store: AutomationStore, engine: Engine, clock: Clock) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock
        self.review_observers: list[ReviewObserver] = []
        self.value_checks: list[ValueCheck] = []
        """Called with a review task and a reviewer's own answer before it is taken; they raise to refuse it."""
        self.audit: Auditor = not_audited
        self.authorization: AuthorizationService | None = None
        self.directory: DirectoryService | None = None
        self.token_roles: Callable[[str], frozenset[str] | None] | None = None
        """The roles of the API tokens with a name, for checking an assignee (set by the wiring)."""
        self.token_accounts: Callable[[], dict[str, frozenset[str]]] | None = None
        """Every usable API token's name with its roles: the service accounts a task may be given to (wiring)."""
        self.decision_names: Callable[[], Iterable[str]] | None = None
        """The published decision tables and registered models, for ``unresolved`` (set by the wiring)."""

    # -- playbooks -------------------------------------------------------------------------------------

    def validate(self, path: Path) -> Playbook:
        return load_playbook(_read(path), str(path))

    def publish(self, path: Path, by: str | None = None, *, activate: bool = True) -> Playbook:
        return self.publish_text(_read(path), str(path), by, activate=activate)

    def publish_text(self, document: str, filename: str, by: str | None = None, *, activate: bool = True) -> Playbook:
        """Validate and publish a playbook's YAML, and (with ``activate``) make it the version new runs take; each
        problem names ``filename``:line:column."""
        playbook = load_playbook(document, filename)
        unknown = [
            FieldError(f"$.steps[{i}].sla.calendar", f"no calendar named {step.sla.calendar!r}", "unknown_calendar")
            for i, step in enumerate(playbook.steps)
            if step.sla is not None and step.sla.calendar not in self.engine.calendars.names()
        ]
        if unknown:
            raise InvalidInput(
                f"{filename} names calendars that are not configured",
                hint=f"known: {', '.join(self.engine.calendars.names())}; add others with OPSRAIL_CALENDARS",
                errors=unknown,
            )
        if not self.store.publish(playbook, document, filename, by, self.clock.now(), activate):
            raise Conflict(
                f"{playbook.id} version {playbook.version} is published already with other content",
                hint="published versions never change: raise `version` in the file",
            )
        self.audit(
            by, "playbook.published", f"{playbook.id}@{playbook.version}", {"file": filename, "activated": activate}
        )
        return playbook

    @staticmethod
    def input_skeleton(playbook: Playbook) -> dict[str, Any]:
        """An input to fill in for a run of ``playbook`` started by hand (see ``start``'s check)."""
        return input_skeleton(playbook)

    def unresolved(self, playbook: Playbook) -> list[FieldError]:
        """What the playbook names that this process cannot find: a decision that is neither a published table nor a
        registered model, a playbook a ``call`` starts that is not published, an action or notify channel no
        configured connector offers. Each would fail its step when a run reaches it. Warnings, not errors: a table,
        a child playbook or a connector (in the worker's settings) may come after the playbook that uses it."""
        operations = set(self.engine.operations.names())
        decisions = set(self.decision_names()) if self.decision_names is not None else None
        playbooks = {item["id"] for item in self.store.list_playbooks()} | {playbook.id}
        connector = ("no configured connector offers", operations, "unknown_operation")
        published = ("no published playbook", playbooks, "unknown_playbook")
        found: list[FieldError] = []
        for i, step in enumerate(playbook.steps):
            named: list[tuple[str, str | None, tuple[str, set[str] | None, str]]] = [
                ("action", step.action, connector),
                ("notify.channel", step.notify.channel if step.notify else None, connector),
                ("decide", step.decide, ("no published table or model named", decisions, "unknown_decision")),
                ("call.playbook", step.call.playbook if step.call else None, published),
            ]
            for field, name, (what, known, code) in named:
                if name is None or known is None or name in known:
                    continue
                vendor = name.partition(".")[0]
                if known is operations and vendor in CATALOG and not any(o.startswith(f"{vendor}.") for o in known):
                    message = f"{name!r} needs the {vendor} connector, not configured here (OPSRAIL_CONNECTORS)"
                else:
                    close = difflib.get_close_matches(name, sorted(known), n=1)
                    message = f"{what} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                found.append(FieldError(f"$.steps[{i}].{field}", message, code))
        return found

    def activate(
        self, playbook_id: str, version: int, canary_percent: int | None = None, actor: str | None = None
    ) -> None:
        if canary_percent is not None and not 0 <= canary_percent <= 100:
            raise InvalidInput("--canary is a percentage from 0 to 100")
        self.store.activate(playbook_id, version, self.clock.now(), canary_percent)
        self.audit(actor, "playbook.activated", f"{playbook_id}@{version}", {"canary_percent": canary_percent})

    def playbooks(self) -> list[dict[str, Any]]:
        return self.store.list_playbooks()

    def playbook(self, playbook_id: str, version: int | None) -> Playbook:
        return self.store.playbook(playbook_id, version or self.store.active_version(playbook_id))

    # -- runs --------------------------------------------------------------------------------------------

    def start(
        self,
        playbook_id: str,
        run_input: dict[str, Any],
        version: int | None = None,
        actor: str | None = None,
        *,
        check_input: bool = True,
    ) -> str:
        """Start a run by hand. With ``check_input``, an input that does not have the shape the playbook's trigger
        gives its runs (the event's canonical object, or the trigger's ``input`` keys) is refused."""
        problems = nul_errors(run_input, "$.input")
        if problems:
            raise InvalidInput("the run's input holds the NUL character", errors=problems)
        if check_input:
            problem = run_input_problem(
                self.store.playbook(playbook_id, version or self.store.active_version(playbook_id)), run_input
            )
            if problem is not None:
                raise InvalidInput(
                    problem[0],
                    hint="give the input its trigger would; to start the run anyway, pass --skip-input-check "
                    '(over the API, "check_input": false)',
                    errors=problem[1],
                )
        if actor and "requested_by" not in run_input:
            # Whoever starts a run requested what it asks approval for: separation of duties keys on this.
            run_input = {**run_input, "requested_by": actor}
        run_id = self.engine.start_run(playbook_id, run_input, version=version)
        assert run_id is not None, "a run without a trigger is never a duplicate"
        self.audit(actor, "run.started", run_id, {"playbook": playbook_id, "version": version})
        return run_id

    def runs(self, status: str | None = None, playbook_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        require_one_of("status", status, get_args(RunStatus))
        return self.store.list_runs(status, playbook_id, limit)

    def show(self, run_id: str) -> dict[str, Any]:
        run, _ = self.store.load_run(run_id)
        return {**describe(run), "timeline": self.store.timeline(run_id)}

    def control(self, run_id: str, action: str, step_id: str | None = None, actor: str | None = None) -> RunState:
        if action not in ("cancel", "pause", "resume", "retry_step"):
            raise InvalidInput(f"unknown run action {action!r}")
        run = self.engine.signal(run_id, Control(action, step_id, actor))  # type: ignore[arg-type]
        self.audit(actor, f"run.{action}", run_id, {"step": step_id, "status": run.status})
        return run

    def changes(self, after: int, limit: int = 500) -> list[dict[str, Any]]:
        """Every state change after the cursor ``after`` (a run-log sequence number), oldest first."""
        return self.store.log_after(after, limit)

    def migrate(
        self,
        playbook_id: str,
        from_version: int,
        to_version: int,
        mapping: dict[str, str] | None = None,
        *,
        apply: bool = False,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Move the in-flight runs of one version to another; without ``apply`` only reports what would happen."""
        if from_version == to_version:
            raise InvalidInput(
                f"--from and --to are both version {from_version}: there is nothing to migrate",
                hint=f"`opsrail playbooks list` shows {playbook_id}'s versions",
            )
        source = self.store.playbook(playbook_id, from_version)
        target = self.store.playbook(playbook_id, to_version)
        mapping = dict(mapping or {})
        problems = [
            FieldError(
                f"$.map.{old}",
                f"{old} -> {new}: "
                + (
                    "no such step in the old version"
                    if old not in {s.id for s in source.steps}
                    else f"no step {new} in version {to_version}"
                ),
                "unknown_step",
            )
            for old, new in mapping.items()
            if old not in {s.id for s in source.steps} or new not in {s.id for s in target.steps}
        ]
        if problems:
            raise InvalidInput("the step mapping does not fit these versions", errors=problems)
        moved, refused = [], []
        for item in self.store.list_runs("running", playbook_id, 100_000) + self.store.list_runs(
            "paused", playbook_id, 100_000
        ):
            if item["version"] != from_version:
                continue
            run, state_version = self.store.load_run(item["id"])
            migrated, reason = migrate_state(run, target, mapping)
            if migrated is None:
                refused.append({"run_id": run.id, "reason": reason})
                continue
            if apply:
                commands = advance(
                    target, migrated, Migrated(from_version, actor), self.clock.now(), self.engine.calendars
                )
                renamed = {old: new for old, new in mapping.items() if old != new}
                if not self.store.migrate_run(migrated, state_version, renamed, commands):
                    refused.append({"run_id": run.id, "reason": "changed while migrating; try again"})
                    continue
                self.audit(actor, "run.migrated", run.id, {"from": from_version, "to": to_version, "map": mapping})
            moved.append(run.id)
        return {
            "playbook": playbook_id,
            "from": from_version,
            "to": to_version,
            "applied": apply,
            "moved": moved,
            "refused": refused,
        }

    # -- tasks -------------------------------------------------------------------------------------------

    def tasks(
        self,
        role: str | None = None,
        limit: int = 50,
        *,
        mine: str | None = None,
        my_roles: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Open tasks, earliest due first. ``mine``: those assigned to that person, or unassigned and asking for
        one of ``my_roles``."""
        for name in (role, *my_roles):
            require_one_of("role", name, ROLES)
        return self.store.open_tasks(role, limit, assignee=mine, roles=tuple(my_roles))

    def task(self, task_id: str) -> dict[str, Any]:
        return self.store.task(task_id)

    def reassign(self, task_id: str, to: str | None, *, by: str, comment: str | None = None) -> dict[str, Any]:
        """Give an open task to someone (``to``), or back to everyone with its roles (``None``)."""
        task = self.store.task(task_id)
        if task["status"] != "open":
            raise Conflict(f"task {task_id} is {task['status']}", hint="only open tasks can be reassigned")
        if to is not None and not to.strip():
            raise InvalidInput("reassign needs the name of a person", hint="give --to NAME, or --unassign")
        if to is not None:
            self._check_assignee(task, to)
        self.store.assign_task(task_id, to, actor=by, at=self.clock.now(), comment=comment)
        self.audit(by, "task.reassigned", task_id, {"to": to, "comment": comment, "run": task["run_id"]})
        return self.store.task(task_id)

    def assignees(self, task: dict[str, Any]) -> list[str]:
        """The people in the directory who may be given ``task``: enabled, and allowed by the policies to decide it."""
        if self.directory is None:
            return []
        directory, resource = self.directory, task_resource(task)
        return [
            user["name"]
            for user in directory.users()
            if user["disabled_at"] is None
            and (
                self.authorization is None
                # The user row is at hand: only their delegations are read, not the user again.
                or self.authorization.allows(
                    directory.principal(user["name"], frozenset(user["roles"]), "user"), "task.decide", resource
                )
            )
        ]

    def service_accounts(self, task: dict[str, Any]) -> list[str]:
        """The API tokens' names (service accounts, not people) who may be given ``task``: allowed to decide it."""
        if self.directory is None or self.token_accounts is None:
            return []
        people = {user["name"] for user in self.directory.users()}
        resource = task_resource(task)
        return [
            name
            for name, roles in self.token_accounts().items()
            if name not in people  # a name that is also a person's is checked as the person
            and (
                self.authorization is None
                or self.authorization.allows(self.directory.principal(name, roles, "token"), "task.decide", resource)
            )
        ]

    def _check_assignee(self, task: dict[str, Any], to: str) -> None:
        """Only someone who may decide the task can be given it: an assigned task leaves everyone else's inbox, so a
        mistyped name or a person without its roles would leave it with nobody."""
        if self.directory is None:
            return
        user = next((u for u in self.directory.users() if u["name"] == to), None)
        if user is not None and user["disabled_at"] is not None:
            raise InvalidInput(f"{to!r} is disabled", hint="give the task to someone else, or re-enable them")
        if user is not None:
            principal = self._decider(to)
        else:
            token_roles = self.token_roles(to) if self.token_roles is not None else None
            if token_roles is None:
                raise InvalidInput(
                    f"{to!r} is neither a person in the user directory nor an API token's name",
                    hint="`opsrail users list` names the people who may decide",
                )
            principal = self.directory.principal(to, token_roles, "token")
        if self.authorization is not None and not self.authorization.allows(
            principal, "task.decide", task_resource(task)
        ):
            raise InvalidInput(
                f"{to!r} may not decide this task",
                hint=f"give it to someone with one of its roles ({', '.join(task['roles'])}) who did not request it",
            )

    def decide(
        self,
        task_id: str,
        *,
        approve: bool,
        by: str | Principal,
        comment: str | None = None,
        value: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Approve or reject a task. On a review task, ``value`` is the reviewer's own answer (an override).

        ``by`` is the deciding principal (a name is looked up in the directory). The active policies decide whether
        they may decide this task (by default: they hold one of its roles, and did not request it); one person
        counts once, and the approvers together must hold the task's required roles.
        """
        principal = self._decider(by)
        if not approve and not comment:
            raise InvalidInput("a rejection needs a reason", hint="add --comment '…'")
        if value is not None and not comment:
            raise InvalidInput("an override needs a reason", hint="add --comment '…'")
        holds: list[str] = []

        def check(task: dict[str, Any]) -> None:
            if task["status"] != "open":
                raise Conflict(f"task {task_id} is {task['status']}", hint="only open tasks can be decided")
            if value is not None and task["kind"] == "approval":
                raise InvalidInput("an approval takes yes or no, not a value", hint="give a value only on review tasks")
            if self.authorization is not None:
                self.authorization.check(principal, "task.decide", task_resource(task))
            if any(d["by"] == principal.name for d in task["decisions"]):
                raise Conflict(f"{principal.name} has already decided task {task_id}", hint="one person counts once")
            holds.extend(role for role in task["roles"] if role in principal.roles)
            if approve and value is None:
                _check_composition(task, principal, holds)

        task = self.store.task(task_id)
        if value is not None and task["kind"] == "review":
            for check_value in self.value_checks:
                check_value(task, value)
        decisions = self.store.record_decision(
            task_id,
            {
                "by": principal.name,
                "approved": approve,
                "comment": comment,
                "value": value,
                "at": self.clock.now(),
                "roles": holds,
                **({"acting_for": list(principal.acting_for)} if principal.acting_for else {}),
            },
            check,
        )
        approvers = tuple(d["by"] for d in decisions if d["approved"])
        self.audit(
            principal.name,
            "task.approved" if approve else "task.rejected",
            task_id,
            {
                "run": task["run_id"],
                "step": task["step_id"],
                "comment": comment,
                "value": value,
                "roles": holds,
                "acting_for": list(principal.acting_for),
                "approvals": len(approvers),
                "required": task["required"],
            },
        )
        settled = False
        if value is not None:
            self.engine.signal(task["run_id"], TaskDecided(task["step_id"], approve, (principal.name,), comment, value))
            settled = True
        elif not approve:
            self.engine.signal(task["run_id"], TaskDecided(task["step_id"], False, (principal.name,), comment))
            settled = True
        elif len(approvers) >= task["required"]:
            self.engine.signal(task["run_id"], TaskDecided(task["step_id"], True, approvers, comment))
            settled = True
        if settled:
            for observer in self.review_observers:
                observer(task, approve, principal.name, comment, value)
        return self.store.task(task_id)

    def _decider(self, by: str | Principal) -> Principal:
        if isinstance(by, Principal):
            principal = by
        elif self.directory is not None:
            principal = self.directory.local(by)
        else:
            principal = Principal(by, frozenset(), "user")
        if self.directory is not None and not principal.acting_for:
            principal = self.directory.principal(principal.name, principal.roles, principal.kind)
        return principal

    def escalate(self) -> list[dict[str, Any]]:
        """Escalate open approvals nobody answered in time (``approval.escalate_after``): add their escalation roles."""
        escalated = self.store.escalate_due(self.clock.now())
        for task in escalated:
            self.audit(
                None,
                "task.escalated",
                task["id"],
                {"run": task["run_id"], "step": task["step_id"], "roles": task["roles"]},
            )
        return escalated


def task_resource(task: dict[str, Any]) -> Resource:
    """A task as Cedar sees it: the roles it asks for, who requested it, its kind."""
    return Resource(
        "Task",
        task["id"],
        {"roles": list(task["roles"]), "requested_by": task.get("requested_by") or "", "kind": task["kind"]},
    )


def _check_composition(task: dict[str, Any], principal: Principal, holds: list[str]) -> None:
    """With this approval, can the approvers still hold every required role within the count?"""
    required = list(task.get("require") or [])
    if not required:
        return
    approvals = [d for d in task["decisions"] if d["approved"]]
    covered = {role for d in approvals for role in d.get("roles", [])} | set(holds)
    missing = [role for role in required if role not in covered]
    slots_left = task["required"] - len(approvals) - 1
    if len(missing) > slots_left:
        raise Conflict(
            f"this approval would leave {', '.join(missing)} without an approver",
            hint=f"{len(approvals)} of {task['required']} approvals are given; "
            f"the remaining ones must include {', '.join(missing)}",
        )


def describe(run: RunState) -> dict[str, Any]:
    return {
        "id": run.id,
        "playbook": run.playbook_id,
        "version": run.version,
        "status": run.status,
        "error": run.error,
        "input": run.input,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "steps": [
            {
                "id": s.id,
                "status": s.status,
                "attempt": s.attempt,
                "output": s.output,
                "error": s.error,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "due_at": s.due_at,
                "waiting_for": s.waiting_for,
            }
            for s in run.steps.values()
        ],
    }


def _read(path: Path) -> str:
    if not path.is_file():
        raise NotFound(f"no such file: {path}", hint="give the path of a playbook YAML file")
    return path.read_text(encoding="utf-8")
