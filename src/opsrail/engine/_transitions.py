"""Pure transitions: ``advance(playbook, run, signal, now) -> commands``.

No I/O, no clock reads: the runner passes ``now`` and applies the commands (execute an operation, open a
task) after it has committed the new state. Step semantics:

* A step becomes due when every step it ``needs`` is settled. A need is *met* when it succeeded, failed
  with ``on_failure: continue``, or failed and its fallback (or on_timeout handler) succeeded. If a need
  was skipped, the step is skipped too (skipped branches propagate). ``when`` false skips the step.
* Retries wait ``retry.initial`` doubled per attempt (``exponential``) up to ``retry.max``; a step's
  ``timeout`` fails an attempt that runs too long; ``done_when`` false fails an attempt that answered.
* A step that fails for good runs its fallback (the run goes on), or its compensation (then the run fails),
  or continues, or fails the run.
* Handler steps (fallbacks, compensations, on_timeout targets) run only when activated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from opsrail.engine._calendars import CalendarRegistry
from opsrail.engine._scope import render_scoped
from opsrail.engine._state import RunState, StepState
from opsrail.model import NotFound
from opsrail.playbooks import Expression, ExpressionError, Playbook, Step, render


@dataclass(frozen=True, slots=True)
class Execute:
    """Run the step's operation (action, decide or notify) once; its result comes back as ``Completed``."""

    run_id: str
    step_id: str
    attempt: int
    kind: str
    operation: str
    params: dict[str, Any]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class OpenTask:
    run_id: str
    step_id: str
    roles: tuple[str, ...]
    count: int
    due_at: datetime | None
    title: str
    context: dict[str, Any]
    kind: str = "approval"
    require: tuple[str, ...] = ()
    escalate_at: datetime | None = None
    escalate_to: tuple[str, ...] = ()
    requested_by: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewNeeded:
    """A ``decide`` step's answer that a person must confirm before the run acts on it.

    The decision layer returns it instead of a plain output when a decision is below its confidence threshold
    (``kind="review"``) or its tier asks for approval (``kind="approval"``). The step waits with
    ``recommendation`` as its provisional output; the task's decision settles it: approved keeps the
    recommendation, a reviewer's ``value`` replaces it, a rejection without a value fails the step.
    """

    recommendation: dict[str, Any]
    roles: tuple[str, ...]
    count: int
    title: str
    context: dict[str, Any]
    kind: str = "review"
    due_in: timedelta | None = None


@dataclass(frozen=True, slots=True)
class CloseTasks:
    run_id: str
    step_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Log:
    """One entry of the event log: case = run, activity, step, time, attributes."""

    run_id: str
    step_id: str | None
    activity: str
    at: datetime
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Escalate:
    """An SLA near-breach (level 1) or breach (level 2): published as a canonical escalation event."""

    run_id: str
    step_id: str
    level: int
    reason: str
    at: datetime
    due_at: datetime
    playbook_id: str


Command = Execute | OpenTask | CloseTasks | Log | Escalate


# -- signals ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class Completed:
    step_id: str
    attempt: int
    ok: bool
    result: Any = None
    error: str | None = None
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class TimerFired:
    step_id: str


@dataclass(frozen=True, slots=True)
class EventArrived:
    step_id: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TaskDecided:
    step_id: str
    approved: bool
    by: tuple[str, ...]
    comment: str | None = None
    value: dict[str, Any] | None = None
    """A reviewer's own answer for a decision under review (replaces the recommendation)."""


@dataclass(frozen=True, slots=True)
class SlaCheck:
    step_id: str


@dataclass(frozen=True, slots=True)
class ChildFinished:
    """The run a `call` step started has ended; its steps' outputs become the call step's output."""

    step_id: str
    succeeded: bool
    output: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Migrated:
    """The run now follows another version of its playbook; steps whose needs are now met may start."""

    from_version: int
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class Control:
    action: Literal["cancel", "pause", "resume", "retry_step"]
    step_id: str | None = None
    actor: str | None = None


