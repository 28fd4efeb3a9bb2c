"""The playbook document: a versioned, declarative DAG of steps, validated by pydantic.

Durations are ISO 8601 (``PT2S``, ``P1D``). Expressions (``when``, ``done_when``, ``correlate``, ``outputs``)
are CEL; string values in ``with`` may hold CEL templates, ``${ expr }``. The names an expression sees are
``event`` (the triggering or awaited event), ``run`` (``run.id``, ``run.input``), ``steps`` (``steps.<id>.output``,
``steps.<id>.status``) and, in ``done_when`` and ``outputs``, ``result`` (the step's own result).

Steps run as a DAG: a step starts once the steps in its ``needs`` have settled, and steps whose needs are met run
in parallel. A step named as another step's ``on_failure.fallback``, ``on_failure.compensate`` or
``approval.on_timeout`` is a *handler*: the DAG never starts it on its own; it runs only when activated by the
failure or timeout it handles. So a handler has no ``needs``, no step lists a handler in its ``needs`` (it needs
the step the handler stands in for), and a handler's own ``on_failure`` is never used, since a failing handler
ends the run. This schema describes single fields; those rules, and the others that span steps, are checked by
:func:`opsrail.playbooks.load_playbook`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsrail.model import KnownRole

StepId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="lowercase letters, digits, - and _")]
PlaybookId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
Cel = Annotated[str, Field(min_length=1, max_length=4000, description="a CEL expression")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(Strict):
    events: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, description="event types that start a run")
    when: Cel | None = Field(default=None, description="CEL filter over `event`")
    input: dict[str, Any] | None = Field(
        default=None, description="the run's input, from templates over `event`; default: the event's data"
    )


class Retry(Strict):
    attempts: int = Field(default=3, ge=1, le=100, description="attempts in all, the first included")
    backoff: Literal["fixed", "exponential"] = "exponential"
    initial: timedelta = Field(default=timedelta(seconds=1))
    max: timedelta = Field(default=timedelta(minutes=5))


class OnFailure(Strict):
    """What happens when a step fails for good (after its retries)."""

    fallback: StepId | None = Field(default=None, description="run this step instead; the run goes on")
    compensate: StepId | None = Field(default=None, description="run this step to undo, then fail the run")
    action: Literal["fail", "continue"] = Field(
        default="fail", alias="then", description="fail the run, or continue as if the step were skipped"
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `on_failure: continue` is short for `on_failure: {then: continue}`.
        if isinstance(value, str):
            return {"then": value}
        return value


class ApprovalRule(Strict):
    """One threshold of an approval: the first rule whose ``when`` holds decides who must approve, and how many."""

    when: Cel | None = Field(default=None, description="CEL over the run (input, steps); absent: always")
    tier: Literal["approval", "autonomous"] = Field(
        default="approval", description="autonomous: no person needs to approve (the step succeeds at once)"
    )
    roles: list[KnownRole] = Field(default_factory=list, description="roles that may approve (default: the step's)")
    count: int | None = Field(default=None, ge=1, le=10, description="distinct approvers needed")
    require: list[KnownRole] = Field(default_factory=list, description="roles at least one approver must hold, each")


class Approval(Strict):
    roles: list[KnownRole] = Field(min_length=1)
    count: int = Field(default=1, ge=1, le=10, description="distinct approvers needed")
    require: list[KnownRole] = Field(
        default_factory=list, description="roles that must each be held by at least one of the approvers"
    )
    rules: list[ApprovalRule] = Field(
        default_factory=list, description="thresholds in order; the first that matches sets roles, count, require"
    )
    escalate_after: timedelta | None = Field(
        default=None, description="when nobody has answered by then, the task is escalated to `escalate_to`"
    )
    escalate_to: list[KnownRole] = Field(default_factory=list, description="roles added to the task on escalation")

    @model_validator(mode="after")
    def _coherent(self) -> Approval:
        for where, roles, require, count in [
            ("approval", self.roles, self.require, self.count),
            *(
                (f"approval rule {i + 1}", rule.roles or self.roles, rule.require, rule.count or self.count)
                for i, rule in enumerate(self.rules)
                if rule.tier == "approval"
            ),
        ]:
            missing = [role for role in require if role not in roles]
            if missing:
                raise ValueError(f"{where}: `require` names roles that may not approve: {', '.join(missing)}")
            if len(require) > count:
                raise ValueError(f"{where}: {len(require)} required roles cannot fit in {count} approvals")
        if self.escalate_after is not None and not self.escalate_to:
            raise ValueError("`escalate_after` needs `escalate_to`: the roles the task is escalated to")
        return self

    timeout: timedelta | None = None
    on_timeout: StepId | None = Field(default=None, description="step to run when nobody answers in time")
    title: str | None = None


class Wait(Strict):
    """A durable timer (``duration``) or an awaited event (``event`` with ``correlate``), with a timeout."""

    duration: timedelta | None = None
    event: str | None = None
    correlate: Cel | None = None
    timeout: timedelta | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Wait:
        if (self.duration is None) == (self.event is None):
            raise ValueError("a wait has either a duration or an event")
        if self.event is None and (self.correlate or self.timeout):
            raise ValueError("correlate and timeout belong to a wait for an event")
        return self


class Notify(Strict):
    channel: str = Field(description="connector operation that delivers it, e.g. core.log or slack.post")
    to: list[str] = Field(default_factory=list)
    message: str


class Call(Strict):
    playbook: PlaybookId
    version: int | None = Field(default=None, ge=1, description="pinned version; default: the active one")
    input: dict[str, Any] = Field(default_factory=dict)


class Sla(Strict):
    target: timedelta
    calendar: str = "24x7"
    warn_at: float = Field(default=0.8, gt=0, lt=1, description="fraction of the target that raises a near-breach")


StepKind = Literal["action", "decide", "approval", "wait", "notify", "call"]
KIND_KEYS: tuple[StepKind, ...] = ("action", "decide", "approval", "wait", "notify", "call")


class Step(Strict):
    id: StepId
    needs: list[StepId] = Field(default_factory=list)
    when: Cel | None = None
    action: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")] | None = None
    decide: str | None = None
    approval: Approval | None = None
    wait: Wait | None = None
    notify: Notify | None = None
    call: Call | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    retry: Retry | None = None
    timeout: timedelta | None = None
    on_failure: OnFailure | None = None
    outputs: dict[str, Cel] = Field(default_factory=dict)
    done_when: Cel | None = None
    sla: Sla | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        present = [key for key in KIND_KEYS if getattr(self, key) is not None]
        if len(present) != 1:
            raise ValueError(f"a step has exactly one of {', '.join(KIND_KEYS)}; found {present or 'none'}")
        return self

    @property
    def kind(self) -> StepKind:
        return next(key for key in KIND_KEYS if getattr(self, key) is not None)


class Playbook(Strict):
    id: PlaybookId
    version: int = Field(ge=1)
    title: str | None = None
    description: str | None = None
    trigger: Trigger | None = None
    steps: list[Step] = Field(min_length=1)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def handler_ids(self) -> set[str]:
        """Steps that run only when another names them: a fallback, a compensation or an approval's timeout."""
        found: set[str] = set()
        for step in self.steps:
            if step.on_failure is not None:
                found.update(x for x in (step.on_failure.fallback, step.on_failure.compensate) if x)
            if step.approval is not None and step.approval.on_timeout:
                found.add(step.approval.on_timeout)
        return found
