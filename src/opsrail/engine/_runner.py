"""The runner: claims due work from the store, calls operations concurrently, applies the results.

Every state change goes through ``advance`` and is saved with the commands it produced in one transaction
(optimistic: a run saved by someone else since it was loaded is reloaded and the signal applied again).
Operations run after the claim is committed and carry an idempotency key that is the same for every attempt
of a step, so an effect repeated after a crash can be recognised by the system it lands in. What an operation
writes to Opsrail's own database while it runs (a ledger change, a decision record, audit entries) is held and
committed in the transaction that saves the batch's results (see ``_held``): one commit for the batch, and a
step's effects never land without its result or the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from opsrail.engine._calendars import CalendarRegistry
from opsrail.engine._held import holding_writes
from opsrail.engine._operations import CallContext, OperationFailed, Operations
from opsrail.engine._ports import Claimed, RunStore
from opsrail.engine._state import RunState
from opsrail.engine._transitions import (
    ChildFinished,
    Command,
    Completed,
    EventArrived,
    Signal,
    SlaCheck,
    Start,
    TimerFired,
    TransitionError,
    advance,
    execute_command,
    initial_state,
)
from opsrail.model import Clock, Conflict, IdFactory, NotFound
from opsrail.playbooks import Expression, ExpressionError, Playbook, Trigger, context_for, render

_T = TypeVar("_T")
log = logging.getLogger("opsrail.engine")

ALERT_SOURCE = "opsrail/governance"
"""The source of alert events (see ``opsrail.services``' alerts): a failing trigger of theirs is never alerted."""

_CONFLICT_RETRIES = 20


class Engine:
    def __init__(
        self,
        store: RunStore,
        operations: Operations,
        clock: Clock,
        ids: IdFactory,
        *,
        owner: str,
        lease_seconds: float = 30.0,
        concurrency: int = 256,
        calendars: CalendarRegistry | None = None,
        store_in_thread: bool = False,
    ) -> None:
        self.calendars = calendars or CalendarRegistry()
        # A store across the network (PostgreSQL) blocks for a round trip per statement; the work loop then runs
        # its store calls in a thread, so the event loop it shares with the API keeps serving requests meanwhile.
        # SQLite answers in microseconds, which a thread hand-off would cost more than it saves.
        self.store_in_thread = store_in_thread
        self.store = store
        self.operations = operations
        self.clock = clock
        self.ids = ids
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.concurrency = concurrency
        # Housekeeping run at most once a second from the timer loop (escalating unanswered approvals, say);
        # each returns how much it did. A failure is logged and does not stop the timers.
        self.periodic: list[Callable[[], int]] = []
        self.alerts: list[Callable[[str, str, dict[str, Any]], None]] = []
        """Told ``(kind, subject, details)`` when something needs people's attention: a trigger that cannot be
        evaluated for an event (set by the wiring; the alert becomes an escalation event)."""
        self._alerted: set[tuple[str, int, str]] = set()
        self._periodic_at = 0.0
        self._housekept = float("-inf")
        self._wake: asyncio.Event | None = None
        self._in_flight: list[Claimed] = []
        # Runs this worker saved last, with the state version it saved. A claim reports the run's current
        # version, so a cached run is used only while nobody else has saved it since.
        self._cache: dict[str, tuple[RunState, int]] = {}

    def _remember(self, run: RunState, state_version: int) -> None:
        for step in run.steps.values():
            step.changed = False
        run.changed = False
        if run.terminal:
            self._cache.pop(run.id, None)
            return
        if len(self._cache) >= 10_000:
            self._cache.clear()
        self._cache[run.id] = (run, state_version)

    # -- runs ------------------------------------------------------------------------------------------

    def start_run(
        self,
        playbook_id: str,
        run_input: dict[str, Any],
        *,
        version: int | None = None,
        trigger: tuple[str, str] | None = None,
    ) -> str | None:
        """Start a run of the given version, or of the active one (or its canary, for the canary's share).

        None if this trigger already started a run of the playbook.
        """
        run_id = self.ids.new("run")
        version = version or self.pick_version(playbook_id, run_id)
        playbook = self.store.playbook(playbook_id, version)
        now = self.clock.now()
        run = initial_state(playbook, run_id, run_input, now)
        commands = advance(playbook, run, Start(), now, self.calendars)
        return run.id if self.store.create_run(run, commands, trigger) else None

    def start_runs(
        self, playbook_id: str, inputs: Sequence[dict[str, Any]], *, version: int | None = None
    ) -> list[str]:
        """Start many runs of one playbook in one transaction (each picks its version like ``start_run``)."""
        now = self.clock.now()
        started = []
        rollout = None if version else self.store.rollout(playbook_id)
        for run_input in inputs:
            run_id = self.ids.new("run")
            playbook = self.store.playbook(playbook_id, version or _pick(rollout, run_id))
            run = initial_state(playbook, run_id, run_input, now)
            started.append((run, advance(playbook, run, Start(), now, self.calendars)))
        self.store.create_runs(started)
        for run, _ in started:
            self._remember(run, 1)
        return [run.id for run, _ in started]

    def pick_version(self, playbook_id: str, run_id: str) -> int:
        """The active version, or the canary for a stable share of run ids."""
        return _pick(self.store.rollout(playbook_id), run_id)

    def signal(self, run_id: str, signal: Signal) -> RunState:
        """Apply a signal to a run and save it; raises Conflict when the signal does not fit the run."""
        for _ in range(_CONFLICT_RETRIES):
            run, state_version = self.store.load_run(run_id)
            playbook = self.store.playbook(run.playbook_id, run.version)
            try:
                commands = advance(playbook, run, signal, self.clock.now(), self.calendars)
            except TransitionError as exc:
                raise Conflict(str(exc)) from None
            if self.store.save_run(run, state_version, commands):
                self._cache.pop(run_id, None)
                return run
        raise Conflict(f"run {run_id} is changing too fast; try again")

    # -- the work loop ---------------------------------------------------------------------------------

    async def tick(self, *, housekeeping: bool = True) -> int:
        """Do everything that is due now once; returns how much was done (0 means idle).

        Without ``housekeeping`` only events and ready steps are handled: timers, SLA checks and ended child runs
        are left for a later tick.
        """
        done = 0
        if housekeeping:
            self._housekept = time.monotonic()
            done += await self._blocking(self.fire_timers)
            done += await self._blocking(self.finish_calls)
        done += await self._blocking(self.consume_events)
        done += await self.execute_ready()
        return done

    async def _blocking(self, call: Callable[..., _T], *args: Any) -> _T:
        """Run a call that waits on the store: in a thread when ``store_in_thread``, else right here."""
        if self.store_in_thread:
            return await asyncio.to_thread(call, *args)
        return call(*args)

    async def run_forever(self, stop: asyncio.Event, idle_seconds: float = 0.05) -> None:
        """Tick until ``stop`` is set, pausing ``idle_seconds`` after a tick that found nothing to do.

        While busy, ticks follow each other at once; the queries for timers, SLA checks and ended child runs then
        run at most once per ``idle_seconds``, as often as an idle worker runs them, instead of on every tick.
        """
        wake = self._wake = asyncio.Event()
        while not stop.is_set():
            wake.clear()  # a wake-up during the tick is kept: the pause below then ends at once
            try:
                done = await self.tick(housekeeping=time.monotonic() - self._housekept >= idle_seconds)
            except Exception:  # a bad batch must not end the worker; it is logged and retried
                log.exception("engine tick failed")
                done = 0
            if not done:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), idle_seconds)

    def wake(self) -> None:
        """Say there is new work (events stored by this process): an idle worker ticks now, not at its pause's end.

        Call it from the event loop the worker runs on. Workers in other processes find the work at their next tick.
        """
        if self._wake is not None:
            self._wake.set()

    def fire_timers(self) -> int:
        fired = 0
        if self.periodic and time.monotonic() - self._periodic_at >= 1.0:
            self._periodic_at = time.monotonic()
            for hook in self.periodic:
                try:
                    fired += hook()
                except Exception:
                    log.exception("periodic engine hook failed")
        for run_id, step_id in self.store.sla_due(self.clock.now(), 500):
            try:
                self.signal(run_id, SlaCheck(step_id))
                fired += 1
            except (Conflict, NotFound) as exc:
                log.debug("SLA check dropped", extra={"run_id": run_id, "step_id": step_id, "reason": str(exc)})
        for run_id, step_id in self.store.due(self.clock.now(), 500):
            try:
                self.signal(run_id, TimerFired(step_id))
                fired += 1
            except (Conflict, NotFound) as exc:
                log.debug("timer dropped", extra={"run_id": run_id, "step_id": step_id, "reason": str(exc)})
        return fired

    async def execute_ready(self) -> int:
        """Claim a batch of ready steps, run their operations concurrently, and save all results at once."""
        claimed = await self._blocking(
            self.store.claim, self.owner, self.clock.now(), self.lease_seconds, self.concurrency
        )
        if not claimed:
            return 0
        loaded: dict[str, tuple[RunState, int]] = {}
        for item in claimed:
            hit = self._cache.get(item.run_id)
            if hit is not None and hit[1] == item.state_version:
                loaded[item.run_id] = hit
                step = hit[0].steps.get(item.step_id)
                if step is not None:  # mirror what the claim wrote
                    step.status = "running"
                    step.attempt = item.attempt
        missing = [item.run_id for item in claimed if item.run_id not in loaded]
        if missing:
            loaded.update(await self._blocking(self.store.load_runs, missing))
        self._in_flight = claimed
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            executed = await asyncio.gather(*(self._execute_holding(c, loaded.get(c.run_id)) for c in claimed))
        finally:
            heartbeat.cancel()
            self._in_flight = []
        by_run: dict[str, list[Completed]] = {}
        held: dict[tuple[str, str], list[object]] = {}
        for item, (outcome, writes) in zip(claimed, executed, strict=True):
            by_run.setdefault(item.run_id, []).append(outcome)
            if writes:
                held[(item.run_id, item.step_id)] = writes
        changes = []
        now = self.clock.now()
        for run_id, signals in by_run.items():
            if run_id not in loaded:
                continue
            run, state_version = loaded[run_id]
            playbook = self.store.playbook(run.playbook_id, run.version)
            commands: list[Command] = []
            for signal in signals:
                try:
                    commands += advance(playbook, run, signal, now, self.calendars)
                except TransitionError as exc:
                    log.info("result dropped", extra={"run_id": run_id, "step_id": signal.step_id, "reason": str(exc)})
            changes.append((run, state_version, commands))
        # A run changed by someone else meanwhile (a task decided, a cancel) gets its results one by one; so does
        # a run with a step whose held writes were refused, after that step is executed again without holding.
        if held:
            conflicted, refused = await self._blocking(self.store.save_batch, changes, held)
        else:
            conflicted, refused = await self._blocking(self.store.save_runs, changes), set()
        for run, state_version, _ in changes:
            if run.id in conflicted:
                self._cache.pop(run.id, None)
            else:
                self._remember(run, state_version + 1)
        items = {(item.run_id, item.step_id): item for item in claimed}
        for run_id in conflicted:
            for signal in by_run[run_id]:
                if (run_id, signal.step_id) in refused:
                    signal = await self._execute_again(items[(run_id, signal.step_id)])
                try:
                    self.signal(run_id, signal)
                except Conflict as exc:
                    log.info("result dropped", extra={"run_id": run_id, "step_id": signal.step_id, "reason": str(exc)})
        return len(claimed)

    async def _execute_holding(
        self, item: Claimed, loaded: tuple[RunState, int] | None
    ) -> tuple[Completed, list[object]]:
        """Execute a step with its writes held; returns its outcome and what it wrote."""
        with holding_writes() as writes:
            outcome = await self._execute(item, loaded)
        return outcome, writes.close()

    async def _execute_again(self, item: Claimed) -> Completed:
        """Execute a step whose held writes were refused (and undone), on the run as it is now, writing as it goes:
        the operation meets whatever refused its writes (a record or key someone else took) and answers for it."""
        try:
            loaded = self.store.load_run(item.run_id)
        except NotFound:
            loaded = None
        return await self._execute(item, loaded, again=True)

    async def _execute(self, item: Claimed, loaded: tuple[RunState, int] | None, *, again: bool = False) -> Completed:
        try:
            if loaded is None:
                raise NotFound(f"run {item.run_id} is gone")
            run = loaded[0]
            playbook = self.store.playbook(run.playbook_id, run.version)
            command = execute_command(playbook, run, item.step_id)
            limit = playbook.step(item.step_id).timeout
        except (NotFound, TransitionError, ExpressionError) as exc:
            return Completed(item.step_id, item.attempt, ok=False, error=str(exc), retryable=False)
        if command.kind == "call":
            return self._start_child(item, command.params)
        step = playbook.step(item.step_id)
        final = item.attempt >= (step.retry.attempts if step.retry else 1)
        # Claiming counts attempts, so attempt 1 executed once is the first call ever made with this key.
        first = item.attempt == 1 and not again
        call = CallContext(item.run_id, item.step_id, item.attempt, command.idempotency_key, final, first)
        try:
            result = await asyncio.wait_for(
                self.operations.call(command.kind, command.operation, command.params, call),
                limit.total_seconds() if limit else None,
            )
        except TimeoutError:
            return Completed(item.step_id, item.attempt, ok=False, error=f"timed out after {limit}", retryable=True)
        except OperationFailed as exc:
            return Completed(item.step_id, item.attempt, ok=False, error=str(exc), retryable=exc.retryable)
        except Exception as exc:  # an operation's own bug: reported on the step, retried like any failure
            log.exception("operation raised", extra={"operation": command.operation})
            return Completed(item.step_id, item.attempt, ok=False, error=f"{type(exc).__name__}: {exc}")
        return Completed(item.step_id, item.attempt, ok=True, result=result)

    def _start_child(self, item: Claimed, params: dict[str, Any]) -> Completed:
        """Start the called playbook once: the child's id comes from the parent run and step, so a retry after a
        crash finds the child it already started instead of starting another."""
        child_id = "run_" + hashlib.sha256(f"{item.run_id}:{item.step_id}".encode()).hexdigest()[:24]
        try:
            if not self.store.run_exists(child_id):
                playbook_id = str(params["playbook"])
                version = params.get("version") or self.pick_version(playbook_id, child_id)
                playbook = self.store.playbook(playbook_id, int(version))
                now = self.clock.now()
                child_input = params.get("input") or {}
                run = initial_state(playbook, child_id, child_input if isinstance(child_input, dict) else {}, now)
                run.parent = (item.run_id, item.step_id)
                self.store.create_run(run, advance(playbook, run, Start(), now, self.calendars), None)
        except NotFound as exc:
            return Completed(item.step_id, item.attempt, ok=False, error=exc.detail, retryable=False)
        return Completed(item.step_id, item.attempt, ok=True, result={"child_run_id": child_id})

    def finish_calls(self) -> int:
        """Report ended child runs to the call steps waiting for them."""
        reported = 0
        for parent_id, step_id, child_id in self.store.children_finished(500):
            child, _ = self.store.load_run(child_id)
            output = {s.id: s.output for s in child.steps.values() if s.status == "succeeded"}
            signal = ChildFinished(step_id, child.status == "succeeded", output, child.error or child.status)
            try:
                self.signal(parent_id, signal)
                reported += 1
            except Conflict as exc:
                log.debug("child result dropped", extra={"run_id": parent_id, "reason": str(exc)})
        return reported

    async def _heartbeat(self) -> None:
        """Renew the leases of steps in flight, so slow operations are not taken over by another worker."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if self._in_flight:
                until = self.clock.now() + timedelta(seconds=self.lease_seconds)
                self.store.renew(self.owner, self._in_flight, until)

    # -- events: triggers and awaited events -----------------------------------------------------------

    def consume_events(self) -> int:
        """Start the runs a batch of events triggers and deliver the batch to steps waiting for an event.

        The batch's runs are stored with the cursor's move in one transaction, so a crash either starts them all
        and moves past the batch, or neither (and the batch is read again; triggers already used are skipped).
        """
        _, events = self.store.events_after("engine", 500)
        if not events:
            return 0
        playbooks = self.store.active_playbooks()
        waiting = self.store.waiting_for_event(10_000) if events else []
        rollouts: dict[str, tuple[int, int | None, int]] = {}
        started: list[tuple[RunState, list[Command], tuple[str, str]]] = []
        now = self.clock.now()
        for event in events:
            document = {"id": event.id, "source": event.source, "type": event.type, "data": event.data}
            for playbook in playbooks:
                trigger = playbook.trigger
                if trigger is None or event.type not in trigger.events:
                    continue
                try:
                    if trigger.when and not Expression(trigger.when).evaluate_bool({"event": document}):
                        continue
                except ExpressionError as exc:
                    self._trigger_failed(playbook, document, "when", exc)
                    continue
                try:
                    run_input = trigger_input(trigger, document)
                except ExpressionError as exc:
                    self._trigger_failed(playbook, document, "input", exc)
                    continue
                run_id = self.ids.new("run")
                if playbook.id not in rollouts:
                    rollouts[playbook.id] = self.store.rollout(playbook.id)
                version = self.store.playbook(playbook.id, _pick(rollouts[playbook.id], run_id))
                run = initial_state(version, run_id, run_input, now)
                started.append((run, advance(version, run, Start(), now, self.calendars), (event.source, event.id)))
            self._deliver(document, waiting)
        stored = self.store.start_triggered(started, ("engine", events[-1].seq))
        for run, _, _ in started:
            if run.id in stored:
                self._remember(run, 1)
        return len(events)

    def _trigger_failed(self, playbook: Playbook, event: dict[str, Any], part: str, error: ExpressionError) -> None:
        """An event matched a playbook's trigger types but its ``when`` or ``input`` could not be evaluated: no run
        starts. Logged each time; alerted once per playbook version and part in this process, and never for an
        alert's own event (a playbook triggered by escalations whose trigger fails would otherwise feed itself)."""
        log.warning(
            f"trigger {part} could not be evaluated",
            extra={"playbook": playbook.id, "version": playbook.version, "event": event["id"], "error": str(error)},
        )
        key = (playbook.id, playbook.version, part)
        if not self.alerts or key in self._alerted or event["source"] == ALERT_SOURCE:
            return
        self._alerted.add(key)
        details = {
            "reason": f"the trigger's {part} of {playbook.id} version {playbook.version} could not be evaluated for "
            f"event {event['id']} from {event['source']}: {error}; no run started",
            "event": event["id"],
            "event_source": event["source"],
            "part": part,
        }
        for alert in self.alerts:
            try:
                alert("playbook.trigger_failed", f"{playbook.id}@{playbook.version}", details)
            except Exception:  # an alert that cannot be raised must not stop the engine; it is logged
                log.exception("the trigger alert for %s could not be raised", playbook.id)

    def _deliver(self, document: dict[str, Any], waiting: Sequence[tuple[str, str]]) -> None:
        for run_id, step_id in waiting:
            try:
                run, _ = self.store.load_run(run_id)
            except NotFound:
                continue
            playbook = self.store.playbook(run.playbook_id, run.version)
            wait = playbook.step(step_id).wait
            if wait is None or wait.event != document["type"] or run.steps[step_id].status != "waiting":
                continue
            try:
                if wait.correlate and not Expression(wait.correlate).evaluate_bool({**run.view(), "event": document}):
                    continue
            except ExpressionError:
                continue
            try:
                self.signal(run_id, EventArrived(step_id, document))
            except Conflict:
                continue


def trigger_input(trigger: Trigger, event: dict[str, Any]) -> dict[str, Any]:
    """The input of a run ``trigger`` starts for ``event`` (a CloudEvent as a dict): the trigger's ``input``
    templates rendered over the event, else the event's data."""
    if trigger.input is not None:
        rendered: dict[str, Any] = render(trigger.input, context_for(event=event))
        return rendered
    data = event["data"]
    return data if isinstance(data, dict) else {"data": data}


def _pick(rollout: tuple[int, int | None, int] | None, run_id: str) -> int:
    assert rollout is not None
    active, canary, percent = rollout
    if canary is not None and zlib.crc32(run_id.encode()) % 100 < percent:
        return canary
    return active