Signal = Start | Completed | TimerFired | EventArrived | TaskDecided | Control | SlaCheck | Migrated | ChildFinished


class TransitionError(Exception):
    """A signal that does not fit the run's state (stale or unknown); the runner logs and drops it."""


_DEFAULT_CALENDARS = CalendarRegistry()


def initial_state(playbook: Playbook, run_id: str, run_input: dict[str, Any], now: datetime) -> RunState:
    handlers = handler_ids(playbook)
    steps = {s.id: StepState(id=s.id, handler=s.id in handlers) for s in playbook.steps}
    return RunState(
        id=run_id,
        playbook_id=playbook.id,
        version=playbook.version,
        status="running",
        input=run_input,
        steps=steps,
        created_at=now,
        changed=True,
    )


def handler_ids(playbook: Playbook) -> set[str]:
    return playbook.handler_ids()


def advance(
    playbook: Playbook,
    run: RunState,
    signal: Signal,
    now: datetime,
    calendars: CalendarRegistry | None = None,
) -> list[Command]:
    """Apply one signal to a run (in place) and return what must happen next."""
    machine = _Machine(playbook, run, now, calendars or _DEFAULT_CALENDARS)
    machine.apply(signal)
    machine.settle()
    return machine.commands


class _Machine:
    def __init__(self, playbook: Playbook, run: RunState, now: datetime, calendars: CalendarRegistry) -> None:
        self.playbook = playbook
        self.run = run
        self.now = now
        self.calendars = calendars
        self.commands: list[Command] = []

    # -- helpers ---------------------------------------------------------------------------------------

    def log(self, step_id: str | None, activity: str, **attributes: Any) -> None:
        self.commands.append(Log(self.run.id, step_id, activity, self.now, attributes))

    def set(self, state: StepState, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(state, key, value)
        state.changed = True
        if state.terminal and state.sla_state in ("running", "near_breach"):
            # Finished (or ended) before its SLA target: the clock stops and the outcome is recorded.
            state.sla_state = "met"
            self.log(state.id, "sla.met")

    def context(self, **extra: Any) -> dict[str, Any]:
        view = self.run.view()
        view.update(extra)
        view.setdefault("event", {})
        view.setdefault("result", {})
        return view

    # -- signals ---------------------------------------------------------------------------------------

    def apply(self, signal: Signal) -> None:
        run = self.run
        if isinstance(signal, Start):
            self.log(None, "run.started", playbook=run.playbook_id, version=run.version)
            return
        if isinstance(signal, Control):
            self.control(signal)
            return
        if isinstance(signal, Migrated):
            self.log(None, "run.migrated", from_version=signal.from_version, to_version=run.version, actor=signal.actor)
            return
        if run.terminal:
            raise TransitionError(f"run {run.id} is {run.status}")
        state = run.steps.get(signal.step_id)
        if state is None:
            raise TransitionError(f"run {run.id} has no step {signal.step_id!r}")
        step = self.playbook.step(signal.step_id)
        if isinstance(signal, Completed):
            if state.status != "running" or state.attempt != signal.attempt:
                raise TransitionError(f"stale result for {state.id} attempt {signal.attempt}")
            self.completed(step, state, signal)
        elif isinstance(signal, TimerFired):
            self.timer(step, state)
        elif isinstance(signal, SlaCheck):
            self.sla_check(step, state)
        elif isinstance(signal, ChildFinished):
            if state.status != "waiting" or state.waiting_for != "child":
                raise TransitionError(f"step {state.id} is not waiting for a child run")
            if signal.succeeded:
                self.succeed(step, state, signal.output)
            else:
                self.fail(step, state, f"the called playbook failed: {signal.error}", retryable=False)
        elif isinstance(signal, EventArrived):
            if state.status != "waiting" or state.waiting_for != "event":
                raise TransitionError(f"step {state.id} is not waiting for an event")
            self.succeed(step, state, signal.event)
        elif isinstance(signal, TaskDecided):
            if state.status != "waiting" or state.waiting_for not in ("approval", "review"):
                raise TransitionError(f"step {state.id} is not waiting for an approval")
            self.commands.append(CloseTasks(run.id, step.id, "decided"))
            if state.waiting_for == "review":
                self.reviewed(step, state, signal)
            elif signal.approved:
                self.succeed(
                    step,
                    state,
                    {"approved": True, "by": list(signal.by), "comment": signal.comment},
                    actor=", ".join(signal.by),
                )
            else:
                self.fail(
                    step,
                    state,
                    f"rejected by {', '.join(signal.by)}: {signal.comment or 'no reason'}",
                    retryable=False,
                    actor=", ".join(signal.by),
                )

    def control(self, signal: Control) -> None:
        run = self.run
        if signal.action == "cancel":
            if run.terminal:
                raise TransitionError(f"run {run.id} is already {run.status}")
            for state in run.steps.values():
                if not state.terminal:
                    self.set(state, status="cancelled", due_at=None, finished_at=self.now)
                    self.commands.append(CloseTasks(run.id, state.id, "cancelled"))
            self.finish("cancelled", f"cancelled by {signal.actor or 'an operator'}")
        elif signal.action == "pause":
            if run.status != "running":
                raise TransitionError(f"run {run.id} is {run.status}, not running")
            run.status = "paused"
            run.changed = True
            self.log(None, "run.paused", actor=signal.actor)
        elif signal.action == "resume":
            if run.status != "paused":
                raise TransitionError(f"run {run.id} is {run.status}, not paused")
            run.status = "running"
            run.changed = True
            self.log(None, "run.resumed", actor=signal.actor)
        elif signal.action == "retry_step":
            failed = run.steps.get(signal.step_id or "")
            if failed is None:
                failures = sorted(s.id for s in run.steps.values() if s.status == "failed")
                raise TransitionError(
                    f"run {run.id} has no step {signal.step_id!r}; "
                    + (f"its failed steps: {', '.join(failures)}" if failures else "none of its steps has failed")
                )
            if failed.status != "failed":
                raise TransitionError(
                    f"step {signal.step_id!r} is {failed.status}, not failed; only a failed step can be retried"
                )
            state = failed
            if run.status == "failed":
                run.status = "running"
                run.error = None
                run.finished_at = None
                run.changed = True
            self.set(state, status="ready", error=None, due_at=None, waiting_for=None, finished_at=None)
            self.log(state.id, "step.retried", actor=signal.actor)

    def sla_check(self, step: Step, state: StepState) -> None:
        if state.sla_due_at is None or state.sla_warn_at is None or state.terminal:
            raise TransitionError(f"step {state.id} has no running SLA clock")
        if state.sla_state == "running" and self.now >= state.sla_warn_at and self.now < state.sla_due_at:
            self.set(state, sla_state="near_breach")
            self.escalate(state, 1, f"step {state.id} is near its SLA target")
        elif state.sla_state in ("running", "near_breach") and self.now >= state.sla_due_at:
            self.set(state, sla_state="breached")
            self.escalate(state, 2, f"step {state.id} breached its SLA target")
        else:
            raise TransitionError(f"no SLA threshold due for {state.id}")

    def escalate(self, state: StepState, level: int, reason: str) -> None:
        assert state.sla_due_at is not None
        self.commands.append(
            Escalate(self.run.id, state.id, level, reason, self.now, state.sla_due_at, self.playbook.id)
        )
        self.log(state.id, "sla.breached" if level == 2 else "sla.near_breach", due_at=state.sla_due_at.isoformat())

    def completed(self, step: Step, state: StepState, signal: Completed) -> None:
        if signal.ok and step.call is not None:
            # The child run exists now; the step waits for it to end.
            self.set(state, status="waiting", waiting_for="child", output=signal.result)
            self.log(state.id, "step.called", child=(signal.result or {}).get("child_run_id"))
            return
        if not signal.ok:
            self.fail(step, state, signal.error or "failed", retryable=signal.retryable)
            return
        result = signal.result
        if isinstance(result, ReviewNeeded):
            self.review(step, state, result)
            return
        if step.done_when:
            try:
                achieved = Expression(step.done_when).evaluate_bool(self.context(result=result))
            except ExpressionError as exc:
                self.fail(step, state, f"done_when could not be evaluated: {exc}", retryable=False)
                return
            if not achieved:
                self.fail(step, state, "answered, but done_when is false: the aim was not achieved", retryable=True)
                return
        self.succeed(step, state, result)

    def review(self, step: Step, state: StepState, need: ReviewNeeded) -> None:
        due = self.now + need.due_in if need.due_in else None
        self.set(state, status="waiting", waiting_for="review", output=need.recommendation, due_at=None)
        self.commands.append(
            OpenTask(
                self.run.id,
                step.id,
                need.roles,
                need.count,
                due,
                need.title,
                {"run": self.run.view()["run"], "step": step.id, **need.context},
                need.kind,
            )
        )
        self.log(
            state.id, "task.opened", kind=need.kind, roles=list(need.roles), due_at=due.isoformat() if due else None
        )

    def reviewed(self, step: Step, state: StepState, signal: TaskDecided) -> None:
        by = list(signal.by)
        if signal.value is not None:
            self.log(state.id, "decision.overridden", by=by, comment=signal.comment)
            self.succeed(step, state, signal.value, actor=", ".join(by))
        elif signal.approved:
            self.log(state.id, "decision.accepted", by=by)
            self.succeed(step, state, state.output, actor=", ".join(by))
        else:
            self.fail(
                step,
                state,
                f"decision rejected by {', '.join(by)}: {signal.comment or 'no reason'}",
                retryable=False,
                actor=", ".join(by),
            )

    def timer(self, step: Step, state: StepState) -> None:
        if state.due_at is None or state.due_at > self.now:
            raise TransitionError(f"no timer due for {state.id}")
        if state.status == "waiting" and state.waiting_for == "retry":
            self.set(state, status="ready", due_at=None, waiting_for=None)
            self.log(state.id, "step.retry_due", attempt=state.attempt + 1)
        elif state.status == "waiting" and state.waiting_for == "timer":
            self.succeed(step, state, {"waited_until": self.now.isoformat()})
        elif state.status == "waiting" and state.waiting_for == "event":
            self.fail(step, state, "timed out waiting for the event", retryable=False)
        elif state.status == "waiting" and state.waiting_for == "approval":
            self.commands.append(CloseTasks(self.run.id, step.id, "timed out"))
            assert step.approval is not None
            self.set(state, status="failed", error="nobody approved in time", due_at=None, finished_at=self.now)
            self.log(state.id, "step.timed_out")
            if step.approval.on_timeout:
                self.activate(step.approval.on_timeout, state)
            else:
                self.finish("failed", f"step {state.id}: nobody approved in time")
        else:
            raise TransitionError(f"no timer due for {state.id} ({state.status})")

    # -- outcomes --------------------------------------------------------------------------------------

    def succeed(self, step: Step, state: StepState, result: Any, *, actor: str | None = None) -> None:
        """The step succeeded with ``result``; ``actor``: the people who decided its task, if it had one."""
        output = result
        if step.outputs:
            context = self.context(result=result)
            try:
                output = {name: Expression(expr).evaluate(context) for name, expr in step.outputs.items()}
            except ExpressionError as exc:
                self.fail(step, state, f"outputs could not be evaluated: {exc}", retryable=False)
                return
        self.set(
            state, status="succeeded", output=output, error=None, due_at=None, waiting_for=None, finished_at=self.now
        )
        self.log(state.id, "step.succeeded", attempt=state.attempt, **({"actor": actor} if actor else {}))
        if state.activated_by:
            origin = self.run.steps[state.activated_by]
            origin_step = self.playbook.step(origin.id)
            compensating = origin_step.on_failure is not None and origin_step.on_failure.compensate == state.id
            if compensating:
                self.finish("failed", f"step {origin.id} failed: {origin.error}; compensated by {state.id}")
            else:
                self.set(origin, recovered_by=state.id)

    def fail(self, step: Step, state: StepState, error: str, *, retryable: bool, actor: str | None = None) -> None:
        attempts = step.retry.attempts if step.retry else 1
        if retryable and state.attempt < attempts and step.kind in ("action", "decide", "notify"):
            assert step.retry is not None
            delay = backoff(step.retry.backoff, step.retry.initial, step.retry.max, state.attempt)
            self.set(state, status="waiting", waiting_for="retry", due_at=self.now + delay, error=error)
            self.log(
                state.id, "step.attempt_failed", attempt=state.attempt, error=error, retry_in=delay.total_seconds()
            )
            return
        self.set(state, status="failed", error=error, due_at=None, waiting_for=None, finished_at=self.now)
        self.log(state.id, "step.failed", attempt=state.attempt, error=error, **({"actor": actor} if actor else {}))
        if state.activated_by:
            # A handler that fails ends the run: there is nothing left to fall back on.
            self.finish("failed", f"handler {state.id} failed: {error}")
            return
        policy = step.on_failure
        if policy is not None and policy.fallback:
            self.activate(policy.fallback, state)
        elif policy is not None and policy.compensate:
            self.activate(policy.compensate, state)
        elif policy is not None and policy.action == "continue":
            self.log(state.id, "step.continued")
        else:
            self.finish("failed", f"step {state.id} failed: {error}")

    def activate(self, handler_id: str, origin: StepState) -> None:
        handler = self.run.steps[handler_id]
        if handler.status != "pending":
            raise TransitionError(f"handler {handler_id} was already used")
        self.set(handler, activated_by=origin.id)
        self.log(handler_id, "step.activated", by=origin.id)
        self.start(self.playbook.step(handler_id), handler)

    def finish(self, status: Literal["succeeded", "failed", "cancelled"], error: str | None = None) -> None:
        run = self.run
        if run.terminal:
            return
        for state in run.steps.values():
            if not state.terminal:
                if state.status in ("waiting", "running", "ready"):
                    self.commands.append(CloseTasks(run.id, state.id, status))
                self.set(
                    state, status="cancelled" if status != "succeeded" else "skipped", due_at=None, finished_at=self.now
                )
        run.status = status
        run.error = error
        run.finished_at = self.now
        run.changed = True
        self.log(None, f"run.{status}", error=error)

    # -- scheduling ------------------------------------------------------------------------------------

    def settle(self) -> None:
        """Start every step whose needs are settled, until nothing changes; then see if the run is done."""
        run = self.run
        if run.terminal or run.status == "paused":
            return
        progressed = True
        while progressed and not run.terminal:
            progressed = False
            for step in self.playbook.steps:
                state = run.steps[step.id]
                if state.status != "pending" or state.handler:
                    continue
                verdict = self.needs_verdict(step)
                if verdict == "wait":
                    continue
                progressed = True
                if verdict == "skip":
                    self.set(state, status="skipped", finished_at=self.now)
                    self.log(state.id, "step.skipped", reason="a need was skipped")
                else:
                    self.start(step, state)
        if not run.terminal and all(s.terminal or (s.handler and s.status == "pending") for s in run.steps.values()):
            unrecovered = [
                s
                for s in run.steps.values()
                if s.status == "failed" and not s.recovered_by and not self.continues(s.id)
            ]
            for state in run.steps.values():
                if state.handler and state.status == "pending":
                    self.set(state, status="skipped", finished_at=self.now)
            if unrecovered:
                self.finish("failed", f"step {unrecovered[0].id} failed: {unrecovered[0].error}")
            else:
                self.finish("succeeded")

    def continues(self, step_id: str) -> bool:
        policy = self.playbook.step(step_id).on_failure
        return policy is not None and policy.action == "continue" and not policy.fallback and not policy.compensate

    def needs_verdict(self, step: Step) -> Literal["wait", "skip", "go"]:
        verdict: Literal["wait", "skip", "go"] = "go"
        for need in step.needs:
            state = self.run.steps[need]
            if state.status == "succeeded":
                continue
            if state.status == "failed" and (self.continues(need) or self.recovered(state)):
                continue
            if state.status in ("skipped", "cancelled"):
                verdict = "skip"
                continue
            return "wait"
        return verdict

    def recovered(self, state: StepState) -> bool:
        return state.recovered_by is not None and self.run.steps[state.recovered_by].status == "succeeded"

    def start(self, step: Step, state: StepState) -> None:
        if step.when:
            try:
                go = Expression(step.when).evaluate_bool(self.context())
            except ExpressionError as exc:
                self.fail(step, state, f"when could not be evaluated: {exc}", retryable=False)
                return
            if not go:
                self.set(state, status="skipped", finished_at=self.now)
                self.log(state.id, "step.skipped", reason="when is false")
                return
        self.set(state, started_at=state.started_at or self.now)
        if step.sla is not None and state.sla_due_at is None:
            try:
                calendar = self.calendars.get(step.sla.calendar)
            except NotFound as exc:
                self.fail(step, state, exc.detail, retryable=False)
                return
            self.set(
                state,
                sla_state="running",
                sla_due_at=calendar.add(self.now, step.sla.target),
                sla_warn_at=calendar.add(self.now, step.sla.target * step.sla.warn_at),
            )
            self.log(state.id, "sla.started", due_at=state.sla_due_at.isoformat() if state.sla_due_at else None)
        if step.approval is not None:
            approval = step.approval
            roles, count, require, matched = list(approval.roles), approval.count, list(approval.require), None
            try:
                for index, rule in enumerate(approval.rules):
                    if rule.when is None or Expression(rule.when).evaluate_bool(self.context()):
                        matched = index
                        if rule.tier == "autonomous":
                            self.log(state.id, "approval.autonomous", rule=index)
                            self.succeed(step, state, {"approved": True, "tier": "autonomous", "rule": index})
                            return
                        roles, count, require = rule.roles or roles, rule.count or count, rule.require
                        break
            except ExpressionError as exc:
                self.fail(step, state, f"an approval rule could not be evaluated: {exc}", retryable=False)
                return
            try:
                title = str(render(approval.title, self.context())) if approval.title else None
            except ExpressionError as exc:
                self.fail(step, state, f"the approval's title could not be rendered: {exc}", retryable=False)
                return
            title = title or f"Approve {step.id} in {self.playbook.id}"
            due = self.now + approval.timeout if approval.timeout else None
            self.set(state, status="waiting", waiting_for="approval", due_at=due)
            requested_by = self.run.input.get("requested_by")
            self.commands.append(
                OpenTask(
                    self.run.id,
                    step.id,
                    tuple(roles),
                    count,
                    due,
                    title,
                    {"run": self.run.view()["run"], "step": step.id, "rule": matched},
                    require=tuple(require),
                    escalate_at=self.now + approval.escalate_after if approval.escalate_after else None,
                    escalate_to=tuple(approval.escalate_to),
                    requested_by=requested_by if isinstance(requested_by, str) else None,
                )
            )
            self.log(
                state.id,
                "task.opened",
                roles=roles,
                count=count,
                require=require,
                rule=matched,
                due_at=due.isoformat() if due else None,
            )
        elif step.wait is not None:
            if step.wait.duration is not None:
                self.set(state, status="waiting", waiting_for="timer", due_at=self.now + step.wait.duration)
            else:
                due = self.now + step.wait.timeout if step.wait.timeout else None
                self.set(state, status="waiting", waiting_for="event", due_at=due)
            self.log(state.id, "step.waiting", until=state.due_at.isoformat() if state.due_at else None)
        else:
            self.set(state, status="ready")
            self.log(state.id, "step.ready")


def migrate_state(run: RunState, target: Playbook, mapping: dict[str, str]) -> tuple[RunState | None, str | None]:
    """The run moved onto ``target``: each new step takes the state of the old step mapped to it (same id unless
    ``mapping`` says otherwise). Returns (new state, None), or (None, the reason the run cannot move)."""
    if run.terminal:
        return None, f"run is {run.status}"
    new_ids = {step.id for step in target.steps}
    handlers = handler_ids(target)
    steps: dict[str, StepState] = {s.id: StepState(id=s.id, handler=s.id in handlers) for s in target.steps}
    for old in run.steps.values():
        new_id = mapping.get(old.id, old.id)
        if new_id not in new_ids:
            if old.status in ("ready", "running", "waiting"):
                return None, f"step {old.id} is {old.status} and has no counterpart in version {target.version}"
            continue  # finished history or a step that never started: nothing in flight is lost
        if old.status == "running":
            return None, f"step {old.id} is running an operation; migrate when it has finished"
        moved = steps[new_id]
        for attribute in (
            "status",
            "attempt",
            "due_at",
            "waiting_for",
            "output",
            "error",
            "started_at",
            "finished_at",
            "activated_by",
            "recovered_by",
            "sla_warn_at",
            "sla_due_at",
            "sla_state",
        ):
            setattr(moved, attribute, getattr(old, attribute))
        if old.status == "waiting":
            kind = target.step(new_id).kind
            expected = {"approval": "approval", "review": "decide", "event": "wait", "timer": "wait", "retry": kind}[
                old.waiting_for or "retry"
            ]
            if kind != expected:
                return (
                    None,
                    f"step {old.id} waits for {old.waiting_for}; {new_id} in version {target.version} is a {kind}",
                )
    for state in steps.values():
        state.changed = True
        for attribute in ("activated_by", "recovered_by"):
            reference = getattr(state, attribute)
            if reference is not None:
                renamed = mapping.get(reference, reference)
                if renamed not in new_ids:
                    return None, f"step {state.id} refers to {reference}, which version {target.version} lacks"
                setattr(state, attribute, renamed)
    migrated = RunState(
        id=run.id,
        playbook_id=run.playbook_id,
        version=target.version,
        status=run.status,
        input=run.input,
        steps=steps,
        created_at=run.created_at,
        finished_at=run.finished_at,
        error=run.error,
        changed=True,
    )
    return migrated, None


def backoff(kind: str, initial: timedelta, maximum: timedelta, attempt: int) -> timedelta:
    """The pause before the next attempt, after ``attempt`` attempts so far (1-based)."""
    if kind == "fixed":
        return min(initial, maximum)
    delay: timedelta = initial * (2 ** max(0, attempt - 1))
    return min(delay, maximum)


def execute_command(playbook: Playbook, run: RunState, step_id: str) -> Execute:
    """The operation call for a claimed step; templates are rendered against the run as it is now."""
    step = playbook.step(step_id)
    state = run.steps[step_id]
    if step.action is not None:
        kind, operation, params = "action", step.action, render_scoped(step.with_, run)
    elif step.decide is not None:
        kind, operation, params = "decide", step.decide, render_scoped(step.with_, run)
    elif step.notify is not None:
        kind, operation = "notify", step.notify.channel
        params = {
            "to": step.notify.to,
            "message": render_scoped(step.notify.message, run),
            **render_scoped(step.with_, run),
        }
    elif step.call is not None:
        kind, operation = "call", step.call.playbook
        params = {
            "playbook": step.call.playbook,
            "version": step.call.version,
            "input": render_scoped(step.call.input, run),
        }
    else:
        raise TransitionError(f"step {step_id} ({step.kind}) has no operation to execute")
    return Execute(run.id, step_id, state.attempt, kind, operation, params, f"{run.id}:{step_id}")
