"""Running a simulation against a live server: the world's events over ``POST /v1/events`` at a steady rate, and
simulated people who poll their tasks (``GET /v1/tasks?mine=true``) and decide them after realistic delays.

Only HTTP: the runner never touches the database, so it exercises exactly what a real sender and real approvers
would. A task a person may not decide (403), one already decided (409) or one that is gone (404) is counted as
refused, never fatal; a token the server does not know, or a server that does not answer, ends the simulation with
an :class:`~opsrail.model.OpsrailError` that says what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from opsrail.model import Forbidden, OpsrailError, Unauthenticated, Unavailable
from opsrail.simulate._tickets import load_tickets
from opsrail.simulate._world import Behaviour, Drift, World, is_credit_task, task_segment

CLOUDEVENTS_JSON = "application/cloudevents+json"
MAX_ERROR_SAMPLES = 10
MAX_DECISIONS = 10_000
POLL_SECONDS = 1.0
TRANSPORT_FAILURES_FATAL = 25  # consecutive failures to reach the server before giving up


@dataclass(frozen=True, slots=True)
class Decision:
    """One task a simulated person decided."""

    task_id: str
    role: str
    by: str
    approved: bool
    comment: str
    delay_s: float
    credit: bool
    segment: dict[str, Any]


@dataclass(slots=True)
class Report:
    """What a simulation sent and decided; updated while it runs, so progress callbacks can read it."""

    seed: int
    rate: float
    duration_s: float
    drift: str | None = None
    sent: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    duplicates: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    approved: int = 0
    rejected: int = 0
    refused: int = 0
    task_errors: int = 0
    abandoned: int = 0
    decisions: list[Decision] = field(default_factory=list)
    elapsed_s: float = 0.0
    phase: str = "starting"

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    def sample_error(self, message: str) -> None:
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(message)

    def by_role(self) -> dict[str, dict[str, int]]:
        """Approved and rejected counts per role."""
        found: dict[str, dict[str, int]] = {}
        for decision in self.decisions:
            counts = found.setdefault(decision.role, {"approved": 0, "rejected": 0})
            counts["approved" if decision.approved else "rejected"] += 1
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rate": self.rate,
            "duration_s": self.duration_s,
            "drift": self.drift,
            "elapsed_s": round(self.elapsed_s, 3),
            "events": {
                "sent": self.total_sent,
                "by_type": dict(sorted(self.sent.items())),
                "accepted": self.accepted,
                "duplicates": self.duplicates,
                "errors": self.errors,
                "error_samples": list(self.error_samples),
            },
            "tasks": {
                "approved": self.approved,
                "rejected": self.rejected,
                "refused": self.refused,
                "errors": self.task_errors,
                "abandoned": self.abandoned,
                "by_role": self.by_role(),
            },
        }


Progress = Callable[[Report], None]


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"
    if isinstance(body, dict):
        detail = str(body.get("detail", ""))
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            detail += f" ({errors[0].get('path')}: {errors[0].get('message')})"
        return f"{response.status_code} {detail}"
    return f"{response.status_code}"


def _unreachable(url: str, exc: Exception) -> Unavailable:
    return Unavailable(
        f"no Opsrail server answers at {url} ({type(exc).__name__})",
        hint="start one with `opsrail up` first, or point --url at it",
    )


class _Simulation:
    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        token: str,
        report: Report,
        behaviour: Behaviour,
        concurrency: int,
    ) -> None:
        self.client = client
        self.url = url
        self.token = token
        self.report = report
        self.behaviour = behaviour
        self.concurrency = concurrency
        self.fatal: OpsrailError | None = None
        self.transport_failures = 0
        self.pending_decisions: set[asyncio.Task[None]] = set()
        self.stop_humans = asyncio.Event()
        self.new_tasks_seen = 0

    # -- preflight -------------------------------------------------------------------------------------------

    async def preflight(self, humans: Mapping[str, str]) -> None:
        try:
            ready = await self.client.get("/readyz")
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from None
        if ready.status_code != 200:
            raise Unavailable(
                f"the server at {self.url} is not ready: {_problem(ready)}", hint="see its log; is the database up?"
            )
        for role, secret in humans.items():
            answer = await self.client.get(
                "/v1/tasks", params={"mine": "true", "limit": 1}, headers={"Authorization": f"Bearer {secret}"}
            )
            if answer.status_code == 401:
                raise Unauthenticated(
                    f"the server at {self.url} does not know the simulated {role}'s token",
                    hint="it uses another database than this shell (OPSRAIL_HOME, OPSRAIL_DATABASE_URL); run "
                    "`opsrail simulate` with the server's settings, or pass --no-humans",
                )
            if answer.status_code == 403:
                raise Forbidden(
                    f"the active policies do not let a {role} read tasks",
                    hint="check `opsrail policies show`, or pass --no-humans",
                )

    # -- events ----------------------------------------------------------------------------------------------

    async def send_all(self, world: World, rate: float, duration_s: float) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.concurrency)
        in_flight: set[asyncio.Task[None]] = set()
        begin = loop.time()
        end = begin + duration_s
        for index, event in enumerate(world.events()):
            due = begin + index / rate
            if due >= end or loop.time() >= end or self.fatal is not None:
                break
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            await slots.acquire()
            if self.fatal is not None:
                slots.release()
                break
            task = asyncio.create_task(self._send(event))
            in_flight.add(task)

            def finished(done: asyncio.Task[None]) -> None:
                in_flight.discard(done)
                slots.release()

            task.add_done_callback(finished)
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _send(self, event: dict[str, Any]) -> None:
        report = self.report
        report.sent[event["type"]] += 1
        body = orjson.dumps(event)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": CLOUDEVENTS_JSON}
        for attempt in range(4):
            try:
                response = await self.client.post("/v1/events", content=body, headers=headers)
            except httpx.TransportError as exc:
                self.transport_failures += 1
                if self.transport_failures >= TRANSPORT_FAILURES_FATAL:
                    self.fatal = self.fatal or _unreachable(self.url, exc)
                    report.errors += 1
                    return
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            self.transport_failures = 0
            status = response.status_code
            if status in (429, 503) and attempt < 3:
                retry_after = response.headers.get("retry-after", "")
                await asyncio.sleep(min(float(retry_after), 5.0) if retry_after.isdigit() else 0.5 * (attempt + 1))
                continue
            if status in (200, 202):
                if status == 202:
                    report.accepted += 1
                else:
                    report.duplicates += 1
                await self._mirror_to_ledger(event, headers)
            elif status == 401:
                self.fatal = self.fatal or Unauthenticated(
                    f"the server at {self.url} refused the token ({_problem(response)})",
                    hint="give a valid one with --token or OPSRAIL_TOKEN; "
                    "create one with `opsrail tokens create --role service`",
                )
                report.errors += 1
            elif status == 403:
                self.fatal = self.fatal or Forbidden(
                    f"the token may not send events ({_problem(response)})",
                    hint="use a token with the service or operator role",
                )
                report.errors += 1
            else:
                report.errors += 1
                report.sample_error(f"{event['type']} {event['id']}: {_problem(response)}")
            return
        report.errors += 1
        report.sample_error(f"{event['type']} {event['id']}: gave up after retries")

    async def _mirror_to_ledger(self, event: dict[str, Any], headers: dict[str, str]) -> None:
        """The billing and delivery systems of record the world implies: its invoices and delivery projects are
        written to the built-in ledger too (idempotently), so playbooks that hold an invoice or update a milestone
        find them. A refusal is counted as an error, never fatal."""
        data = event.get("data") or {}
        writes: list[tuple[str, dict[str, Any], str]] = []
        if event["type"] == "com.opsrail.invoice.created":
            invoice = {k: v for k, v in data.items() if k not in ("segment",)}
            writes.append(("invoices", invoice, f"sim-invoice-{data['id']}"))
        elif event["type"] == "com.opsrail.implementation_task.updated" and data.get("project_id"):
            project = {
                "id": data["project_id"],
                "account_id": data.get("account_id"),
                "name": f"Onboarding {data.get('account_id')}",
                "milestones": [{"name": name} for name in ("tenant-ready", "sso-live", "data-migrated")],
            }
            writes.append(("projects", project, f"sim-project-{data['project_id']}"))
        json_headers = {**headers, "Content-Type": "application/json"}
        for collection, body, key in writes:
            try:
                answer = await self.client.post(
                    f"/v1/ledger/{collection}",
                    content=orjson.dumps(body),
                    headers={**json_headers, "Idempotency-Key": key},
                )
            except httpx.TransportError:
                continue
            if answer.status_code not in (201, 409):  # 409: the project exists (another task of the same project)
                self.report.sample_error(f"ledger {collection} {body.get('id')}: {_problem(answer)}")

    # -- simulated people ------------------------------------------------------------------------------------

    async def human(self, role: str, secret: str) -> None:
        headers = {"Authorization": f"Bearer {secret}"}
        seen: set[str] = set()
        while not self.stop_humans.is_set():
            try:
                answer = await self.client.get("/v1/tasks", params={"mine": "true", "limit": 500}, headers=headers)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code == 200:
                for task in answer.json().get("items", []):
                    task_id = task.get("id")
                    if not isinstance(task_id, str) or task_id in seen:
                        continue
                    seen.add(task_id)
                    self.new_tasks_seen += 1
                    job = asyncio.create_task(self._decide(role, headers, task))
                    self.pending_decisions.add(job)
                    job.add_done_callback(self.pending_decisions.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_humans.wait(), timeout=POLL_SECONDS)

    async def _decide(self, role: str, headers: dict[str, str], task: dict[str, Any]) -> None:
        delay = self.behaviour.delay(task, role)
        await asyncio.sleep(delay)
        verdict = self.behaviour.verdict(task, role)
        body: dict[str, Any] = {"comment": verdict.comment}
        if verdict.value is not None:
            body["value"] = verdict.value
        path = f"/v1/tasks/{task['id']}:{'approve' if verdict.approve else 'reject'}"
        report = self.report
        try:
            answer = await self.client.post(path, json=body, headers=headers)
        except httpx.TransportError:
            report.task_errors += 1
            return
        if answer.status_code == 200:
            if verdict.approve:
                report.approved += 1
            else:
                report.rejected += 1
            decided = answer.json().get("decisions") or []
            mine = [d for d in decided if isinstance(d, dict) and role in (d.get("roles") or [])]
            by = str((mine or decided or [{}])[-1].get("by", role))
            if len(report.decisions) < MAX_DECISIONS:
                report.decisions.append(
                    Decision(
                        task["id"],
                        role,
                        by,
                        verdict.approve,
                        verdict.comment,
                        round(delay, 3),
                        is_credit_task(task),
                        task_segment(task),
                    )
                )
        elif answer.status_code in (403, 404, 409):
            report.refused += 1
        else:
            report.task_errors += 1
            report.sample_error(f"task {task['id']}: {_problem(answer)}")


async def simulate(
    url: str,
    token: str,
    *,
    rate: float,
    duration_s: float,
    seed: int,
    drift: Drift | None,
    humans: Mapping[str, str],
    progress: Progress | None = None,
    progress_every_s: float = 2.0,
    delay_scale: float = 1.0,
    drain_s: float = 30.0,
    concurrency: int = 16,
) -> Report:
    """Send the seeded world's events to ``url`` at ``rate`` per second for ``duration_s`` seconds, while the people
    in ``humans`` (role -> API token) decide their tasks; then give them up to ``drain_s`` seconds to finish the
    tasks already on their desks. ``delay_scale`` speeds the people up (below 1) or slows them down.

    ``progress`` gets the (live) report when sending starts and every ``progress_every_s`` seconds. Raises
    :class:`~opsrail.model.Unavailable` when no server answers at ``url``, :class:`~opsrail.model.Unauthenticated`
    or :class:`~opsrail.model.Forbidden` when the server refuses the event token or a person's token.
    """
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration_s must be above zero")
    report = Report(seed=seed, rate=rate, duration_s=duration_s, drift=drift.spec if drift is not None else None)
    world = World(seed, tickets=load_tickets(), drift=drift, start=datetime.now(UTC), interval_s=1.0 / rate)
    behaviour = Behaviour(seed, drift, delay_scale=delay_scale)
    limits = httpx.Limits(max_connections=concurrency + 2 * len(humans) + 4, max_keepalive_connections=concurrency)
    began = time.monotonic()

    async def tick() -> None:
        while True:
            await asyncio.sleep(progress_every_s)
            report.elapsed_s = time.monotonic() - began
            if progress is not None:
                progress(report)

    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=15.0, limits=limits) as client:
        run = _Simulation(client, url, token, report, behaviour, concurrency)
        await run.preflight(humans)
        people = [asyncio.create_task(run.human(role, secret)) for role, secret in humans.items()]
        ticker = asyncio.create_task(tick())
        try:
            report.phase = "sending"
            if progress is not None:
                progress(report)
            await run.send_all(world, rate, duration_s)
            if humans and run.fatal is None:
                report.phase = "draining"
                await _drain(run, drain_s)
        finally:
            run.stop_humans.set()
            await asyncio.gather(*people, return_exceptions=True)
            report.abandoned = len(run.pending_decisions)
            for job in list(run.pending_decisions):
                job.cancel()
            await asyncio.gather(*run.pending_decisions, return_exceptions=True)
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            report.elapsed_s = time.monotonic() - began
            report.phase = "done"
    if run.fatal is not None:
        raise run.fatal
    return report


async def _drain(run: _Simulation, drain_s: float) -> None:
    """Let the people finish what is on their desks: stop once two polls in a row bring nothing new and nothing
    is waiting, or after ``drain_s`` seconds."""
    deadline = time.monotonic() + drain_s
    quiet = 0
    while time.monotonic() < deadline:
        before = run.new_tasks_seen
        await asyncio.sleep(POLL_SECONDS + 0.1)
        quiet = quiet + 1 if not run.pending_decisions and run.new_tasks_seen == before else 0
        if quiet >= 2:
            return
